"""The in-memory result of a converter, before it is checked and written as atomic files."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Mapping, Sequence

import numpy as np
import pandas as pd

# RecBole field types a converter may give an item column
ITEM_FIELD_TYPES = ("token", "token_seq", "float")


@dataclass
class ConvertedDataset:
    """One converted dataset.

    ``inter`` has columns ``user_id``, ``item_id`` (original tokens, str) and ``timestamp`` (number);
    within a user its rows are in time order, ties in source order. ``items`` has ``item_id`` plus one
    column per entry of ``item_fields`` (column -> RecBole type). ``notes`` counts data quirks met on
    the way (duplicates, missing titles, ...), printed by the CLI and kept in the metadata file.
    """
    name: str
    inter: pd.DataFrame
    items: pd.DataFrame
    item_fields: Dict[str, str]
    sources: List[Path]
    converter: str
    arguments: Dict[str, object]
    real_timestamps: bool
    notes: Dict[str, object] = field(default_factory=dict)


def ordinal_inter(sequences: Mapping[str, Sequence[str]]) -> pd.DataFrame:
    """Interactions from each user's chronological item list; the position in the list is the timestamp."""
    lengths = np.fromiter((len(seq) for seq in sequences.values()), dtype=np.int64, count=len(sequences))
    starts = np.cumsum(lengths) - lengths
    return pd.DataFrame({
        "user_id": np.repeat(np.array(list(sequences), dtype=object), lengths),
        "item_id": np.array([item for seq in sequences.values() for item in seq], dtype=object),
        "timestamp": np.arange(lengths.sum(), dtype=np.int64) - np.repeat(starts, lengths),
    })
