"""One CPU kernel family on every x86 machine, so that stage outputs do not depend on the CPU.

Torch (ATen's vectorised kernels, MKL's BLAS, oneDNN) and numpy's OpenBLAS pick their kernels from the
CPU they run on: on an AVX-512 machine the sums run in another order than on an AVX2 one, and the last
float bits differ. For training that is noise; for stage 1 it is not, because the text features feed quantization, whose codes
then differ, and every record built on them stops matching. Measured on one AVX2 machine (MiniLM over
400 item texts, one thread): the default kernels, ``MKL_CBWR=AVX2`` and ``ATEN_CPU_CAPABILITY=avx2`` gave
the same bytes; ``MKL_CBWR=COMPATIBLE`` or ``ATEN_CPU_CAPABILITY=default`` gave other bytes; numpy's
OpenBLAS chose its Haswell (AVX2) kernels, and its other kernel families give other bytes for one matrix
product. numpy's own ufunc loops are pinned the same way (``NPY_DISABLE_CPU_FEATURES``). Pinning AVX2 therefore costs nothing on AVX2 machines and should make AVX-512 ones compute what
AVX2 ones do.

The settings only take effect before torch first computes and before numpy is imported, so
``recbole_qbert`` applies them on import (every command line imports it first); a variable the user
has set is left alone.
"""
import os
import platform
import warnings
from typing import Optional

# numpy picks its own SIMD loops at run time too: on an AVX-512 machine its float64 log and exp (the
# co-occurrence graph's PMI) give other last bits than its AVX2 loops, and so another .sid (measured on
# Beauty, 2026-12-04). These are its names for its AVX-512 targets: X86_V4 from numpy 2.4, the others before.
NUMPY_AVX512 = "X86_V4 AVX512F AVX512CD AVX512_KNL AVX512_KNM AVX512_SKX AVX512_CLX AVX512_CNL AVX512_ICL AVX512_SPR"
PINNED = {"ATEN_CPU_CAPABILITY": "avx2", "MKL_CBWR": "AVX2", "ONEDNN_MAX_CPU_ISA": "AVX2",
          "OPENBLAS_CORETYPE": "Haswell", "NPY_DISABLE_CPU_FEATURES": NUMPY_AVX512}


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
    if "NPY_DISABLE_CPU_FEATURES" in pinned:
        # numpy reads it once, on import, and warns about the names this version does not dispatch
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ImportWarning)
            import numpy  # noqa: F401
    return pinned


def numpy_kernels() -> str:
    """numpy's best SIMD target in use (``X86_V3`` is AVX2 in numpy 2.4), ``baseline`` where none is."""
    from numpy._core._multiarray_umath import __cpu_dispatch__, __cpu_features__

    used = [t for t in __cpu_dispatch__ if __cpu_features__.get(t)]
    return used[-1] if used else "baseline"
