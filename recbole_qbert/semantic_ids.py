"""The semantic-ID file: item token -> tuple of discrete codes, unique per item (stage 2's artifact).

A pair of files, written by :func:`write_semantic_ids`:

* ``<name>.sid``: tab-separated, header ``item_id:token<TAB>codes:token_seq``, one row per item sorted
  by token, codes space-separated and 0-based (``B0000223UV<TAB>12 200 5 0``);
* ``<name>.sid.json``: metadata: ``dataset``, ``n_items``, ``n_levels``, ``codebook_sizes`` (one per
  level, the disambiguation level included), ``collision_strategy``, ``features`` (the input
  FeatureTable's path and ``content_hash``), ``config``, ``items_sha256`` (hash of the sorted tokens)
  and ``sid_sha256`` (hash of the ``.sid`` bytes).

The ``.sid`` file is written first and the metadata last, each atomically; the reader recomputes the
hash, so a ``.sid`` without its metadata or with another run's metadata is refused instead of used.
:func:`read_semantic_ids` also checks the header, that every code lies in its level's range, that
tokens and tuples are unique, and optionally the dataset name and the exact item set.
"""
import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import numpy as np

from recbole_qbert.config import PROJECT_ROOT, project_path, shown_path
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike, atomic_open, write_json

SID_HEADER = "item_id:token\tcodes:token_seq"
SID_FORMAT = "recbole-qbert semantic ids"
SID_FORMAT_VERSION = 1
SID_ROOT = PROJECT_ROOT / "build" / "sid"


def default_sid_path(dataset: str) -> Path:
    """``build/sid/<dataset>/<dataset>.sid`` under the project root (also for ml-100k, whose atomic
    files live inside the recbole wheel)."""
    return SID_ROOT / dataset / f"{dataset}.sid"


def dataset_file(value: str, dataset: str) -> Path:
    """A per-dataset input path from the config: ``{dataset}`` replaced, relative -> from the project root."""
    return project_path(str(value).replace("{dataset}", dataset))


def resolve_sid_path(value: Optional[str], dataset: str) -> Path:
    """The ``sid_file`` config value as a path: ``~`` -> the default, otherwise :func:`dataset_file`."""
    if value in (None, "", "None", "~"):
        return default_sid_path(dataset)
    return dataset_file(value, dataset)


def meta_path(sid_path: PathLike) -> Path:
    sid_path = Path(sid_path)
    return sid_path.with_name(sid_path.name + ".json")


def items_sha256(tokens: Iterable[str]) -> str:
    return hashlib.sha256("\n".join(sorted(tokens)).encode("utf-8")).hexdigest()


@dataclass
class SemanticIDs:
    """Codes ``(n, L)`` int64 for ``tokens``, 0-based, with each level's codebook size."""
    tokens: np.ndarray
    codes: np.ndarray
    codebook_sizes: List[int]
    meta: Dict = field(default_factory=dict)
    source: str = "semantic ids"

    def __post_init__(self):
        self.tokens = np.asarray(self.tokens, dtype=str)
        self.codes = np.asarray(self.codes, dtype=np.int64)
        self.codebook_sizes = [int(k) for k in self.codebook_sizes]
        n = len(self.tokens)
        if self.codes.ndim != 2 or self.codes.shape[0] != n:
            raise QBertError(f"{self.source}: codes have shape {self.codes.shape}, expected ({n}, levels)")
        if self.codes.shape[1] != len(self.codebook_sizes) or not self.codebook_sizes:
            raise QBertError(f"{self.source}: {self.codes.shape[1]} codes per item but "
                             f"{len(self.codebook_sizes)} codebook sizes")
        if n == 0:
            raise QBertError(f"{self.source}: no items")
        bad_token = [t for t in self.tokens.tolist() if not t or any(c in t for c in "\t\n\r")]
        if bad_token:
            raise QBertError(f"{self.source}: item token {bad_token[0]!r} is empty or holds a tab or newline")
        if len(set(self.tokens.tolist())) != n:
            dup = [t for t, c in _counts(self.tokens.tolist()).items() if c > 1][0]
            raise QBertError(f"{self.source}: item {dup} appears more than once")
        sizes = np.asarray(self.codebook_sizes)
        out = (self.codes < 0) | (self.codes >= sizes[None, :])
        if out.any():
            i, level = map(int, np.argwhere(out)[0])
            raise QBertError(f"{self.source}: item {self.tokens[i]} has code {int(self.codes[i, level])} at level "
                             f"{level + 1}, outside 0..{sizes[level] - 1}")
        uniq, inverse, counts = np.unique(self.codes, axis=0, return_inverse=True, return_counts=True)
        if len(uniq) != n:
            shared = np.flatnonzero(counts[inverse.reshape(-1)] > 1)
            raise QBertError(f"{self.source}: {n - len(uniq)} duplicate code tuples (e.g. items "
                             f"{self.tokens[shared[0]]} and {self.tokens[shared[1]]} both have "
                             f"{self.codes[shared[0]].tolist()}); semantic IDs must be unique per item")

    @property
    def n_levels(self) -> int:
        return self.codes.shape[1]

    def __len__(self) -> int:
        return len(self.tokens)

    def by_token(self) -> Dict[str, np.ndarray]:
        return dict(zip(self.tokens.tolist(), self.codes))

    def render(self) -> bytes:
        """The ``.sid`` file's bytes (rows sorted by token, so the input order never matters)."""
        order = np.argsort(self.tokens, kind="stable")
        lines = [SID_HEADER]
        for i in order.tolist():
            lines.append(f"{self.tokens[i]}\t{' '.join(str(c) for c in self.codes[i].tolist())}")
        return ("\n".join(lines) + "\n").encode("utf-8")

    def check_items(self, tokens: Sequence[str], what: str) -> None:
        """Exactly the items ``tokens``: none missing, none extra."""
        have, want = set(self.tokens.tolist()), set(tokens)
        missing, extra = sorted(want - have), sorted(have - want)
        if missing:
            raise QBertError(f"{self.source}: lacks semantic IDs for {len(missing)} of {what}'s {len(want)} "
                             f"items (e.g. {missing[0]}); regenerate it for this dataset")
        if extra:
            raise QBertError(f"{self.source}: has {len(extra)} items {what} does not (e.g. {extra[0]}); it was "
                             "made from another item set (another dataset's features, or other filtering)")


