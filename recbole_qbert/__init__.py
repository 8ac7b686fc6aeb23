"""recbole-qbert: Q-BERT4Rec (arXiv 2512.02474) and a baseline leaderboard as a RecBole plugin."""
from recbole_qbert.cpu_kernels import pin_cpu_kernels
from recbole_qbert.cpu_memory import keep_freed_memory

pin_cpu_kernels()  # before anything imports torch: stage outputs must not depend on the CPU
keep_freed_memory()  # before the first large tensor: freed memory is reused, not faulted in again

from recbole_qbert import compat as _compat  # noqa: E402

_compat.apply()

__version__ = "0.1.0"
