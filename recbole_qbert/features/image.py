"""Image features: open_clip over image files or URLs named in the item file, or imported precomputed ones.

* :func:`extract_image_features` reads each item's image (a path relative to the dataset folder, an
  absolute path, or an ``http(s)`` URL) from one item field, encodes it with an open_clip model (name
  and pretrained tag by config) and writes the image embeddings. Items without an image, and images
  that are missing, unreachable or corrupt, are marked not present and counted by cause in the metadata.
* :func:`import_raw_features` imports a precomputed float32 matrix whose rows are named by an index
  file (``token<TAB>row``), e.g. the CLIP ViT-B/32 features of the Scientific multimodal subset
  (``Scientific.feat3CLS`` image, ``Scientific.feat1CLS`` text; rows by ``Scientific.item2index``).
  NaN rows, a size that is not whole rows, a row count that differs from the index, and index tokens
  that are not items of the dataset are errors; all-zero rows carry nothing and are marked not present.
"""
import io
import time
import urllib.error
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from recbole_qbert.convert.inputs import parse_int, read_tsv
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.safe_io import PathLike, sha256_file, sha256_json

IMAGE_FIELDS = ("image", "image_path", "image_url", "imUrl", "imageURL", "imageURLHighRes")


def image_field(catalog: ItemCatalog, wanted: Optional[str]) -> Optional[str]:
    """The item field naming images: ``wanted``, else the first of :data:`IMAGE_FIELDS` present."""
    if wanted:
        if wanted not in catalog.fields:
            raise QBertError(f"{catalog.name}: image field '{wanted}' is not an item field "
                             f"(item fields: {', '.join(catalog.fields) or 'none'})")
        return wanted
    return next((f for f in IMAGE_FIELDS if f in catalog.fields), None)


def read_image(value: str, base: Path, timeout: float = 10.0):
    """``(PIL RGB image, None)`` or ``(None, cause)`` with cause ``missing``, ``unreachable`` or ``corrupt``."""
    from PIL import Image, UnidentifiedImageError

    value = value.split()[0] if value.split() else ""
    if value.startswith(("http://", "https://")):
        try:
            with urllib.request.urlopen(value, timeout=timeout) as response:  # noqa: S310 (http(s) only)
                data = response.read()
        except (urllib.error.URLError, OSError, ValueError):
            return None, "unreachable"
    else:
        path = Path(value)
        path = path if path.is_absolute() else base / path
        if not path.is_file():
            return None, "missing"
        try:
            data = path.read_bytes()
        except OSError:
            return None, "missing"
    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            return img.convert("RGB"), None
    except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError):
        return None, "corrupt"


def load_open_clip(model_name: str, pretrained: Optional[str], device: str = "cpu"):
    """``(model, preprocess)``; ``pretrained`` ``None`` builds a randomly initialised model (tests).

    Pretrained weights are downloaded by open_clip at first use; where that is impossible the error
    says how to supply them (a local checkpoint file as ``image_pretrained``) or to import features.
    """
    import open_clip

    if model_name not in open_clip.list_models():
        raise QBertError(f"open_clip has no model '{model_name}' (e.g. ViT-B-32, ViT-B-16, RN50)")
    try:
        model, _, preprocess = open_clip.create_model_and_transforms(model_name, pretrained=pretrained,
                                                                     device=device)
    except Exception as e:  # open_clip raises RuntimeError, OSError, HTTP errors... for unloadable weights
        tags = ", ".join(open_clip.list_pretrained_tags_by_model(model_name)[:6])
        raise QBertError(f"open_clip '{model_name}' pretrained '{pretrained}' cannot be loaded "
                         f"({type(e).__name__}: {str(e).splitlines()[0][:120] if str(e) else ''}): known tags "
                         f"are {tags}; without a network, download the checkpoint elsewhere and pass its "
                         "file as image_pretrained, or import precomputed features "
                         "(extract_features import)") from None
    model.eval()
    return model, preprocess


