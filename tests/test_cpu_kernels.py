"""Importing recbole_qbert pins torch's CPU kernels to AVX2 (stage outputs must not depend on the CPU),
unless the user chose otherwise."""
import os
import subprocess
import sys

import pytest

from recbole_qbert import cpu_kernels
from recbole_qbert.cpu_kernels import PINNED, cpu_flags, pin_cpu_kernels

PROBE = ("import recbole_qbert, numpy, torch, threadpoolctl; "
         "print(torch.backends.cpu.get_cpu_capability(), "
         "*{p['architecture'] for p in threadpoolctl.threadpool_info() if p['internal_api'] == 'openblas'})")
# float64 log and exp: numpy's AVX-512 loops round differently from its AVX2 ones (the graph view's PMI)
LOG_BYTES = ("import recbole_qbert, hashlib, numpy as np; "
             "x = np.random.default_rng(0).random(10000) * 10 + 1e-3; "
             "print(hashlib.sha256(np.log(x).tobytes() + np.exp(x).tobytes()).hexdigest())")


def probe(code: str, **env) -> list:
    """What ``code`` prints, split, in a fresh process that imports recbole_qbert first."""
    clean = {k: v for k, v in os.environ.items() if k not in PINNED}  # this process pinned them already
    return subprocess.run([sys.executable, "-c", code], env={**clean, **env}, capture_output=True, text=True,
                          check=True).stdout.split()


def kernels(**env) -> list:
    """``[torch's kernels, the OpenBLAS core of numpy and scipy]``."""
    return probe(PROBE, **env)


@pytest.mark.skipif(not {"avx2", "fma"} <= cpu_flags(), reason="needs an x86 CPU with AVX2")
def test_import_pins_avx2_kernels_and_a_users_choice_wins():
    assert kernels() == ["AVX2", "Haswell"]
    assert kernels(ATEN_CPU_CAPABILITY="default", OPENBLAS_CORETYPE="Sandybridge") == ["DEFAULT", "Sandybridge"]


@pytest.mark.skipif("avx512f" not in cpu_flags(), reason="needs an x86 CPU with AVX-512")
def test_numpy_runs_its_avx2_loops_on_an_avx512_machine():
    script = "import recbole_qbert; from recbole_qbert.cpu_kernels import numpy_kernels; print(numpy_kernels())"
    assert "512" not in probe(script)[0] and probe(script, NPY_DISABLE_CPU_FEATURES="")[0] != probe(script)[0]
    # the pin is what changes the bytes here (the AVX2 loops' bytes are those of an AVX2 machine)
    assert probe(LOG_BYTES) != probe(LOG_BYTES, NPY_DISABLE_CPU_FEATURES="")


def test_nothing_is_pinned_where_avx2_kernels_cannot_run(monkeypatch):
    for key in PINNED:
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setattr(cpu_kernels.platform, "machine", lambda: "aarch64")
    assert pin_cpu_kernels() == {} and not any(k in os.environ for k in PINNED)
    monkeypatch.setattr(cpu_kernels.platform, "machine", lambda: "x86_64")
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda: {"sse4_2", "avx"})
    assert pin_cpu_kernels() == {}
    monkeypatch.setattr(cpu_kernels, "cpu_flags", lambda: {"avx2", "fma"})
    monkeypatch.setenv("MKL_CBWR", "COMPATIBLE")
    assert pin_cpu_kernels() == {k: v for k, v in PINNED.items() if k != "MKL_CBWR"}
    assert os.environ["MKL_CBWR"] == "COMPATIBLE"
