"""Atomic file writes and content hashes.

Every artifact is written to a temporary file in the destination folder and renamed over the target,
so a crash leaves either the old file or the new one, never half of one.
"""
import contextlib
import glob
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator, Union

from recbole_qbert.errors import QBertError

PathLike = Union[str, os.PathLike]


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def check_output(path: PathLike, *, folder: bool = False) -> None:
    """Refuse an output ``path`` (a file, or with ``folder`` a folder) that cannot be written: it exists as
    the other kind, or one of its parents is a file. Stages call it on their outputs before any work, so
    that a bad path never leaves half of a run behind; :func:`atomic_path` calls it too."""
    path = Path(path)
    if path.exists() and path.is_dir() != folder:
        raise QBertError(f"{path}: is a {'file' if folder else 'folder'}, cannot write a "
                         f"{'folder' if folder else 'file'} there")
    parent = next(p for p in path.parents if p.exists())  # a path under a file does not "exist"
    if not parent.is_dir():
        raise QBertError(f"{parent}: is a file, cannot write {path} under it")


@contextlib.contextmanager
def atomic_path(path: PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``path``; on success it is renamed to ``path``, on error removed."""
    path = Path(path)
    check_output(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    tmp = Path(tmp)
    tmp.chmod(0o666 & ~_umask())  # mkstemp makes 0600 files; give artifacts the usual permissions
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_stale_temps(path: PathLike) -> None:
    """Delete the temporary files :func:`atomic_path` left for ``path`` (a file) or anywhere under ``path``
    (a folder) when a writer was killed before it could clean up. Call it only while no other process
    can be writing there (under :func:`recbole_qbert.locks.output_lock`)."""
    path = Path(path)
    stale = path.rglob(".*.tmp") if path.is_dir() else path.parent.glob(f".{glob.escape(path.name)}.*.tmp")
    for tmp in stale:
        tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_open(path: PathLike, mode: str = "w", **kwargs):
    """``open`` a file for writing that appears at ``path`` only once it is complete."""
    with atomic_path(path) as tmp, open(tmp, mode, **kwargs) as f:
        yield f


def write_text(path: PathLike, text: str) -> None:
    with atomic_open(path, "w", encoding="utf-8") as f:
        f.write(text)


def write_json(path: PathLike, obj) -> None:
    write_text(path, json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n")


def sha256_file(path: PathLike, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(chunk), b""):
            h.update(block)
    return h.hexdigest()


def sha256_json(obj) -> str:
    """Hash of a JSON-able object, independent of key order."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()
