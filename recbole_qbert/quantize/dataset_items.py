"""A dataset's item tokens and item table as stage 2 uses them, read by :mod:`recbole_qbert.data.atomic_files`."""
from typing import List, Optional

import pandas as pd

from recbole_qbert.data.atomic_files import read_dataset


def item_tokens(dataset: str, data_path: Optional[str] = None) -> List[str]:
    """Sorted item tokens of the dataset: those of ``<dataset>.inter`` and, if present, ``<dataset>.item``
    (RecBole gives an internal id to both)."""
    return read_dataset(dataset, data_path).tokens.tolist()


def item_table(dataset: str, data_path: Optional[str] = None) -> Optional[pd.DataFrame]:
    """The ``<dataset>.item`` fields ``(items, fields)`` as str, indexed by item token, or ``None`` when
    the dataset has no ``.item`` file."""
    read = read_dataset(dataset, data_path)
    if read.item_path is None:
        return None
    return pd.DataFrame.from_dict(read.items, orient="index", columns=list(read.item_types))
