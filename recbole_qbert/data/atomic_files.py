"""Reading a converted dataset: the RecBole atomic files ``<data_path>/<name>/<name>.{inter,item}``.

The one place that knows where a dataset's folder is (the name ``ml-100k`` always means the copy inside
the recbole wheel, as in RecBole itself), how a typed header ``name:type`` is read and checked, how
``.inter`` and ``.item`` rows are read (values holding ``"`` are CSV-quoted, as RecBole's pandas reader
expects) and in which order item tokens are listed. Every problem is a one-line :class:`QBertError`
naming the file and, where there is one, the line.
"""
import csv
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Iterator, List, Optional, Sequence, Tuple

import numpy as np
import pandas as pd

from recbole_qbert.convert.inputs import open_text
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

USER_FIELD, ITEM_FIELD, TIME_FIELD = "user_id", "item_id", "timestamp"
FIELD_TYPES = {"token", "token_seq", "float", "float_seq"}
WHEEL_DATASETS = ("ml-100k",)
_OTHER_SEPARATORS = {",": "comma", ";": "semicolon", " ": "space", "|": "pipe"}


def dataset_folder(name: str, data_path: Optional[PathLike] = None) -> Path:
    """``<data_path>/<name>``, or the recbole wheel's copy for ``ml-100k``.

    ``data_path`` defaults to ``build/atomic``; a relative one is taken from the working directory when
    it exists there, else from the project root."""
    if not name or "/" in name or name.startswith("."):
        raise QBertError(f"dataset name {name!r} is not a plain folder name")
    if name in WHEEL_DATASETS:
        import recbole

        return Path(recbole.__file__).resolve().parent / "dataset_example" / name
    from recbole_qbert.config import project_path

    return project_path(data_path or Path("build") / "atomic", cwd_first=True) / name


def read_header(path: Path, sep: str = "\t") -> Dict[str, str]:
    """``{field name: type}`` from an atomic file's first line, in file order, or a one-line error."""
    try:
        with open(path, encoding="utf-8") as f:
            first = f.readline().rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise QBertError(f"{path}: not UTF-8 text ({e.reason})") from None
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
        if name in header:
            raise QBertError(f"{path}: header names column '{name}' twice")
        header[name] = ftype
    return header


def check_rows(path: Path, sep: str, n_fields: int) -> int:
    """Every data row has the header's number of fields; returns the number of rows."""
    rows = 0
    try:
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
    except UnicodeDecodeError as e:
        raise QBertError(f"{path}: not UTF-8 text ({e.reason})") from None
    if rows == 0:
        raise QBertError(f"{path}: no data rows")
    return rows


def _require_columns(path: Path, header, required: Sequence[str]) -> None:
    missing = [c for c in required if c not in header]
    if missing:
        names = ", ".join(repr(c) for c in missing)
        raise QBertError(f"{path}: line 1: header lacks column{'s' * (len(missing) > 1)} {names}")


def read_quoted_atomic(path: PathLike, required: Sequence[str]) -> Iterator[Tuple[int, Dict[str, str]]]:
    """``(line number, {field name: value})`` of a tab-separated atomic file with CSV double-quote quoting.

    The header's ``name:type`` columns are keyed by name and must include ``required``. Quoted values
    may hold tabs and newlines, so a record can span lines; its line number is the one it ends on.
    """
    try:
        with open_text(path) as f:
            reader = csv.reader(f, delimiter="\t", quotechar='"', strict=True)
            header = [column.partition(":")[0] for column in next(reader, [])]
            _require_columns(path, header, required)
            for fields in reader:
                if not fields:
                    continue
                if len(fields) != len(header):
                    raise QBertError(f"{path}: line {reader.line_num}: expected {len(header)} "
                                     f"tab-separated fields, found {len(fields)}")
                yield reader.line_num, dict(zip(header, fields))
    except csv.Error as e:
        raise QBertError(f"{path}: line {reader.line_num}: {e}") from None
    except UnicodeDecodeError as e:
        raise QBertError(f"{path}: not UTF-8 text ({e.reason})") from None


@dataclass
class Interactions:
    """The rows of a ``.inter`` file, in file order.

    * ``header``: field -> RecBole type, in file order.
    * ``frame`` ``(R, len(header))``: every value as the string in the file.
    * ``times`` ``(R,)`` float64 timestamps, or ``None`` when the file has no ``timestamp`` column.
    """
    path: Path
    header: Dict[str, str]
    frame: pd.DataFrame
    times: Optional[np.ndarray]

    @property
    def users(self) -> np.ndarray:
        """``(R,)`` user tokens."""
        return self.frame[USER_FIELD].to_numpy()

    @property
    def items(self) -> np.ndarray:
        """``(R,)`` item tokens."""
        return self.frame[ITEM_FIELD].to_numpy()


