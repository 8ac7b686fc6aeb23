"""The raw McAuley Amazon review and metadata files, 2014 and 2018 releases, gzipped or not.

Each line is one record: strict JSON (2014 reviews, all of 2018) or a Python dict literal (2014
metadata, "loose JSON"); JSON is tried first, then ``ast.literal_eval``, which evaluates literals only.
Reviews need ``reviewerID``, ``asin`` and an integer ``unixReviewTime``. A line that is neither, or
lacks those fields, raises :class:`QBertError` naming the file and line; with ``skip_malformed`` it is
skipped and counted in the dataset's notes instead.

Interactions keep real timestamps. A repeated (user, item) pair keeps its earliest review (ties: the
earlier line), then the k-core filter runs, and each user's reviews are ordered by time with ties in
line order. Item fields: ``title``, ``categories`` (2014 ``categories`` lists of lists or 2018
``category`` list, flattened, one token per distinct name), ``brand``, ``price`` (number, or the first
number of a string such as ``"$12.99"``) and ``image_url`` (the first of ``imageURLHighRes``,
``imageURL`` or 2014's ``imUrl``; empty when none) for image feature extraction. Items absent from
the metadata keep empty fields; a repeated metadata ``asin`` keeps its first line.
"""
import ast
import json
from pathlib import Path
from typing import Callable, Dict, Iterator, List, Optional, Tuple, TypeVar

import numpy as np
import pandas as pd

from recbole_qbert.convert.dataset import ConvertedDataset
from recbole_qbert.convert.inputs import numbered_lines, require_file
from recbole_qbert.convert.kcore import kcore_filter
from recbole_qbert.convert.text import category_tokens, clean_text, flatten_names, parse_price
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

ITEM_FIELDS = {"title": "token_seq", "categories": "token_seq", "brand": "token",
               "price": "float", "image_url": "token"}
_IMAGE_KEYS = ("imageURLHighRes", "imageURL", "imUrl")
T = TypeVar("T")


class _Malformed(ValueError):
    """A record that cannot be used; the message says why."""


def _parse_record(line: str) -> dict:
    try:
        record = json.loads(line)
    except ValueError:
        try:
            record = ast.literal_eval(line)
        except (SyntaxError, ValueError, TypeError, MemoryError, RecursionError):
            raise _Malformed("neither JSON nor a Python dict literal") from None
    if not isinstance(record, dict):
        raise _Malformed(f"a {type(record).__name__}, not an object")
    return record


def _records(path: Path, skip_malformed: bool, extract: Callable[[dict], T]
             ) -> Iterator[Tuple[int, Optional[T]]]:
    """``(line number, extract(record))`` per non-blank line; a malformed one raises, or gives ``None``."""
    for lineno, line in numbered_lines(path):
        if not line.strip():
            continue
        try:
            yield lineno, extract(_parse_record(line))
        except _Malformed as e:
            if not skip_malformed:
                raise QBertError(f"{path}: line {lineno}: malformed record ({e})") from None
            yield lineno, None


def _review(record: dict) -> Tuple[str, str, int]:
    user, item, time = record.get("reviewerID"), record.get("asin"), record.get("unixReviewTime")
    if not isinstance(user, str) or not user.strip() or not isinstance(item, str) or not item.strip():
        raise _Malformed("'reviewerID' or 'asin' missing or not a string")
    if not isinstance(time, int) or isinstance(time, bool):
        raise _Malformed("'unixReviewTime' missing or not an integer")
    return user.strip(), item.strip(), time


def _item(record: dict) -> Dict[str, object]:
    asin = record.get("asin")
    if not isinstance(asin, str) or not asin.strip():
        raise _Malformed("'asin' missing or not a string")
    images = (record.get(key) for key in _IMAGE_KEYS)
    first_image = next((url for value in images for url in flatten_names(value) if url.strip()), "")
    price = parse_price(record.get("price"))
    return {
        "item_id": asin.strip(),
        "title": clean_text(record.get("title")),
        "categories": category_tokens(flatten_names(record.get("categories", record.get("category")))),
        "brand": clean_text(record.get("brand")),
        "price": np.nan if price is None else price,
        "image_url": clean_text(first_image),
    }


def _interactions(path: Path, kcore: int, skip_malformed: bool, notes: Dict[str, object]) -> pd.DataFrame:
    records = list(_records(path, skip_malformed, _review))
    rows = [(lineno, review) for lineno, review in records if review is not None]
    notes["malformed_review_lines_skipped"] = len(records) - len(rows)
    inter = pd.DataFrame([r for _, r in rows], columns=["user_id", "item_id", "timestamp"])
    inter["line"] = np.array([lineno for lineno, _ in rows], dtype=np.int64)
    notes["reviews"] = len(inter)
    inter = inter.sort_values(["timestamp", "line"], kind="stable")
    deduplicated = inter.drop_duplicates(["user_id", "item_id"], keep="first")
    notes["duplicate_user_item_reviews_dropped"] = len(inter) - len(deduplicated)
    filtered = kcore_filter(deduplicated, kcore)
    notes["interactions_removed_by_kcore"] = len(deduplicated) - len(filtered)
    return filtered.sort_values(["user_id", "timestamp", "line"], kind="stable").drop(columns="line")


def _items(path: Path, used: set, skip_malformed: bool, notes: Dict[str, object]) -> pd.DataFrame:
    rows: List[Dict[str, object]] = []
    seen = set()
    repeated = malformed = 0
    for _, item in _records(path, skip_malformed, _item):
        if item is None:
            malformed += 1
        elif item["item_id"] in seen:
            repeated += 1
        else:
            seen.add(item["item_id"])
            if item["item_id"] in used:
                rows.append(item)
    items = pd.DataFrame(rows, columns=["item_id", *ITEM_FIELDS])
    notes.update({
        "malformed_metadata_lines_skipped": malformed,
        "repeated_metadata_asins": repeated,
        "items_without_metadata": len(used - set(items["item_id"])),
        "items_without_title": len(used - set(items.loc[items["title"] != "", "item_id"])),
        "items_without_image": len(used - set(items.loc[items["image_url"] != "", "item_id"])),
    })
    return items


def convert_mcauley(reviews: PathLike, meta: PathLike, name: str, kcore: int = 5,
                    skip_malformed: bool = False) -> ConvertedDataset:
    """Convert a McAuley review file and its metadata file (see module doc)."""
    if kcore < 1:
        raise QBertError(f"k-core must be at least 1, got {kcore}")
    reviews, meta = require_file(reviews), require_file(meta)
    notes: Dict[str, object] = {}
    inter = _interactions(reviews, kcore, skip_malformed, notes)
    items = _items(meta, set(inter["item_id"]), skip_malformed, notes)
    return ConvertedDataset(
        name=name, inter=inter, items=items, item_fields=dict(ITEM_FIELDS), sources=[reviews, meta],
        converter="mcauley",
        arguments={"reviews": str(reviews), "meta": str(meta), "kcore": kcore, "skip_malformed": skip_malformed},
        real_timestamps=True, notes=notes)
