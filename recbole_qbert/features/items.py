"""A dataset's items as stage 1 sees them: item tokens, their content fields and the TRAINING sequences.

Read straight from the RecBole atomic files (``<data_path>/<name>/<name>.inter`` and ``.item``; the name
``ml-100k`` always means the copy inside the recbole wheel, as in RecBole itself). The ``.item`` file is
read with a CSV-aware reader, since values holding ``"`` are CSV-quoted.

**No leakage.** Each user's interactions are ordered exactly as RecBole orders them under the project's
protocol (stable sort by timestamp over file order, grouped by user) and split leave-one-out as
RecBole's ``valid_and_test`` does: the last item is the test target, the one before it the validation
target (a user with two interactions has only a test target, one with a single interaction none).
:attr:`ItemCatalog.train_sequences` holds what is left; nothing else of the interactions is exposed
except the validation transitions (:attr:`ItemCatalog.valid_pairs`), which stage 1 uses only to
evaluate its output, never to train.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np
import pandas as pd

from recbole_qbert.convert.inputs import read_quoted_atomic
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike, sha256_file, sha256_json

USER_FIELD, ITEM_FIELD, TIME_FIELD = "user_id", "item_id", "timestamp"
WHEEL_DATASETS = ("ml-100k",)


@dataclass
class ItemCatalog:
    """Items of one dataset.

    * ``tokens`` ``(N,)`` str, sorted: every item of ``.inter`` and ``.item``; row ``i`` of every
      stage-1 matrix is item ``tokens[i]``.
    * ``fields``: item field -> ``(N,)`` list of raw string values (``''`` where the item has none).
    * ``field_types``: item field -> RecBole type (``token``, ``token_seq``, ``float``, ...).
    * ``train_sequences``: per user, the item rows of the training part, in time order.
    * ``valid_pairs`` ``(P, 2)`` int: (last training item, validation item) per user that has a
      validation target; for evaluation only.
    * ``files_hash``: hash of the atomic files, recorded by every artifact made from them.
    """
    name: str
    folder: Path
    tokens: np.ndarray
    fields: Dict[str, List[str]]
    field_types: Dict[str, str]
    train_sequences: List[np.ndarray]
    valid_pairs: np.ndarray
    files_hash: str
    index: Dict[str, int] = field(default_factory=dict)

    def __post_init__(self):
        self.index = {t: i for i, t in enumerate(self.tokens.tolist())}

    def __len__(self) -> int:
        return len(self.tokens)

    def train_counts(self) -> np.ndarray:
        """``(N,)`` number of training interactions per item."""
        counts = np.zeros(len(self), dtype=np.int64)
        for seq in self.train_sequences:
            np.add.at(counts, seq, 1)
        return counts

    def display_name(self, row: int, width: int = 80) -> str:
        """A short human-readable label of an item (title-like field, else its attributes)."""
        for name in ("title", "movie_title", "text", "categories", "class", "attributes"):
            value = self.fields.get(name, [""] * len(self))[row]
            if value:
                return value if len(value) <= width else value[: width - 1] + "…"
        return f"item {self.tokens[row]}"


def dataset_folder(name: str, data_path: Optional[PathLike]) -> Path:
    """``<data_path>/<name>``, or the recbole wheel's copy for ``ml-100k``."""
    if not name or "/" in name or name.startswith("."):
        raise QBertError(f"dataset name {name!r} is not a plain folder name")
    if name in WHEEL_DATASETS:
        import recbole

        return Path(recbole.__file__).resolve().parent / "dataset_example" / name
    if data_path is None:
        from recbole_qbert.config import PROJECT_ROOT

        data_path = PROJECT_ROOT / "build" / "atomic"
    return Path(data_path) / name


def _header(path: Path) -> Dict[str, str]:
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\r\n")
    columns = {}
    for column in first.split("\t"):
        name, _, ftype = column.partition(":")
        columns[name] = ftype
    return columns


