"""The S3Rec/P5 format: ``<Prefix>.txt`` sequences, ``datamaps.json`` and ``<Prefix>_item2attributes.json``.

Two layouts: S3Rec's, where the one ``<Prefix>_item2attributes.json`` names the sequence file
``<Prefix>.txt``; and P5's, without attributes, where the sequence file is the folder's one ``*.txt``
other than ``negative_samples.txt`` (P5 calls it ``sequential_data.txt``) and ``datamaps.json`` needs
only ``id2user`` and ``id2item``. The sequence file has one line per user, ``uid iid1 iid2 ...`` with
single spaces and integer ids in chronological order (no timestamps: timestamps are the ordinal positions
0, 1, 2, ...). Users and items are written under their original reviewerID / ASIN from ``datamaps.json``.

Item fields:

* ``attributes`` (token_seq), when there are any (not in the P5 layout): S3Rec's brand-and-category
  attributes of each item. S3Rec's own attribute ids are *not* ``datamaps.json``'s: datamaps numbers
  every brand and category name by first occurrence, S3Rec numbered them in the same order after dropping
  the rare ones. The names are taken from datamaps only when some count threshold reproduces S3Rec's
  per-attribute counts exactly (it does for Beauty, threshold 5); otherwise the attributes are written as
  opaque tokens ``attr<id>`` (Sports). Brands and categories share one id space in S3Rec, so they are not
  told apart here.
* With an item file (``Amazon_Beauty.item``, a RecBole item file keyed by ASIN with CSV quoting):
  ``title``, ``categories`` (token_seq), ``brand``, ``sales_rank``, ``price``.
"""
from collections import Counter
from pathlib import Path
from typing import Dict, List, Optional, Tuple

import numpy as np
import pandas as pd

from recbole_qbert.convert.dataset import ConvertedDataset, ordinal_inter
from recbole_qbert.convert.inputs import load_json, numbered_lines, parse_int, require_file
from recbole_qbert.convert.text import category_tokens, clean_text, parse_quoted_list
from recbole_qbert.data.atomic_files import read_quoted_atomic
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

_ATTRIBUTES_SUFFIX = "_item2attributes.json"
# P5 files in the sequence file's line format that are not sequences (99 sampled negatives per user)
_NOT_SEQUENCES = {"negative_samples.txt"}
# columns taken from the item file (same names in our output) -> RecBole type
_ITEM_FILE_FIELDS = {
    "title": "token_seq",
    "categories": "token_seq",
    "brand": "token",
    "sales_rank": "float",
    "price": "float",
}


def _layout(src: Path) -> Tuple[Path, Optional[Path]]:
    """The sequence file and the attributes file (None in the P5 layout); see the module doc."""
    if not src.is_dir():
        raise QBertError(f"{src}: folder not found")
    attributes = sorted(src.glob(f"*{_ATTRIBUTES_SUFFIX}"))
    if len(attributes) > 1:
        raise QBertError(f"{src}: expected at most one '*{_ATTRIBUTES_SUFFIX}', found {len(attributes)}")
    if attributes:
        return require_file(src / f"{attributes[0].name[: -len(_ATTRIBUTES_SUFFIX)]}.txt"), attributes[0]
    found = sorted(p for p in src.glob("*.txt") if p.name not in _NOT_SEQUENCES)
    if len(found) != 1:
        listed = f" ({', '.join(p.name for p in found)})" if found else ""
        raise QBertError(f"{src}: no '*{_ATTRIBUTES_SUFFIX}' (S3Rec layout), so expected exactly one sequence "
                         f"file '*.txt' (P5 layout, e.g. sequential_data.txt), found {len(found)}{listed}")
    return found[0], None


def _id_map(datamaps: dict, key: str, path: Path) -> Dict[str, str]:
    mapping = datamaps.get(key) if isinstance(datamaps, dict) else None
    if not isinstance(mapping, dict) or not all(isinstance(v, str) for v in mapping.values()):
        raise QBertError(f"{path}: '{key}' is missing or is not a mapping of id strings to names")
    return mapping


def _read_sequences(path: Path, id2user: Dict[str, str], id2item: Dict[str, str]) -> Dict[str, List[str]]:
    """reviewerID -> chronological ASINs, from ``uid iid1 iid2 ...`` lines."""
    sequences: Dict[str, List[str]] = {}
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        ids = line.split(" ")
        for value in ids:
            parse_int(value, path, lineno, "id", " (expected 'uid iid1 iid2 ...' separated by single spaces)")
        uid, items = ids[0], ids[1:]
        if not items:
            raise QBertError(f"{path}: line {lineno}: user {uid} has no items")
        if uid not in id2user:
            raise QBertError(f"{path}: line {lineno}: user id {uid} is not in datamaps.json id2user")
        unknown = next((i for i in items if i not in id2item), None)
        if unknown is not None:
            raise QBertError(f"{path}: line {lineno}: item id {unknown} is not in datamaps.json id2item")
        user = id2user[uid]
        if user in sequences:
            raise QBertError(f"{path}: line {lineno}: user id {uid} appears on two lines")
        sequences[user] = [id2item[i] for i in items]
    return sequences


