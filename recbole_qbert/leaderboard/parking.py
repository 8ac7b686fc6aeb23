"""Carrying unfinished runs across machines that do not keep ``saved/``.

A converged run can outlast a session (a RecBole SASRec on Amazon Beauty is hours of CPU), and a fresh
machine starts without the ``saved/`` folder that holds its checkpoints. :func:`park` copies an
unfinished run's ``last.pth`` and ``best.pth`` into ``<out>/unfinished/<run id>/``, beside the records,
where a commit carries them; the next leaderboard run copies them back (:func:`unpark`) and resumes
exactly where the run stopped. A parked copy is deleted once its run has a record.
"""
import shutil
from pathlib import Path
from typing import List, Optional

from recbole_qbert.leaderboard.plan import current_record
from recbole_qbert.leaderboard.spec import Spec
from recbole_qbert.locks import output_lock
from recbole_qbert.safe_io import atomic_path

# last.pth first: a best.pth newer than last.pth is rewritten identically when the resumed run replays
# its epochs, while an older one would be the wrong model for last.pth's best epoch
CHECKPOINTS = ("last.pth", "best.pth")


def _copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        shutil.copyfile(src, tmp)


def park(spec: Spec) -> List[Path]:
    """Copy the checkpoints of every unfinished run of the spec's selection into its parking folder;
    return the folders written. A leaderboard or run still writing there is refused (its lock)."""
    parked = []
    with output_lock(spec.out, what="leaderboard"):
        for model in spec.run_models:
            for seed in spec.run_seeds:
                src, dst = spec.run_dir(model, seed), spec.parked_dir(model, seed)
                with output_lock(src, what="run"):
                    if not (src / "last.pth").is_file() or current_record(spec, model, seed)[0]:
                        continue
                    for name in CHECKPOINTS:
                        if (src / name).is_file():
                            _copy(src / name, dst / name)
                parked.append(dst)
    return parked


def unpark(spec: Spec, model: str, seed: int) -> Optional[Path]:
    """Copy a parked run back into its run folder when that has no ``last.pth`` of its own; return the
    parked folder it came from, or None."""
    src, dst = spec.parked_dir(model, seed), spec.run_dir(model, seed)
    if (dst / "last.pth").is_file() or not (src / "last.pth").is_file():
        return None
    for name in CHECKPOINTS:
        if (src / name).is_file():
            _copy(src / name, dst / name)
    return src


def discard(spec: Spec, model: str, seed: int) -> None:
    """Delete a run's parked checkpoints (it finished, or they no longer match its config)."""
    shutil.rmtree(spec.parked_dir(model, seed), ignore_errors=True)
    parent = spec.parked_dir(model, seed).parent
    if parent.is_dir() and not any(parent.iterdir()):
        parent.rmdir()