def _read_inter(path: Path) -> pd.DataFrame:
    header = _header(path)
    for needed in (USER_FIELD, ITEM_FIELD):
        if needed not in header:
            raise QBertError(f"{path}: line 1: header lacks column '{needed}'")
    columns = [c for c in (USER_FIELD, ITEM_FIELD, TIME_FIELD) if c in header]
    try:
        frame = pd.read_csv(path, sep="\t", header=0, names=list(header), usecols=columns,
                            dtype={USER_FIELD: str, ITEM_FIELD: str}, keep_default_na=False,
                            encoding="utf-8")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        raise QBertError(f"{path}: cannot read interactions ({str(e).splitlines()[0]})") from None
    if TIME_FIELD in frame:
        times = pd.to_numeric(frame[TIME_FIELD], errors="coerce")
        if times.isna().any():
            bad = int(times.isna().idxmax()) + 2
            raise QBertError(f"{path}: line {bad}: timestamp is not a number")
        frame[TIME_FIELD] = times.astype(np.float64)
    if len(frame) == 0:
        raise QBertError(f"{path}: no interactions")
    if (frame[ITEM_FIELD] == "").any() or (frame[USER_FIELD] == "").any():
        bad = int(((frame[ITEM_FIELD] == "") | (frame[USER_FIELD] == "")).idxmax()) + 2
        raise QBertError(f"{path}: line {bad}: empty user or item token")
    return frame


def _read_items(path: Path):
    header = _header(path)
    if ITEM_FIELD not in header:
        raise QBertError(f"{path}: line 1: header lacks column '{ITEM_FIELD}'")
    rows = {}
    for lineno, values in read_quoted_atomic(path, [ITEM_FIELD]):
        token = values[ITEM_FIELD].strip()
        if not token:
            raise QBertError(f"{path}: line {lineno}: empty item token")
        if token in rows:
            raise QBertError(f"{path}: line {lineno}: item {token} appears twice")
        rows[token] = {k: v.strip() for k, v in values.items() if k != ITEM_FIELD}
    types = {k: v for k, v in header.items() if k != ITEM_FIELD}
    return rows, types


def split_train(frame: pd.DataFrame, index: Dict[str, int]):
    """RecBole's ``TO`` + ``LS valid_and_test`` split: per-user training rows and validation transitions."""
    if TIME_FIELD in frame:
        order = np.argsort(frame[TIME_FIELD].to_numpy(), kind="stable")
        frame = frame.iloc[order]
    items = frame[ITEM_FIELD].map(index).to_numpy(dtype=np.int64)
    users = frame[USER_FIELD].to_numpy()
    # group positions by user, keeping the time order inside each group
    codes, first = pd.factorize(users)
    by_user = np.argsort(codes, kind="stable")
    bounds = np.flatnonzero(np.diff(codes[by_user])) + 1
    train, valid = [], []
    for rows in np.split(by_user, bounds):
        seq = items[rows]
        n = len(seq)
        held = min(2, n - 1)
        n_train = n - held
        train.append(seq[:n_train])
        if held == 2:
            valid.append((seq[n_train - 1], seq[n_train]))
    valid_pairs = np.array(valid, dtype=np.int64).reshape(-1, 2)
    return train, valid_pairs


def load_catalog(name: str, data_path: Optional[PathLike] = None) -> ItemCatalog:
    """Read dataset ``name`` from ``data_path`` (default ``build/atomic``; ``ml-100k`` from the wheel)."""
    folder = dataset_folder(name, data_path)
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    if not inter_path.is_file():
        hint = " (convert it first: python -m dataset_prep.convert shared)" if name.startswith("amazon-") else ""
        raise QBertError(f"{inter_path}: interaction file not found{hint}")
    frame = _read_inter(inter_path)
    rows, types = _read_items(item_path) if item_path.is_file() else ({}, {})
    tokens = np.array(sorted(set(frame[ITEM_FIELD]) | set(rows)), dtype=str)
    index = {t: i for i, t in enumerate(tokens.tolist())}
    fields = {f: [rows.get(t, {}).get(f, "") for t in tokens.tolist()] for f in types}
    train, valid_pairs = split_train(frame, index)
    files = [p for p in (inter_path, item_path) if p.is_file()]
    files_hash = sha256_json([sha256_file(p) for p in files])[:16]
    return ItemCatalog(name=name, folder=folder, tokens=tokens, fields=fields, field_types=types,
                       train_sequences=train, valid_pairs=valid_pairs, files_hash=files_hash)
