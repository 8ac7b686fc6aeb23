"""Resolve a model name to its class: this package's models first, then RecBole's built-in ones.

RecBole's ``get_model`` only searches ``recbole.model.*``; an outside model is found here instead.
"""
import difflib
import importlib
from pathlib import Path
from typing import Dict, List, Tuple

from recbole_qbert.errors import QBertError

# name -> (module, attribute); imported lazily so that a baseline run never imports our models' deps
OWN_MODELS: Dict[str, Tuple[str, str]] = {
    "QBERT4Rec": ("recbole_qbert.model.qbert4rec", "QBERT4Rec"),
    "QSASRec": ("recbole_qbert.model.qsasrec", "QSASRec"),
}


def is_own_model(name: str) -> bool:
    return name in OWN_MODELS


def recbole_model_names() -> List[str]:
    """Names of RecBole's built-in models (one YAML file per model in its properties)."""
    import recbole

    folder = Path(recbole.__file__).resolve().parent / "properties" / "model"
    return sorted(p.stem for p in folder.glob("*.yaml"))


def resolve_model(name: str):
    """Return the model class called ``name``; an unknown name is a one-line error with a suggestion."""
    if name in OWN_MODELS:
        module, attr = OWN_MODELS[name]
        return getattr(importlib.import_module(module), attr)
    if name in recbole_model_names():
        from recbole.utils import get_model

        from recbole_qbert.compat import import_recbole_models

        import_recbole_models()  # get_model imports the sequential zoo; keep anomaly detection off
        try:
            return get_model(name)
        except ImportError as e:  # RecBole's decision-tree models import lightgbm and xgboost
            raise QBertError(f"model '{name}' needs the Python package '{e.name}', which is not installed") from None
    choices = sorted(OWN_MODELS) + recbole_model_names()
    close = difflib.get_close_matches(name, choices, n=3)
    hint = f"; did you mean {', '.join(close)}?" if close else "; see `python run_recbole.py --list-models`"
    raise QBertError(f"unknown model '{name}'{hint}")
