"""One CPU kernel family on every x86 machine, so that stage outputs do not depend on the CPU.

Torch (ATen's vectorised kernels, MKL's BLAS, oneDNN) and numpy's OpenBLAS pick their kernels from the
CPU they run on: on an AVX-512 machine the sums run in another order than on an AVX2 one, and the last
float bits differ. For training that is noise; for stage 1 it is not, because the text features feed quantization, whose codes
then differ, and every record built on them stops matching. Measured on one AVX2 machine (MiniLM over
400 item texts, one thread): the default kernels, ``MKL_CBWR=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` gave
the same bytes; ``MKL_CBWR=COMPATIBLE`` or ``ATEN_CPU_CAPABILITY=default`` gave other bytes; numpy's
OpenBLAS chose its Haswell (AVX2) kernels, and its other kernel families give other bytes for one matrix
product. Pinning AVX2 therefore costs nothing on AVX2 machines and should make AVX-512 ones compute what
AVX2 ones do.

The settings only take effect before torch first computes and before numpy is imported, so
``recbole_qbert`` applies them on import (every command line imports it first); a variable the user
has set is left alone.
"""
import os
import platform
from typing import Optional

PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
          "OPENBLAS_CORETYPE": "Haswell"}


def cpuinfo_field(name: str) -> Optional[str]:
    """The first CPU's ``name`` field in ``/proc/cpuinfo`` (``"model name"``, ``"flags"``), or None where
    there is no such file or field."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                key, _, value = line.partition(":")
                if key.strip() == name:
                    return value.strip()
    except OSError:
        pass
    return None


def cpu_flags() -> set:
    """The CPU's feature flags (empty where ``/proc/cpuinfo`` has none)."""
    return set((cpuinfo_field("flags") or "").split())


def pin_cpu_kernels() -> dict:
    """Set :data:`PINNED` in the environment (where unset) on an x86 CPU with AVX2 and FMA; returns what
    was set. Elsewhere (ARM, older x86) nothing is pinned: AVX2 kernels would not run there."""
    if platform.machine().lower() not in ("x86_64", "amd64") or not {"avx2", "fma"} <= cpu_flags():
        return {}
    pinned = {k: v for k, v in PINNED.items() if k not in os.environ}
    os.environ.update(pinned)
    return pinned
