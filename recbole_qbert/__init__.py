"""recbole-qbert: Q-BERT4Rec (arXiv 2512.02474) and a baseline leaderboard as a RecBole plugin."""
from recbole_qbert import compat as _compat

_compat.apply()

__version__ = "0.1.0"
