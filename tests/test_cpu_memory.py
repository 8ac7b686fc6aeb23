"""Importing recbole_qbert keeps freed tensor memory in the heap (glibc), so large per-step tensors are
not faulted in again at every step; a user's own malloc settings win."""
import os
import platform
import subprocess
import sys

import pytest

from recbole_qbert.cpu_memory import USER_VARIABLES

# page faults of 20 allocations of a 100 MB tensor, each written and freed, after importing recbole_qbert
PROBE = ("import resource, recbole_qbert, torch\n"
         "from recbole_qbert.cpu_memory import malloc_settings\n"
         "torch.ones(25_000_000)\n"
         "before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt\n"
         "for _ in range(20):\n"
         "    torch.ones(25_000_000)\n"
         "print(resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before, bool(malloc_settings()))\n")


def faults(**env):
    clean = {k: v for k, v in os.environ.items() if k not in USER_VARIABLES}
    out = subprocess.run([sys.executable, "-c", PROBE], env={**clean, **env}, capture_output=True, text=True,
                         check=True).stdout.split()
    return int(out[0]), out[1] == "True"


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="the thresholds are glibc's")
def test_large_tensors_reuse_heap_memory_unless_the_user_set_malloc_thresholds():
    kept, applied = faults()
    # 20 x 100 MB are 490,000 pages of 4 KiB; reused, a few tensors' worth (73,242 once, in a full suite
    # beside two training runs; usually far fewer)
    assert applied and kept < 100_000
    returned, applied = faults(MALLOC_MMAP_THRESHOLD_=str(32 << 20))
    assert not applied and returned > 400_000