def extract_image_features(catalog: ItemCatalog, cfg: dict, *, progress: bool = True,
                           model_and_preprocess=None) -> Tuple[Optional[FeatureTable], List[str]]:
    """``(table, notes)``; ``(None, notes)`` when the dataset names no images."""
    import torch
    from tqdm.auto import tqdm

    field = image_field(catalog, cfg["image_field"])
    if field is None:
        return None, [f"{catalog.name}: no item field names images ({', '.join(IMAGE_FIELDS)}); "
                      "no image features written (import precomputed ones instead)"]
    values = catalog.fields[field]
    causes: Counter = Counter()
    examples: Dict[str, str] = {}
    if model_and_preprocess is None:
        model_and_preprocess = load_open_clip(cfg["image_model"], cfg["image_pretrained"], cfg["device"])
    model, preprocess = model_and_preprocess
    matrix = None
    present = np.zeros(len(catalog), dtype=bool)
    rows = [r for r, v in enumerate(values) if v.strip()]
    causes["no_image"] = len(catalog) - len(rows)
    bar = tqdm(total=len(rows), desc=f"{catalog.name} image", unit="img", disable=not progress, leave=False)
    batch_size = cfg["image_batch_size"]
    with torch.inference_mode():
        for start in range(0, len(rows), batch_size):
            tensors, kept = [], []
            for r in rows[start:start + batch_size]:
                img, cause = read_image(values[r], catalog.folder, cfg["image_timeout_s"])
                if img is None:
                    causes[cause] += 1
                    examples.setdefault(cause, f"{catalog.tokens[r]}: {values[r][:100]}")
                    continue
                tensors.append(preprocess(img))
                kept.append(r)
            bar.update(len(rows[start:start + batch_size]))
            if not kept:
                continue
            emb = model.encode_image(torch.stack(tensors).to(cfg["device"])).float().cpu().numpy()
            if matrix is None:
                matrix = np.zeros((len(catalog), emb.shape[1]), dtype=np.float32)
            matrix[kept] = emb
            present[kept] = True
    bar.close()
    notes = [f"{causes[c]} items {c.replace('_', ' ')}" for c in ("no_image", "missing", "unreachable", "corrupt")
             if causes[c]]
    if matrix is None:
        return None, notes + [f"{catalog.name}: no image could be read; no image features written"]
    meta = {
        "modality": "image", "view": "image", "encoder": f"open_clip {cfg['image_model']}",
        "pretrained": cfg["image_pretrained"], "field": field, "dim": int(matrix.shape[1]),
        "n_present": int(present.sum()), "failures": {k: v for k, v in causes.items() if v},
        "failure_examples": examples,
        "input_hash": sha256_json([catalog.files_hash, field, cfg["image_model"], cfg["image_pretrained"]])[:16],
    }
    return FeatureTable(catalog.tokens, matrix, present, meta, source=f"{catalog.name} image"), notes


def _read_index(path: Path) -> List[str]:
    tokens: Dict[int, str] = {}
    for lineno, (token, value) in read_tsv(path, 2):
        row = parse_int(value.strip(), path, lineno, "row index")
        if row in tokens:
            raise QBertError(f"{path}: line {lineno}: row index {row} appears twice")
        tokens[row] = token.strip()
    if not tokens:
        raise QBertError(f"{path}: empty index")
    if set(tokens) != set(range(len(tokens))):
        raise QBertError(f"{path}: row indices are not 0..{len(tokens) - 1}")
    order = [tokens[i] for i in range(len(tokens))]
    if len(set(order)) != len(order):
        raise QBertError(f"{path}: an item token appears on two lines")
    return order


def read_raw_matrix(path: PathLike, dim: int) -> np.ndarray:
    """A raw little-endian float32 file (or a ``.npy``) as ``(rows, dim)``."""
    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: feature file not found")
    if path.suffix == ".npy":
        try:
            matrix = np.load(path, allow_pickle=False)
        except (ValueError, OSError) as e:
            raise QBertError(f"{path}: not a readable .npy file ({e})") from None
        if matrix.ndim != 2 or matrix.shape[1] != dim:
            raise QBertError(f"{path}: shape {matrix.shape}, expected (rows, {dim})")
        return matrix.astype(np.float32)
    size = path.stat().st_size
    if size == 0 or size % (4 * dim):
        raise QBertError(f"{path}: {size} bytes is not a whole number of {dim}-d float32 rows "
                         "(wrong --dim, or a truncated file)")
    return np.fromfile(path, dtype="<f4").reshape(-1, dim)


