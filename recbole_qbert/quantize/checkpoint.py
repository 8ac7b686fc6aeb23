"""Save and load a trained RQ-VAE as safetensors (tensors + a JSON metadata string, never a pickle)."""
import json
from pathlib import Path
from typing import Dict, Tuple

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.rqvae import RQVAE
from recbole_qbert.safe_io import PathLike, atomic_open

CHECKPOINT_FORMAT = "recbole-qbert rqvae"


def save_quantizer(path: PathLike, model: RQVAE, meta: Dict) -> None:
    """Write the model's state and ``meta`` (plus the constructor arguments) atomically."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous().clone() for k, v in model.state_dict().items()}
    # one metadata key: safetensors stores the metadata as a hash map, whose order (and so the file's
    # bytes) would vary from run to run with several keys
    header = {"recbole_qbert": json.dumps({**meta, "format": CHECKPOINT_FORMAT, "version": 1,
                                           "model": model.init_args}, sort_keys=True, default=str)}
    with atomic_open(path, "wb") as f:
        f.write(save(tensors, metadata=header))


def load_quantizer(path: PathLike) -> Tuple[RQVAE, Dict]:
    """The eval-mode model and its metadata."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file, safe_open

    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: quantizer checkpoint not found")
    try:
        with safe_open(str(path), framework="pt") as f:
            header = f.metadata() or {}
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError) as e:
        raise QBertError(f"{path}: not a readable safetensors file ({e})") from None
    try:
        meta = json.loads(header["recbole_qbert"])
    except (KeyError, json.JSONDecodeError):
        meta = {}
    if not isinstance(meta, dict) or meta.get("format") != CHECKPOINT_FORMAT or "model" not in meta:
        raise QBertError(f"{path}: not an RQ-VAE checkpoint of recbole-qbert")
    try:
        model = RQVAE(**meta["model"])
    except TypeError as e:
        raise QBertError(f"{path}: unknown architecture arguments ({e})") from None
    try:
        model.load_state_dict(tensors)
    except RuntimeError as e:
        raise QBertError(f"{path}: tensors do not fit the recorded architecture ({str(e).splitlines()[0]})") from None
    model.eval()
    return model, meta