def _read_item_attributes(path: Path, id2item: Dict[str, str]) -> Dict[str, List[int]]:
    """item id -> S3Rec attribute ids."""
    raw = load_json(path)
    if not isinstance(raw, dict):
        raise QBertError(f"{path}: expected a JSON object of item id -> list of attribute ids")
    for iid, attrs in raw.items():
        if iid not in id2item:
            raise QBertError(f"{path}: item id {iid} is not in datamaps.json id2item")
        if not isinstance(attrs, list) or not all(isinstance(a, int) and not isinstance(a, bool) for a in attrs):
            raise QBertError(f"{path}: item {iid}: attributes are not a list of integer ids")
    return raw


def _attribute_names(item_attrs: Dict[str, List[int]], datamaps: dict) -> Optional[Dict[int, str]]:
    """S3Rec attribute id -> name, when datamaps' attribute table provably lines up with it (see module doc)."""
    counts = Counter(a for attrs in item_attrs.values() for a in attrs)
    names, numbers = datamaps.get("id2attribute"), datamaps.get("attributeid2num")
    if not counts or not isinstance(names, dict) or not isinstance(numbers, dict):
        return None
    if set(counts) != set(range(1, len(counts) + 1)):
        return None
    try:
        num = {int(a): int(n) for a, n in numbers.items()}
    except (TypeError, ValueError):
        return None
    order = sorted(num)
    # every distinct threshold gives a distinct kept set; smaller thresholds keep more
    for core in sorted(set(num.values())):
        kept = [a for a in order if num[a] >= core]
        if len(kept) < len(counts):
            break
        if len(kept) == len(counts) and all(counts[j] == num[a] for j, a in enumerate(kept, start=1)):
            return {j: str(names.get(str(a), "")) for j, a in enumerate(kept, start=1)}
    return None


def _read_item_file(path: Path) -> pd.DataFrame:
    """Title, categories, brand, sales rank and price by ASIN from a RecBole item file with CSV quoting."""
    rows = []
    for lineno, fields in read_quoted_atomic(path, ["item_id", *_ITEM_FILE_FIELDS]):
        try:
            categories = category_tokens(parse_quoted_list(fields["categories"]))
            numbers = {c: float(fields[c]) if fields[c].strip() else np.nan for c in ("sales_rank", "price")}
        except ValueError as e:
            raise QBertError(f"{path}: line {lineno}: {e}") from None
        rows.append({"item_id": fields["item_id"].strip(), "title": clean_text(fields["title"]),
                     "categories": categories, "brand": clean_text(fields["brand"]), **numbers})
    return pd.DataFrame(rows, columns=["item_id", *_ITEM_FILE_FIELDS])


def convert_s3rec(src: PathLike, name: str, item_file: Optional[PathLike] = None) -> ConvertedDataset:
    """Convert an S3Rec/P5 folder; ``item_file`` (relative to ``src`` or absolute) adds text fields."""
    src = Path(src)
    seq_path, attr_path = _layout(src)
    maps_path = require_file(src / "datamaps.json")
    datamaps = load_json(maps_path)
    id2user, id2item = _id_map(datamaps, "id2user", maps_path), _id_map(datamaps, "id2item", maps_path)
    sequences = _read_sequences(seq_path, id2user, id2item)
    inter = ordinal_inter(sequences)
    used = set(inter["item_id"])

    item_attrs = _read_item_attributes(attr_path, id2item) if attr_path is not None else {}
    items = pd.DataFrame({"item_id": [id2item[iid] for iid in item_attrs]}, dtype=object)
    item_fields: Dict[str, str] = {}
    notes: Dict[str, object] = {}
    if item_attrs:
        names = _attribute_names(item_attrs, datamaps)
        items["attributes"] = [category_tokens(names.get(a, "") if names else f"attr{a}" for a in attrs)
                               for attrs in item_attrs.values()]
        item_fields["attributes"] = "token_seq"
        notes["attribute_names"] = "from datamaps.json (verified)" if names else "unresolved: opaque attr<id> tokens"
        notes["items_without_attributes"] = len(used - set(items["item_id"]))
    else:
        notes["attributes"] = f"none ({attr_path.name} is empty)" if attr_path else "none (P5 layout)"
    notes["repeated_user_item_pairs"] = int(inter.duplicated(["user_id", "item_id"]).sum())
    sources = [seq_path, maps_path] + ([attr_path] if attr_path else [])

    if item_file is not None:
        item_path = require_file(src / item_file)
        meta = _read_item_file(item_path)
        repeated = meta.loc[meta["item_id"].duplicated(), "item_id"]
        if len(repeated):
            raise QBertError(f"{item_path}: item {repeated.iloc[0]} appears twice")
        items = items.merge(meta, on="item_id", how="outer")
        item_fields.update(_ITEM_FILE_FIELDS)
        notes.update({
            "items_missing_from_item_file": len(used - set(meta["item_id"])),
            "item_file_rows_not_in_dataset": int((~meta["item_id"].isin(used)).sum()),
            "items_without_title": len(used - set(meta.loc[meta["title"] != "", "item_id"])),
        })
        sources.append(item_path)

    return ConvertedDataset(
        name=name, inter=inter, items=items, item_fields=item_fields, sources=sources,
        converter="s3rec", arguments={"src": str(src), "item_file": None if item_file is None else str(item_file)},
        real_timestamps=False, notes=notes)
