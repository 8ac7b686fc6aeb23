"""A dataset's items as stage 1 sees them: item tokens, their content fields and the TRAINING sequences.

The atomic files are read by :mod:`recbole_qbert.data.atomic_files`.

**No leakage.** The interactions are split by the protocol's leave-one-out split
(:mod:`recbole_qbert.data.split`): :attr:`ItemCatalog.train_sequences` holds each user's training part;
nothing else of the interactions is exposed except the validation transitions
(:attr:`ItemCatalog.valid_pairs`), which stage 1 uses only to evaluate its output, never to train.
"""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import numpy as np

from recbole_qbert.data.atomic_files import read_dataset
from recbole_qbert.data.split import leave_one_out
from recbole_qbert.safe_io import PathLike, sha256_file, sha256_json


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


def load_catalog(name: str, data_path: Optional[PathLike] = None) -> ItemCatalog:
    """Read dataset ``name`` from ``data_path`` (default ``build/atomic``; ``ml-100k`` from the wheel)."""
    dataset = read_dataset(name, data_path)
    index = {t: i for i, t in enumerate(dataset.tokens.tolist())}
    rows = dataset.interactions.items
    items = np.fromiter((index[t] for t in rows), dtype=np.int64, count=len(rows))
    splits = leave_one_out(dataset.interactions.users, dataset.interactions.times)
    train = [items[s.train] for s in splits]
    valid_pairs = np.array([(items[s.train[-1]], items[s.valid]) for s in splits if s.valid is not None],
                           dtype=np.int64).reshape(-1, 2)
    fields = {f: [dataset.items.get(t, {}).get(f, "") for t in dataset.tokens.tolist()] for f in dataset.item_types}
    files_hash = sha256_json([sha256_file(p) for p in dataset.files])[:16]
    return ItemCatalog(name=name, folder=dataset.folder, tokens=dataset.tokens, fields=fields,
                       field_types=dataset.item_types, train_sequences=train, valid_pairs=valid_pairs,
                       files_hash=files_hash)
