"""RecBole dataset classes of this package."""
from recbole_qbert.data.sid_dataset import SemanticIDDataset

__all__ = ["SemanticIDDataset"]
