"""One writer per output: exclusive locks on run folders and stage outputs.

``with output_lock(path):`` holds an exclusive ``fcntl.flock`` on ``<parent>/.<name>.lock`` (beside
``path``, so that hashes of an output folder never see it). The lock file holds the holder's pid, host,
command and start time, so a second writer is refused with one line naming them. The kernel drops a
flock when its process dies, however it dies; a lock file still naming a dead process on this host is
taken over with a note. A lock file written on another host is never taken over: only that host can
tell whether its process is gone.

A child process started by a lock holder (with :func:`child_env`) may write under its parent's locks:
``output_lock`` in the child then succeeds without locking again.
"""
import contextlib
import datetime
import errno
import fcntl
import json
import os
import socket
import sys
from pathlib import Path
from typing import Iterator, Optional

from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike, remove_stale_temps

PARENT_ENV = "QBERT_LOCK_PARENT"  # pid of the lock holder that started this process


def lock_file(path: PathLike) -> Path:
    path = Path(path).resolve()
    return path.parent / f".{path.name}.lock"


def child_env(env: Optional[dict] = None) -> dict:
    """Environment for a child process that writes under this process's locks."""
    return {**(os.environ if env is None else env), PARENT_ENV: str(os.getpid())}


def _holder(fd: int) -> dict:
    os.lseek(fd, 0, os.SEEK_SET)
    text = os.read(fd, 1 << 16).decode("utf-8", "replace")
    try:
        holder = json.loads(text)
    except ValueError:
        return {}
    return holder if isinstance(holder, dict) else {}


def _describe(holder: dict) -> str:
    return (f"pid {holder.get('pid', '?')} on {holder.get('host', '?')} since {holder.get('started', '?')} "
            f"({holder.get('command', '?')})")


def _inherited(holder: dict) -> bool:
    """The holder is our parent and started us to write under its lock."""
    pid = holder.get("pid")
    return (holder.get("host") == socket.gethostname() and pid == os.getppid()
            and os.environ.get(PARENT_ENV) == str(pid))


@contextlib.contextmanager
def output_lock(path: PathLike, *, what: str = "output") -> Iterator[None]:
    """Hold the lock of ``path`` (a file or folder, which need not exist yet) for the ``with`` body.

    Raises a one-line :class:`QBertError` naming the holder when another process writes there. For a
    folder, temporary files an earlier writer left behind (killed mid-write) are removed once the lock
    is ours (for a file, its own leftover temporary files).
    """
    path = Path(path)
    lock = lock_file(path)
    created = [p for p in (lock.parent, *lock.parent.parents) if not p.exists()]  # deepest first
    try:
        lock.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError):  # a parent is a file
        raise QBertError(f"{path}: cannot write there: one of its parent folders is a file") from None
    try:
        with _locked(path, lock, what):
            yield
    finally:
        for folder in created:  # a writer that wrote nothing leaves no empty folders behind
            try:
                folder.rmdir()
            except OSError:
                break


@contextlib.contextmanager
def _locked(path: Path, lock: Path, what: str) -> Iterator[None]:
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                os.close(fd)
                raise
            holder = _holder(fd)
            os.close(fd)
            if _inherited(holder):
                yield
                return
            raise QBertError(f"{path}: another {what} writer holds {lock.name}: {_describe(holder)}; "
                             "wait for it or stop it") from None
        # the file we locked must still be the one at that path: a releasing holder unlinks it
        try:
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    previous = _holder(fd)
    if previous and previous.get("host") != socket.gethostname():
        os.close(fd)  # the lock file stays: only its host can tell whether that run is gone
        raise QBertError(f"{lock}: written by {_describe(previous)}, another host; delete it if that run is gone")
    if previous:
        print(f"note: {lock}: taking over the stale lock of {_describe(previous)}, which is no longer running",
              file=sys.stderr, flush=True)
    try:
        me = {"pid": os.getpid(), "host": socket.gethostname(),
              "command": " ".join([os.path.basename(sys.argv[0])] + sys.argv[1:]),
              "started": datetime.datetime.now().isoformat(timespec="seconds")}
        os.ftruncate(fd, 0)
        os.lseek(fd, 0, os.SEEK_SET)
        os.write(fd, (json.dumps(me) + "\n").encode("utf-8"))
        os.fsync(fd)
        remove_stale_temps(path)
        yield
    finally:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(lock)
        os.close(fd)
