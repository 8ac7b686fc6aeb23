"""Initialise a QBERT4Rec or QSASRec from a pretrained checkpoint, possibly of another dataset.

Only what does not depend on the item set can be transferred (``pretrained_parts``): the code embeddings
of each level, the mask token, the position embeddings, the transformer and its input LayerNorm, and the
map of the items' content vectors (``content_projection``). Item-specific tensors (ID embeddings, output
bias) start fresh. Pretraining on Sports and fine-tuning on Beauty with the code embeddings works when
both share one code vocabulary (quantized together); between datasets quantized apart only the backbone
and the content map carry over (a text-only source model has no code embeddings at all).
"""
from typing import Iterable

from recbole_qbert.config import project_path
from recbole_qbert.errors import QBertError

TRANSFERABLE = ("code_embeddings", "mask_embedding", "position_embedding", "trm_encoder", "LayerNorm",
                "content_projection")
FREEZABLE = ("code_embeddings", "position_embedding", "trm_encoder")


def load_pretrained(model, path, *, parts: Iterable[str], freeze: Iterable[str] = ()) -> None:
    """Copy the weights of ``parts`` from ``path`` (relative paths: from the working directory, else
    from the project root) into ``model`` and freeze the named parts. A part neither has is skipped; one
    that only the checkpoint or only the model has is an error naming it."""
    from recbole_qbert.training.checkpoint import load_checkpoint

    parts, freeze = tuple(parts), list(freeze)
    for key, names, allowed in (("pretrained_parts", parts, TRANSFERABLE), ("freeze", freeze, FREEZABLE)):
        unknown = [name for name in names if name not in allowed]
        if unknown:
            raise QBertError(f"{key}: unknown part '{unknown[0]}' (choose from {', '.join(allowed)})")
    if not parts:
        raise QBertError("pretrained_parts is empty: nothing would be taken from pretrained_checkpoint")
    path = project_path(path, cwd_first=True)
    state = load_checkpoint(path)
    if state.get("model") != type(model).__name__:
        raise QBertError(f"{path}: checkpoint of model {state.get('model')!r}, not {type(model).__name__}")
    source = {k: v for k, v in state["state_dict"].items() if k.startswith(parts)}
    target = model.state_dict()
    for key, value in source.items():
        if key not in target:
            raise QBertError(f"{path}: has '{key}', which this model lacks (different backbone: n_layers? or a part "
                             "this model is built without: leave it out of pretrained_parts)")
        if value.shape != target[key].shape:
            what = "code vocabulary" if key.startswith("code_embeddings") else "backbone shape"
            raise QBertError(f"{path}: different {what}: '{key}' is {tuple(value.shape)} there, "
                             f"{tuple(target[key].shape)} here")
    missing = [k for k in target if k.startswith(parts) and k not in source]
    if missing:
        raise QBertError(f"{path}: lacks '{missing[0]}' (different backbone: n_layers or code levels? a source "
                         "without codes or content: leave that part out of pretrained_parts)")
    model.load_state_dict(source, strict=False)
    for name in freeze:
        for parameter in getattr(model, name).parameters():
            parameter.requires_grad_(False)


def load_pretrained_from_config(model, config) -> None:
    """:func:`load_pretrained` for the config keys ``pretrained_checkpoint``, ``pretrained_parts`` (whose
    default in the model's YAML is the one list of parts) and ``freeze``."""
    if config["pretrained_checkpoint"]:
        load_pretrained(model, config["pretrained_checkpoint"], parts=config["pretrained_parts"],
                        freeze=config["freeze"] or [])
    elif config["freeze"]:
        raise QBertError("freeze is set but pretrained_checkpoint is not: nothing to keep frozen")
