"""Stage 1: dynamic cross-modal fusion of item features into one vector per item (the quantizer's input)."""
from recbole_qbert.fusion.model import DynamicCrossModalFusion, FusionOutput

__all__ = ["DynamicCrossModalFusion", "FusionOutput"]
