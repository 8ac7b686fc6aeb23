"""What a run records about where and how it ran: machine, versions, commit, peak memory."""
import os
import platform
import resource
import subprocess
import sys
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import torch

from recbole_qbert.config import PROJECT_ROOT, project_path
from recbole_qbert.cpu_kernels import cpu_flags, cpuinfo_field, numpy_kernels
from recbole_qbert.cpu_memory import malloc_settings


def _memory_gib() -> float:
    try:
        return round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)
    except (ValueError, OSError):
        return float("nan")


@lru_cache(maxsize=1)
def machine_info() -> dict:
    import recbole

    gpu = torch.cuda.get_device_name(0) if torch.cuda.is_available() else None
    flags = cpu_flags()
    return {
        "cpu": cpuinfo_field("model name") or platform.processor() or "unknown",
        # the kernels torch dispatched to (AVX2 where recbole_qbert pinned them) and the CPU's widest
        # vector instructions
        "cpu_kernels": torch.backends.cpu.get_cpu_capability(),
        "numpy_kernels": numpy_kernels(),
        "cpu_isa": "avx512" if "avx512f" in flags else "avx2" if "avx2" in flags else "other",
        "malloc": malloc_settings() or "default",  # glibc thresholds recbole_qbert raised (cpu_memory)
        "cores": len(os.sched_getaffinity(0)),
        "torch_threads": torch.get_num_threads(),
        "memory_gib": _memory_gib(),
        "gpu": gpu,
        "python": platform.python_version(),
        "torch": torch.__version__,
        "recbole": recbole.__version__,
    }


def machine_summary(machine: dict) -> str:
    """One line naming a :func:`machine_info` dict: the GPU if there was one, else the CPU."""
    return machine["gpu"] or f"{machine['cores']}-core CPU ({machine['cpu']})"


@lru_cache(maxsize=1)
def git_commit() -> str:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=PROJECT_ROOT,
                             capture_output=True, text=True, timeout=10)
        # results/ is what runs write: a run that updates committed results leaves the code clean
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":!results"],
                               cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=10).stdout.strip()
        return out.stdout.strip() + ("-dirty" if dirty else "") if out.returncode == 0 else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def peak_memory_mb() -> dict:
    """Peak resident memory of this process and, on a GPU, peak allocated device memory, in MiB."""
    peak = {"rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)}
    if torch.cuda.is_available():
        peak["gpu_mb"] = round(torch.cuda.max_memory_allocated() / 2**20, 1)
    return peak


def command_line(drop: Sequence[str] = ()) -> str:
    """This process's command line; ``drop``: options left out (``--opt=value`` or ``--opt value``)."""
    args, skip = [], False
    for arg in sys.argv[1:]:
        if skip:
            skip = False
        elif arg in drop:
            skip = True
        elif arg.split("=", 1)[0] not in drop:
            args.append(arg)
    return " ".join([os.path.basename(sys.argv[0])] + args)


def run_budget(config) -> dict:
    """What bounds a run's training; a leaderboard reuses a record only under the same budget."""
    budget = {key: config[key] for key in ("epochs", "train_budget_s", "train_budget_clock", "stopping_step")}
    if config["plateau_lr_drops"]:  # only then, so that records made before the option stay current
        budget.update(plateau_lr_drops=config["plateau_lr_drops"], plateau_lr_factor=config["plateau_lr_factor"])
    return budget


def run_inputs(config) -> dict:
    """SHA-256 of the files a run reads: the dataset's atomic files and, for models on semantic IDs,
    the ``.sid`` file, any pretrained checkpoint and the values of any content feature tables (their
    files also hold timings, which differ on every rebuild). A leaderboard reuses a record only while
    these are unchanged."""
    from recbole_qbert.features.table import FeatureTable
    from recbole_qbert.safe_io import sha256_file

    folder = Path(config["data_path"])
    inputs = {}
    for suffix in ("inter", "item"):
        path = folder / f"{config['dataset']}.{suffix}"
        if path.is_file():
            inputs[path.name] = sha256_file(path)
    if "sid_file" in config:
        from recbole_qbert.semantic_ids import dataset_file, resolve_sid_path

        path = resolve_sid_path(config["sid_file"], config["dataset"])
        inputs["sid"] = sha256_file(path) if path.is_file() else None
        for value in config["content_features"] or []:
            path = dataset_file(value, config["dataset"])
            inputs[f"content:{path.name}"] = FeatureTable.load(path).content_hash() if path.is_file() else None
    if config["test_subset_items"]:
        path = project_path(config["test_subset_items"], cwd_first=True)
        inputs["test_subset_items"] = sha256_file(path) if path.is_file() else None
    if "pretrained_checkpoint" in config and config["pretrained_checkpoint"]:
        path = project_path(config["pretrained_checkpoint"], cwd_first=True)  # as load_pretrained
        inputs["pretrained_checkpoint"] = sha256_file(path) if path.is_file() else None
    return inputs

