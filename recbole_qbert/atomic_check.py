"""Check a dataset's RecBole atomic files before RecBole reads them.

RecBole reports a missing file, a wrong separator or a ragged row as a pandas or KeyError traceback
from deep inside its loader (or not at all). These checks turn each into one line naming the file.
"""
from pathlib import Path
from typing import Dict, List, Optional

from recbole_qbert.errors import QBertError

FIELD_TYPES = {"token", "token_seq", "float", "float_seq"}
_OTHER_SEPARATORS = {",": "comma", ";": "semicolon", " ": "space", "|": "pipe"}


def dataset_dir(config) -> Path:
    """The folder RecBole reads ``config['dataset']`` from (``data_path`` already joined with it)."""
    return Path(config["data_path"])


def read_header(path: Path, sep: str) -> Dict[str, str]:
    """``{field name: type}`` from an atomic file's first line, or a one-line error."""
    with open(path, encoding="utf-8") as f:
        first = f.readline().rstrip("\r\n")
    if not first:
        raise QBertError(f"{path}: empty file, expected a header like 'user_id:token{sep}item_id:token'")
    columns = first.split(sep)
    if len(columns) == 1:
        for other, name in _OTHER_SEPARATORS.items():
            if other != sep and ":" in first and len(first.split(other)) > 1:
                raise QBertError(f"{path}: header is separated by {name}s but field_separator is "
                                 f"{sep!r}; convert the file or set field_separator")
    header = {}
    for column in columns:
        name, _, ftype = column.partition(":")
        if not name or ftype not in FIELD_TYPES:
            raise QBertError(f"{path}: header column '{column}' is not 'name:type' with type in "
                             f"{sorted(FIELD_TYPES)}")
        header[name] = ftype
    return header


def check_rows(path: Path, sep: str, n_fields: int) -> int:
    """Every data row has the header's number of fields; returns the number of rows."""
    rows = 0
    with open(path, encoding="utf-8") as f:
        next(f)
        for lineno, line in enumerate(f, start=2):
            line = line.rstrip("\r\n")
            if not line:
                continue
            got = line.count(sep) + 1
            if got != n_fields:
                raise QBertError(f"{path}: line {lineno} has {got} fields, the header has {n_fields}")
            rows += 1
    if rows == 0:
        raise QBertError(f"{path}: no data rows")
    return rows


def check_atomic_files(config, suffixes: Optional[List[str]] = None) -> Dict[str, Dict[str, str]]:
    """Validate ``<dataset>.inter`` (required) and the other atomic files ``load_col`` names.

    Returns the headers by suffix. Raises :class:`QBertError` for a missing folder or file, a header
    in the wrong format or separator, a ragged row, or a ``load_col`` column the file lacks.
    """
    folder = dataset_dir(config)
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
        check_rows(path, sep, len(header))
        missing = [c for c in load_col.get(suffix, []) if c not in header]
        if missing:
            raise QBertError(f"{path}: load_col asks for {missing}, the file has {list(header)}")
        headers[suffix] = header
    return headers