def _counts(values):
    counts: Dict[str, int] = {}
    for v in values:
        counts[v] = counts.get(v, 0) + 1
    return counts


def write_semantic_ids(path: PathLike, sid: SemanticIDs, meta: Optional[Dict] = None) -> Dict:
    """Write ``path`` and ``path.json`` atomically (metadata last); returns the metadata written."""
    path = Path(path)
    data = sid.render()
    meta = {**sid.meta, **(meta or {})}
    meta.update({
        "format": SID_FORMAT,
        "format_version": SID_FORMAT_VERSION,
        "n_items": len(sid),
        "n_levels": sid.n_levels,
        "codebook_sizes": sid.codebook_sizes,
        "codes": "0-based per level; SemanticIDDataset stores code + 1 so that 0 is padding",
        "items_sha256": items_sha256(sid.tokens.tolist()),
        "sid_file": path.name,
        "sid_sha256": hashlib.sha256(data).hexdigest(),
    })
    with atomic_open(path, "wb") as f:
        f.write(data)
    write_json(meta_path(path), meta)
    return meta


def _parse_int(text: str, where: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise QBertError(f"{where}: code {text!r} is not an integer") from None


def read_semantic_ids(path: PathLike, *, dataset: Optional[str] = None,
                      tokens: Optional[Sequence[str]] = None) -> SemanticIDs:
    """Read and validate a semantic-ID file and its metadata.

    ``dataset``: the metadata must name it. ``tokens``: the file must hold exactly these items."""
    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: semantic-ID file not found; run `python -m dataset_prep.quantize train "
                         f"--dataset {dataset or '<dataset>'}` or set sid_file")
    mpath = meta_path(path)
    if not mpath.is_file():
        raise QBertError(f"{mpath}: metadata of {path.name} not found (an interrupted run, or a file not "
                         "written by dataset_prep.quantize); regenerate it")
    try:
        meta = json.loads(mpath.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise QBertError(f"{mpath}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or meta.get("format") != SID_FORMAT:
        raise QBertError(f"{mpath}: not semantic-ID metadata (format {meta.get('format') if isinstance(meta, dict) else None!r})")
    if meta.get("format_version") != SID_FORMAT_VERSION:
        raise QBertError(f"{mpath}: format_version {meta.get('format_version')!r}, this version reads "
                         f"{SID_FORMAT_VERSION}; regenerate it")
    data = path.read_bytes()
    if hashlib.sha256(data).hexdigest() != meta.get("sid_sha256"):
        raise QBertError(f"{path}: content does not match the sid_sha256 of {mpath.name} (the file was edited "
                         "or the pair comes from different runs); regenerate it")
    if meta.get("kind") == "cold_start" and tokens is not None:
        raise QBertError(f"{path}: holds codes for new (cold-start) items only, not a dataset's semantic IDs")
    if dataset is not None and meta.get("dataset") != dataset:
        raise QBertError(f"{path}: made for dataset {meta.get('dataset')!r}, not {dataset!r}")

    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise QBertError(f"{path}: not UTF-8 text") from None
    if "\r" in text:  # the sid_sha256 matched: a writer of this package's format with Windows line ends
        raise QBertError(f"{path}: has Windows line ends (CRLF); a .sid file separates lines with LF only")
    lines = text.split("\n")
    if lines and lines[-1] == "":
        lines.pop()
    if not lines or lines[0] != SID_HEADER:
        raise QBertError(f"{path}: header must be {SID_HEADER!r}")
    for key in ("n_items", "n_levels"):  # compared with counts below, where "706" or 0 would confuse
        value = meta.get(key)
        if not isinstance(value, int) or isinstance(value, bool) or value < 1:
            raise QBertError(f"{mpath}: {key} must be a positive integer, not {type(value).__name__} {value!r}")
    sizes = meta.get("codebook_sizes")
    n_levels = meta["n_levels"]
    if not isinstance(sizes, list) or not all(isinstance(k, int) and k > 0 for k in sizes) or len(sizes) != n_levels:
        raise QBertError(f"{mpath}: codebook_sizes {sizes!r} do not give one positive size per level "
                         f"(n_levels {n_levels!r})")
    item_tokens, codes = [], []
    for lineno, line in enumerate(lines[1:], start=2):
        token, sep, rest = line.partition("\t")
        if not sep:
            raise QBertError(f"{path}: line {lineno} is not 'token<TAB>codes'")
        row = [_parse_int(c, f"{path}: line {lineno}") for c in rest.split(" ")] if rest else []
        if len(row) != n_levels:
            raise QBertError(f"{path}: line {lineno} (item {token}) has {len(row)} codes, expected {n_levels}")
        item_tokens.append(token)
        codes.append(row)
    if len(item_tokens) != meta.get("n_items"):
        raise QBertError(f"{path}: {len(item_tokens)} rows but the metadata says n_items {meta.get('n_items')}")
    sid = SemanticIDs(np.asarray(item_tokens, dtype=str), np.asarray(codes, dtype=np.int64).reshape(-1, n_levels),
                      sizes, meta, source=str(path))
    if meta.get("items_sha256") != items_sha256(item_tokens):
        raise QBertError(f"{path}: items_sha256 of the metadata does not match the file's items")
    if tokens is not None:
        sid.check_items(tokens, f"dataset '{dataset}'" if dataset else "the dataset")
    return sid


def check_features_unchanged(sid: SemanticIDs) -> None:
    """Refuse semantic IDs whose feature tables (recorded in the metadata) changed since the codes were
    made from them; a table that no longer exists cannot be compared and is passed over."""
    from recbole_qbert.features import FeatureTable

    recorded = sid.meta.get("features") or {}
    tables = (recorded.get("tables") or []) if isinstance(recorded, dict) else None
    if not isinstance(tables, list) or not all(isinstance(t, dict) and isinstance(t.get("path") or "", str)
                                               for t in tables):
        raise QBertError(f"{meta_path(sid.source)}: features.tables is not a list of {{path, content_hash}} "
                         "objects; regenerate it")
    for table in tables:
        path = project_path(str(table.get("path") or ""))
        if not table.get("path") or not path.is_file():
            continue
        now = FeatureTable.load(path).content_hash()
        if now != table.get("content_hash"):
            features = " ".join(f"--features {t['path']}" for t in tables if t.get("path"))
            rebuild = (f"python -m dataset_prep.quantize train --dataset {sid.meta.get('dataset')} {features} "
                       f"--set sid_file={shown_path(sid.source)}")
            raise QBertError(f"{sid.source}: stale: {shown_path(path)} changed since these semantic IDs were made "
                             f"from it (features hash {table.get('content_hash')}, now {now}); rebuild them with "
                             f"`{rebuild}`")


def shuffle_semantic_ids(sid: SemanticIDs, seed: int, source: str = "shuffled") -> SemanticIDs:
    """The same code tuples dealt to the items in a random order: every structural property (levels,
    code frequencies, prefix sharing, uniqueness) is kept while the link between an item's content and
    its codes is destroyed. The "random IDs" ablation of the semantic IDs."""
    order = np.random.default_rng(seed).permutation(len(sid))
    return SemanticIDs(sid.tokens, sid.codes[order], sid.codebook_sizes, source=source)
