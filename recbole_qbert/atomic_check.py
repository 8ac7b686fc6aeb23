"""Check a dataset's RecBole atomic files before RecBole reads them.

RecBole reports a missing file, a wrong separator or a ragged row as a pandas or KeyError traceback
from deep inside its loader (or not at all). These checks turn each into one line naming the file.
"""
from pathlib import Path
from typing import Dict, List, Optional

from recbole_qbert.data.atomic_files import ITEM_FIELD, USER_FIELD, check_rows, read_header, read_interactions
from recbole_qbert.errors import QBertError


def check_atomic_files(config, suffixes: Optional[List[str]] = None) -> Dict[str, Dict[str, str]]:
    """Validate ``<dataset>.inter`` (required) and the other atomic files ``load_col`` names.

    Returns the headers by suffix. Raises :class:`QBertError` for a missing folder or file, a header
    in the wrong format or separator, a ragged row, a ``load_col`` column the file lacks, or an
    interaction with an empty user or item token or a timestamp that is not a number.
    """
    folder = Path(config["data_path"])  # RecBole has joined the dataset name to it
    name = config["dataset"]
    sep = config["field_separator"]
    if not folder.is_dir():
        raise QBertError(f"dataset '{name}' not found: no folder {folder}; convert it first "
                         "(python -m dataset_prep.convert --help) or set data_path")
    load_col = config["load_col"] or {}
    suffixes = suffixes or sorted(set(load_col) | {"inter"})
    headers = {}
    for suffix in suffixes:
        path = folder / f"{name}.{suffix}"
        if not path.is_file():
            if suffix == "inter" or suffix in load_col:
                raise QBertError(f"{path}: atomic file not found (dataset '{name}', data_path {folder.parent})")
            continue
        header = read_header(path, sep)
        if suffix == "inter" and sep == "\t" and {USER_FIELD, ITEM_FIELD} <= set(header):
            read_interactions(path)  # rows too; RecBole drops empty tokens and sorts NaN timestamps without a word
        else:
            check_rows(path, sep, len(header))
        wanted = load_col.get(suffix)  # RecBole reads True as every column
        missing = [c for c in wanted if c not in header] if isinstance(wanted, (list, tuple)) else []
        if missing:
            raise QBertError(f"{path}: load_col asks for {missing}, the file has {list(header)}")
        headers[suffix] = header
    return headers
