"""Child processes (leaderboard runs, pipeline steps) that never outlive the command that started them.

Each child runs in its own process group and session, so a terminal's Ctrl-C reaches the parent only;
the parent forwards SIGINT or SIGTERM to every child's group, waits a bounded time, then SIGKILLs what
is left. On Linux a child also gets SIGTERM when its parent dies, even by SIGKILL, so no run is left
writing on its own.
"""
import ctypes
import os
import signal
import subprocess
import sys
import time
from typing import List

from recbole_qbert.locks import child_env

_PR_SET_PDEATHSIG = 1
_prctl = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None


class Stopped(KeyboardInterrupt):
    """SIGTERM or SIGINT reached this process. A ``KeyboardInterrupt``, so that ``except Exception``
    blocks let it through and ``finally`` blocks (temporary files, locks) still run."""

    def __init__(self, signum: int):
        super().__init__(signal.Signals(signum).name)
        self.signum = signum


def _raise_stopped(signum, frame):
    raise Stopped(signum)


def stop_on_signals() -> None:
    """Turn SIGTERM and SIGINT into :class:`Stopped` in this process (main thread only)."""
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, _raise_stopped)


def _die_with_parent(parent: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    if os.getppid() != parent:  # the parent died before prctl took effect
        os._exit(1)


class Children:
    """``with Children() as children: proc = children.start(cmd, ...)``; leaving the block by an
    exception or a signal stops every child still running (``grace_s`` seconds, then SIGKILL)."""

    def __init__(self, grace_s: float = 10.0):
        self.grace_s = grace_s
        self.procs: List[subprocess.Popen] = []

    def start(self, cmd: List[str], **popen_kwargs) -> subprocess.Popen:
        parent = os.getpid()
        preexec = (lambda: _die_with_parent(parent)) if _prctl is not None else None
        proc = subprocess.Popen(cmd, start_new_session=True, preexec_fn=preexec,
                                env=child_env(popen_kwargs.pop("env", None)), **popen_kwargs)
        self.procs.append(proc)
        return proc

    def __enter__(self) -> "Children":
        return self

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc is None:
            return
        signum = exc.signum if isinstance(exc, Stopped) else signal.SIGTERM
        self.stop(signum)

    def running(self) -> List[subprocess.Popen]:
        return [p for p in self.procs if p.poll() is None]

    def stop(self, signum: int = signal.SIGTERM) -> int:
        """Send ``signum`` to every running child's group, wait, SIGKILL the rest; how many were running."""
        running = self.running()
        if not running:
            return 0
        ignored = {s: signal.signal(s, signal.SIG_IGN) for s in (signal.SIGTERM, signal.SIGINT)}  # finish the cleanup
        try:
            for proc in running:
                _signal_group(proc.pid, signum)
            deadline = time.monotonic() + self.grace_s
            for proc in running:
                try:
                    proc.wait(timeout=max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    _signal_group(proc.pid, signal.SIGKILL)
                    proc.wait()
            for proc in running:  # grandchildren left in a group whose leader is gone
                _signal_group(proc.pid, signal.SIGKILL)
        finally:
            for s, handler in ignored.items():
                signal.signal(s, handler)
        return len(running)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except ProcessLookupError:
        pass
