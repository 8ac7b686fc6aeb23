"""A model's ``other_parameter()`` in a form ``torch.load(weights_only=True)`` reads back.

RecBole keeps state outside the state dict there: ItemKNN's similarity matrix (scipy sparse), EASE's
item similarities (numpy), LightGCN's cached embeddings (tensors), SASRecF's feature layer (a submodule).
Tensors and plain values stay as they are, numpy arrays and scipy sparse matrices become tagged dicts of
tensors, and submodules are left out (their weights are in the state dict, the module itself is built
with the model).
"""
from typing import Optional

import numpy as np
import torch

from recbole_qbert.errors import QBertError

_TAG = "__recbole_qbert_value__"


def encode_other_parameter(params: dict) -> dict:
    """``model.other_parameter()`` as tensors and plain values."""
    return {key: _encode(value, key) for key, value in params.items() if not isinstance(value, torch.nn.Module)}


def decode_other_parameter(params: Optional[dict]) -> Optional[dict]:
    """Invert :func:`encode_other_parameter`; ``None`` (an old checkpoint without the entry) stays ``None``."""
    return None if params is None else {key: _decode(value) for key, value in params.items()}


def _encode(value, name: str):
    import scipy.sparse as sp

    if value is None or isinstance(value, (torch.Tensor, bool, int, float, str)):
        return value
    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray) and value.dtype != object:
        return {_TAG: "numpy", "array": torch.from_numpy(np.ascontiguousarray(value))}
    if sp.issparse(value):
        csr = value.tocsr()
        return {_TAG: "scipy", "format": value.format, "shape": list(value.shape),
                **{part: torch.from_numpy(getattr(csr, part)) for part in ("data", "indices", "indptr")}}
    if isinstance(value, (list, tuple)):
        return type(value)(_encode(v, name) for v in value)
    if isinstance(value, dict):
        return {_encode(k, name): _encode(v, name) for k, v in value.items()}
    raise QBertError(f"model state '{name}' holds a {type(value).__name__}, which a checkpoint loaded without "
                     "unpickling cannot hold")


def _decode(value):
    import scipy.sparse as sp

    if isinstance(value, dict) and _TAG in value:
        if value[_TAG] == "numpy":
            return value["array"].cpu().numpy()
        parts = [value[p].cpu().numpy() for p in ("data", "indices", "indptr")]
        return sp.csr_matrix(tuple(parts), shape=tuple(value["shape"])).asformat(value["format"])
    if isinstance(value, (list, tuple)):
        return type(value)(_decode(v) for v in value)
    if isinstance(value, dict):
        return {k: _decode(v) for k, v in value.items()}
    return value
