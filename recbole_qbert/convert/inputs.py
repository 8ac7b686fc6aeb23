"""Reading raw input files with one-line :class:`QBertError` messages instead of tracebacks."""
import gzip
import json
from pathlib import Path
from typing import IO, Iterator, List, Optional, Tuple

from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

_GZIP_MAGIC = b"\x1f\x8b"


def require_file(path: PathLike) -> Path:
    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: file not found")
    return path


def _is_gzip(path: Path) -> bool:
    with open(path, "rb") as f:
        return f.read(2) == _GZIP_MAGIC


def open_text(path: PathLike) -> IO[str]:
    """Open a UTF-8 text file for reading, gunzipping it when it starts with the gzip magic bytes."""
    path = require_file(path)
    if _is_gzip(path):
        return gzip.open(path, "rt", encoding="utf-8", newline="")
    return open(path, encoding="utf-8", newline="")


def numbered_lines(path: PathLike) -> Iterator[Tuple[int, str]]:
    """``(line number, line without its end-of-line)`` for each line of a text file (gzipped or not).

    Lines are read as bytes and decoded one by one, so a byte that is not UTF-8 is reported on its own
    line (a text-mode reader decodes blocks of several kilobytes and fails on the block's first line)."""
    path = require_file(path)
    lineno = 0
    try:
        with (gzip.open(path, "rb") if _is_gzip(path) else open(path, "rb")) as f:
            for lineno, raw in enumerate(f, start=1):
                yield lineno, raw.decode("utf-8").rstrip("\r\n")
    except UnicodeDecodeError as e:
        raise QBertError(f"{path}: line {lineno}: not UTF-8 text ({e.reason} at byte {e.start} of the line)") from None
    except (OSError, EOFError) as e:  # a truncated or damaged gzip stream
        raise QBertError(f"{path}: line {lineno + 1}: cannot read ({type(e).__name__}: {e})") from None


def load_json(path: PathLike):
    """A whole JSON document."""
    path = require_file(path)
    try:
        with open(path, encoding="utf-8") as f:
            return json.load(f)
    except json.JSONDecodeError as e:
        raise QBertError(f"{path}: line {e.lineno}: invalid JSON ({e.msg})") from None
    except UnicodeDecodeError as e:
        raise QBertError(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def read_tsv(path: PathLike, n_fields: int, header: Optional[List[str]] = None
             ) -> Iterator[Tuple[int, List[str]]]:
    """``(line number, fields)`` of a tab-separated file without quoting; blank lines are skipped.

    With ``header``, the first line must name exactly those columns (``name:type`` in RecBole files).
    """
    for lineno, line in numbered_lines(path):
        fields = line.split("\t")
        if lineno == 1 and header is not None:
            if fields != header:
                raise QBertError(f"{path}: line 1: header is {line!r}, expected {chr(9).join(header)!r}")
            continue
        if not line.strip():
            continue
        if len(fields) != n_fields:
            raise QBertError(f"{path}: line {lineno}: expected {n_fields} tab-separated fields, "
                             f"found {len(fields)}")
        yield lineno, fields


def parse_int(value: str, path: PathLike, lineno: int, what: str, hint: str = "") -> int:
    """A non-negative decimal integer written in ASCII digits; ``hint`` ends the error message."""
    if not (value.isascii() and value.isdigit()):
        raise QBertError(f"{path}: line {lineno}: {what} {value!r} is not a non-negative integer{hint}")
    return int(value)
