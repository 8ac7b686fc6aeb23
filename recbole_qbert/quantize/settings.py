"""Stage-2 settings: defaults from ``properties/quantize.yaml``, then config files, then overrides.

Every key is type-checked here, and an unknown key is an error naming where it came from.
"""
import difflib
from typing import Callable, Dict, Optional, Sequence

from recbole_qbert.config import PROPERTIES, load_yaml
from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.collisions import STRATEGIES
from recbole_qbert.quantize.rqvae import INPUT_NORMS

DEFAULTS_FILE = PROPERTIES / "quantize.yaml"


def _optional_str(v):
    if v is None or isinstance(v, str):
        return v
    raise ValueError("expected a path or ~")


def _paths(v):
    if v is None or isinstance(v, str):
        return v
    if isinstance(v, (list, tuple)) and v and all(isinstance(p, str) for p in v):
        return list(v)
    raise ValueError("expected a path, a list of paths, or ~")


def _int(low):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int) or v < low:
            raise ValueError(f"expected an integer >= {low}")
        return v
    return check


def _optional_int(low):
    def check(v):
        return None if v is None else _int(low)(v)
    return check


def _float(low, high=float("inf")):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise ValueError(f"expected a number in [{low}, {high}]")
        return float(v)
    return check


def _bool(v):
    if isinstance(v, bool):
        return v
    raise ValueError("expected True or False")


def _choice(options):
    def check(v):
        if v not in options:
            raise ValueError(f"expected one of {list(options)}")
        return v
    return check


def _int_list(v):
    if not isinstance(v, (list, tuple)) or not all(isinstance(h, int) and not isinstance(h, bool) and h > 0
                                                   for h in v):
        raise ValueError("expected a list of positive integers")
    return list(v)


SCHEMA: Dict[str, Callable] = {
    "features": _paths,
    "absent_items": _choice(("error", "zeros")),
    "sid_file": _optional_str,
    "holdout_items": _optional_str,
    "n_levels": _int(1),
    "codebook_size": _int(1),
    "code_dim": _int(1),
    "hidden_dims": _int_list,
    "beta": _float(0.0),
    "dropout": _float(0.0, 0.99),
    "input_norm": _choice(INPUT_NORMS),
    "seed": _int(0),
    "threads": _optional_int(1),
    "epochs": _int(0),
    "batch_size": _int(1),
    "learning_rate": _float(0.0),
    "weight_decay": _float(0.0),
    "kmeans_iters": _int(0),
    "dead_code_reset": _bool,
    "dead_code_threshold": _int(1),
    "dead_code_reset_until": _float(0.0, 1.0),
    "collision_strategy": _choice(STRATEGIES),
}


def check_settings(values: Dict, source: str) -> Dict:
    out = {}
    for key, value in values.items():
        if key not in SCHEMA:
            close = difflib.get_close_matches(str(key), SCHEMA, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QBertError(f"{source}: unknown quantize setting '{key}'{hint}")
        try:
            out[key] = SCHEMA[key](value)
        except ValueError as e:
            raise QBertError(f"{source}: {key}: {value!r}: {e}") from None
    return out


def load_settings(config_files: Sequence = (), overrides: Optional[Dict] = None) -> Dict:
    """The full stage-2 settings; every key of :data:`SCHEMA` is present."""
    settings = check_settings(load_yaml(DEFAULTS_FILE), str(DEFAULTS_FILE))
    missing = set(SCHEMA) - set(settings)
    if missing:
        raise QBertError(f"{DEFAULTS_FILE}: missing defaults for {sorted(missing)}")
    for path in config_files:
        settings.update(check_settings(load_yaml(path), str(path)))
    settings.update(check_settings(dict(overrides or {}), "command line"))
    return settings
