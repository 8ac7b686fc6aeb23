"""Stage 1 inputs and output: item feature tables keyed by item token."""
from recbole_qbert.features.table import FeatureTable

__all__ = ["FeatureTable"]