def read_interactions(path: Path, *, require_time: bool = False) -> Interactions:
    """Read a ``.inter`` file: rows of the header's width, user and item tokens non-empty, timestamps
    numbers (and present with ``require_time``)."""
    header = read_header(path)
    _require_columns(path, header, (USER_FIELD, ITEM_FIELD, TIME_FIELD) if require_time else (USER_FIELD, ITEM_FIELD))

    def refuse(message: str):
        # pandas fills a short row with empty fields and stops at a long one without its line: a ragged
        # row, found by a second read only when something is wrong, is named first
        check_rows(path, "\t", len(header))
        raise QBertError(f"{path}: {message}")

    try:
        frame = pd.read_csv(path, sep="\t", header=0, names=list(header), dtype=str, keep_default_na=False,
                            encoding="utf-8")
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError) as e:
        frame, error = None, str(e).splitlines()[0]
    if frame is None:
        refuse(f"cannot read interactions ({error})")
    if len(frame) == 0:
        refuse("no interactions")
    empty = (frame[ITEM_FIELD] == "") | (frame[USER_FIELD] == "")
    if empty.any():
        refuse(f"line {int(empty.to_numpy().argmax()) + 2}: empty user or item token")
    times = None
    if TIME_FIELD in frame:
        parsed = pd.to_numeric(frame[TIME_FIELD], errors="coerce")
        if parsed.isna().any():
            refuse(f"line {int(parsed.isna().to_numpy().argmax()) + 2}: timestamp is not a number")
        times = parsed.to_numpy(dtype=np.float64)
    return Interactions(path=path, header=header, frame=frame, times=times)


def read_items(path: Path) -> Tuple[Dict[str, Dict[str, str]], Dict[str, str]]:
    """A ``.item`` file as ``({item token: {field: stripped value}}, {field: RecBole type})``, the item
    field left out of both; an empty or repeated item token is an error."""
    header = read_header(path)
    _require_columns(path, header, (ITEM_FIELD,))
    rows = {}
    for lineno, values in read_quoted_atomic(path, [ITEM_FIELD]):
        token = values[ITEM_FIELD].strip()
        if not token:
            raise QBertError(f"{path}: line {lineno}: empty item token")
        if token in rows:
            raise QBertError(f"{path}: line {lineno}: item {token} appears twice")
        rows[token] = {k: v.strip() for k, v in values.items() if k != ITEM_FIELD}
    return rows, {k: v for k, v in header.items() if k != ITEM_FIELD}


@dataclass
class ConvertedDataset:
    """A dataset as read from its folder.

    * ``tokens`` ``(N,)`` str, sorted: every item of ``.inter`` and ``.item`` (RecBole gives an internal
      id to both); the row order of every per-item matrix made from the dataset.
    * ``items``: item token -> ``{field: value}`` from ``.item`` (``item_path``; ``None`` and ``{}``
      without one), ``item_types`` the fields' RecBole types.
    """
    name: str
    folder: Path
    interactions: Interactions
    item_path: Optional[Path]
    items: Dict[str, Dict[str, str]]
    item_types: Dict[str, str]
    tokens: np.ndarray

    @property
    def files(self) -> List[Path]:
        """The atomic files read, ``.inter`` first."""
        return [self.interactions.path] + ([self.item_path] if self.item_path else [])


def read_dataset(name: str, data_path: Optional[PathLike] = None, *, require_time: bool = False) -> ConvertedDataset:
    """Read dataset ``name`` from ``data_path`` (see :func:`dataset_folder`)."""
    folder = dataset_folder(name, data_path)
    inter_path, item_path = folder / f"{name}.inter", folder / f"{name}.item"
    if not inter_path.is_file():
        raise QBertError(f"dataset '{name}' not found: {inter_path}: interaction file not found; convert it "
                         "first (python -m dataset_prep.convert --help) or pass --data-path")
    interactions = read_interactions(inter_path, require_time=require_time)
    if not item_path.is_file():
        item_path = None
    items, item_types = read_items(item_path) if item_path else ({}, {})
    tokens = np.array(sorted(set(interactions.items.tolist()) | set(items)), dtype=str)
    return ConvertedDataset(name=name, folder=folder, interactions=interactions, item_path=item_path,
                            items=items, item_types=item_types, tokens=tokens)