def import_raw_features(catalog: ItemCatalog, features: PathLike, index: PathLike, *, dim: int, view: str,
                        modality: str, encoder: str, allow_missing: bool = False,
                        nan_as_missing: bool = False) -> Tuple[FeatureTable, List[str]]:
    """Import a precomputed ``(rows, dim)`` matrix whose rows are named by ``index`` (``token<TAB>row``)."""
    features, index = Path(features), Path(index)
    tokens = _read_index(index)
    matrix = read_raw_matrix(features, dim)
    if matrix.shape[0] != len(tokens):
        raise QBertError(f"{features}: {matrix.shape[0]} rows, but {index} names {len(tokens)} items")
    notes = []
    present = np.ones(len(tokens), dtype=bool)
    nan_rows = ~np.isfinite(matrix).all(axis=1)
    if nan_rows.any():
        first = tokens[int(np.flatnonzero(nan_rows)[0])]
        if not nan_as_missing:
            raise QBertError(f"{features}: {int(nan_rows.sum())} rows hold NaN or inf (first: item {first}); "
                             "pass --nan-as-missing to mark them not present")
        present &= ~nan_rows
        notes.append(f"{int(nan_rows.sum())} rows with NaN/inf marked not present")
    zero_rows = present & ~np.any(matrix != 0, axis=1)
    if zero_rows.any():
        present &= ~zero_rows
        notes.append(f"{int(zero_rows.sum())} all-zero rows marked not present")
    unknown = [t for t in tokens if t not in catalog.index]
    if unknown:
        raise QBertError(f"{index}: {len(unknown)} of its {len(tokens)} items are not items of "
                         f"{catalog.name} (e.g. {unknown[0]}): features of another item set")
    table = FeatureTable(tokens, np.where(present[:, None], matrix, 0.0), present, source=str(features))
    lacking = len(catalog) - len(tokens)
    if lacking and not allow_missing:
        example = next(t for t in catalog.tokens.tolist() if t not in set(tokens))
        raise QBertError(f"{index}: lacks {lacking} of the {len(catalog)} items of {catalog.name} "
                         f"(e.g. {example}); pass --allow-missing to mark them not present")
    if lacking:
        notes.append(f"{lacking} items of {catalog.name} have no imported row (marked not present)")
    table = table.align(catalog.tokens, allow_absent=True)
    table.source = f"{catalog.name} {view}"
    table.meta = {
        "modality": modality, "view": view, "encoder": encoder, "dim": dim, "imported_from": str(features),
        "index": str(index), "n_present": int(table.present.sum()), "notes": notes,
        "input_hash": sha256_json([catalog.files_hash, sha256_file(features), sha256_file(index)])[:16],
    }
    return table, notes


# The UniSRec/MISSRec files of the Scientific multimodal subset: suffix -> (view, modality, encoder)
UNISREC_FEATURES = {
    "feat3CLS": ("image", "image", "CLIP ViT-B/32 image (precomputed, UniSRec/MISSRec)"),
    "feat1CLS": ("text_clip", "text", "CLIP ViT-B/32 text (precomputed, UniSRec/MISSRec)"),
}


def import_unisrec(catalog: ItemCatalog, src: PathLike, *, dim: int = 512, allow_missing: bool = False,
                   nan_as_missing: bool = False, suffixes: Sequence[str] = tuple(UNISREC_FEATURES)
                   ) -> Tuple[Dict[str, FeatureTable], List[str]]:
    """Import ``<P>.feat3CLS`` / ``<P>.feat1CLS`` from a UniSRec folder (rows by ``<P>.item2index``)."""
    src = Path(src)
    if not src.is_dir():
        raise QBertError(f"{src}: folder not found")
    found = sorted(src.glob("*.item2index"))
    if len(found) != 1:
        raise QBertError(f"{src}: expected exactly one '*.item2index', found {len(found)}")
    prefix = found[0].name[: -len(".item2index")]
    tables, notes = {}, []
    for suffix in suffixes:
        if suffix not in UNISREC_FEATURES:
            raise QBertError(f"unknown UniSRec feature suffix '{suffix}' (known: {', '.join(UNISREC_FEATURES)})")
        path = src / f"{prefix}.{suffix}"
        if not path.is_file():
            notes.append(f"{path} not found; skipped")
            continue
        view, modality, encoder = UNISREC_FEATURES[suffix]
        t0 = time.perf_counter()
        table, more = import_raw_features(catalog, path, found[0], dim=dim, view=view, modality=modality,
                                          encoder=encoder, allow_missing=allow_missing,
                                          nan_as_missing=nan_as_missing)
        table.meta["import_s"] = round(time.perf_counter() - t0, 2)
        tables[view] = table
        notes += [f"{view}: {n}" for n in more]
    if not tables:
        raise QBertError(f"{src}: none of {', '.join(f'{prefix}.{s}' for s in suffixes)} found")
    return tables, notes
