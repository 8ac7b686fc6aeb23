"""A dataset's item tokens and item table, read from its RecBole atomic files as RecBole reads them."""
from pathlib import Path
from typing import List, Optional

import pandas as pd

from recbole_qbert.config import resolve_data_path
from recbole_qbert.errors import QBertError


def dataset_folder(dataset: str, data_path: Optional[str] = None) -> Path:
    """``<data_path>/<dataset>/``; ml-100k comes from the recbole wheel, as RecBole itself does."""
    if dataset == "ml-100k":
        import recbole

        return Path(recbole.__file__).resolve().parent / "dataset_example" / "ml-100k"
    return Path(resolve_data_path(data_path or "build/atomic/")) / dataset


def _read(path: Path, columns: Optional[List[str]] = None) -> pd.DataFrame:
    """An atomic file with plain column names (``item_id`` for ``item_id:token``), all values as str."""
    try:
        header = pd.read_csv(path, sep="\t", nrows=0).columns.tolist()
    except (OSError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise QBertError(f"{path}: cannot read atomic file ({e})") from None
    names = {h: h.split(":", 1)[0] for h in header}
    wanted = [h for h in header if columns is None or names[h] in columns]
    frame = pd.read_csv(path, sep="\t", usecols=wanted, dtype=str, keep_default_na=False)
    return frame.rename(columns=names)


def item_tokens(dataset: str, data_path: Optional[str] = None) -> List[str]:
    """Sorted item tokens of the dataset: those of ``<dataset>.inter`` and, if present, ``<dataset>.item``
    (RecBole gives an internal id to both)."""
    folder = dataset_folder(dataset, data_path)
    inter = folder / f"{dataset}.inter"
    if not inter.is_file():
        raise QBertError(f"dataset '{dataset}' not found: no {inter}; convert it first "
                         "(python -m dataset_prep.convert --help) or pass --data-path")
    tokens = set(_read(inter, ["item_id"])["item_id"].tolist())
    item = folder / f"{dataset}.item"
    if item.is_file():
        tokens |= set(_read(item, ["item_id"])["item_id"].tolist())
    if not tokens:
        raise QBertError(f"{inter}: no items")
    return sorted(tokens)


def item_table(dataset: str, data_path: Optional[str] = None) -> Optional[pd.DataFrame]:
    """The ``<dataset>.item`` table indexed by item token, or ``None`` when the dataset has none."""
    path = dataset_folder(dataset, data_path) / f"{dataset}.item"
    if not path.is_file():
        return None
    frame = _read(path)
    if "item_id" not in frame:
        raise QBertError(f"{path}: no item_id column")
    return frame.drop_duplicates("item_id").set_index("item_id")
