"""Initialise a QBERT4Rec from a pretrained checkpoint, possibly of another dataset.

Only what does not depend on the item set is transferred: the code embeddings of each level, the mask
token, the position embeddings, the transformer and its input LayerNorm. Item-specific tensors (ID
embeddings, output bias) start fresh, so pretraining on Sports and fine-tuning on Beauty works when
both share one code vocabulary (quantized together).
"""
from typing import Iterable

from recbole_qbert.config import project_path
from recbole_qbert.errors import QBertError

TRANSFERABLE = ("code_embeddings", "mask_embedding", "position_embedding", "trm_encoder", "LayerNorm")
FREEZABLE = ("code_embeddings", "position_embedding", "trm_encoder")


def load_pretrained(model, path, *, freeze: Iterable[str] = ()) -> None:
    """Copy the transferable weights of ``path`` (relative paths: from the working directory, else from
    the project root) into ``model`` and freeze the named parts."""
    from recbole_qbert.training.checkpoint import load_checkpoint

    freeze = list(freeze)
    unknown = [name for name in freeze if name not in FREEZABLE]
    if unknown:
        raise QBertError(f"freeze: unknown part '{unknown[0]}' (choose from {', '.join(FREEZABLE)})")
    path = project_path(path, cwd_first=True)
    state = load_checkpoint(path)
    if state.get("model") != type(model).__name__:
        raise QBertError(f"{path}: checkpoint of model {state.get('model')!r}, not {type(model).__name__}")
    source = {k: v for k, v in state["state_dict"].items() if k.startswith(TRANSFERABLE)}
    target = model.state_dict()
    for key, value in source.items():
        if key not in target:
            raise QBertError(f"{path}: has '{key}', which this model lacks (different backbone: n_layers?)")
        if value.shape != target[key].shape:
            what = "code vocabulary" if key.startswith("code_embeddings") else "backbone shape"
            raise QBertError(f"{path}: different {what}: '{key}' is {tuple(value.shape)} there, "
                             f"{tuple(target[key].shape)} here")
    missing = [k for k in target if k.startswith(TRANSFERABLE) and k not in source]
    if missing:
        raise QBertError(f"{path}: lacks '{missing[0]}' (different backbone: n_layers or code levels?)")
    model.load_state_dict(source, strict=False)
    for name in freeze:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(False)


def load_pretrained_from_config(model, config) -> None:
    """:func:`load_pretrained` for the config keys ``pretrained_checkpoint`` and ``freeze``."""
    if config["pretrained_checkpoint"]:
        load_pretrained(model, config["pretrained_checkpoint"], freeze=config["freeze"] or [])
    elif config["freeze"]:
        raise QBertError("freeze is set but pretrained_checkpoint is not: nothing to keep frozen")
