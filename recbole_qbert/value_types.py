"""The one checker of config values: run configs, stage configs and leaderboard/pipeline specs.

A key's declaration is a short text, written after the value in a YAML defaults file, RecBole-style::

    epochs: 200                    # (int, >=0) Epoch budget.
    hidden_dropout_prob: 0.2       # (float, >=0, <1) Dropout on embeddings and hidden states.
    cpu_threads: ~                 # (int|None, >=1) Torch CPU threads.
    train_budget_clock: wall       # (str, wall|cpu) Clock of train_budget_s.
    topk: [5, 10, 20]              # (list[int]|int, >=1) Cut-offs of the metrics.

Inside the parentheses: the allowed types joined by ``|`` (``int``, ``float``, ``bool``, ``str``,
``list``, ``dict``, ``None``, and ``list[T]`` for a list of ``T``), then optional constraints separated
by commas: bounds (``>=x``, ``>x``, ``<=x``, ``<x``) on numbers, and on each number of a list, or the
allowed strings joined by ``|``. Booleans are only ``true``/``false``; an int is a valid float; a float
must be finite; a key whose allowed strings include ``none`` (and whose types do not include ``None``)
takes None as ``"none"``, since ``--set key=none`` reads as None. RecBole's own keys have no such
comments in RecBole's files: the common ones are declared in :data:`RECBOLE_DECLARATIONS`. Checks
between keys are in :func:`check_cross`.
"""
import math
import operator
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Dict, Mapping, Optional, Tuple

from recbole_qbert.errors import QBertError

_DECLARATION = re.compile(r"^([A-Za-z_]\w*)\s*:.*?#\s*\(([^)]*)\)")
_SCALARS = {"int", "float", "bool", "str", "list", "dict", "None"}
_BOUND = re.compile(r"^(>=|<=|>|<)\s*([-+]?[\d.]+(?:e[-+]?\d+)?)$")
_COMPARE = {">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt}
# YAML 1.1 (PyYAML) reads 1e-3 as a string; RecBole's loader reads it as a float, and so do we
_FLOAT_TEXT = re.compile(r"^[-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$")


@dataclass(frozen=True)
class Declared:
    types: Tuple[str, ...]
    bounds: Tuple[Tuple[str, float], ...] = ()
    choices: Tuple[str, ...] = ()

    def describe(self) -> str:
        """``"float >= 0 and <= 1, or None"``: what the declaration allows, in words."""
        bounds = " and ".join(f"{op} {value:g}" for op, value in self.bounds)
        words = []
        for name in self.types:
            inner = name[5:-1] if name.startswith("list[") else None
            text = f"a list of {inner}s" if inner else "true or false" if name == "bool" else name
            if bounds and (inner or name) in ("int", "float"):
                text += " " + bounds
            if self.choices and (inner or name) == "str":
                text += " (one of " + ", ".join(self.choices) + ")"
            words.append(text)
        return ", or ".join(words)


def parse_declaration(text: str, where: str) -> Declared:
    """``"int|None, >=1"`` -> :class:`Declared`; a malformed declaration is an error naming ``where``."""
    parts = [p.strip() for p in text.split(",")]
    types = tuple(parts[0].split("|"))
    for name in types:
        inner = name[5:-1] if name.startswith("list[") and name.endswith("]") else None
        if (inner or name) not in _SCALARS:
            raise QBertError(f"{where}: unknown type {name!r} in '({text})'")
    bounds, choices = [], ()
    for part in parts[1:]:
        match = _BOUND.match(part)
        if match:
            bounds.append((match.group(1), float(match.group(2))))
        elif part and re.fullmatch(r"[\w.+-]+(\|[\w.+-]+)*", part):
            choices = tuple(part.split("|"))
        else:
            raise QBertError(f"{where}: cannot read constraint {part!r} in '({text})'")
    return Declared(types, tuple(bounds), choices)


def declarations_in(path) -> Dict[str, Declared]:
    """``key -> Declared`` from the ``# (...)`` comments of the top-level keys of a YAML file."""
    out = {}
    for lineno, line in enumerate(Path(path).read_text(encoding="utf-8").splitlines(), start=1):
        match = _DECLARATION.match(line)
        if match:
            out[match.group(1)] = parse_declaration(match.group(2), f"{path}: line {lineno}")
    return out


def declarations(spec: Mapping[str, str], where: str) -> Dict[str, Declared]:
    """``{key: "int, >=1"}`` written in code -> ``key -> Declared``."""
    return {key: parse_declaration(text, f"{where}: {key}") for key, text in spec.items()}


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _as_type(value, name: str):
    """``value`` as type ``name`` (an int as a float, ``"1e-3"`` as a float), or raise ValueError."""
    if name == "None":
        if value is None:
            return None
    elif name == "bool":
        if isinstance(value, bool):
            return value
    elif name == "int":
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif name == "float":
        if isinstance(value, str) and _FLOAT_TEXT.match(value.strip()):
            value = float(value)
        if _is_number(value) and math.isfinite(value):
            return float(value)
    elif name.startswith("list["):
        if isinstance(value, (list, tuple)):
            return [_as_type(v, name[5:-1]) for v in value]
    elif isinstance(value, {"str": str, "list": (list, tuple), "dict": dict}[name]):
        return list(value) if name == "list" else value
    raise ValueError(name)


def check_value(key: str, value, declared: Declared, source: str):
    """``value`` converted to its declared type; a value outside the declaration is a one-line error
    ``source: key=value: expected ...``."""
    if value is None and "None" not in declared.types and "none" in declared.choices:
        value = "none"  # the command line reads none as None (config.parse_value), YAML files as "none"
    for name in declared.types:
        try:
            converted = _as_type(value, name)
        except ValueError:
            continue
        numbers = converted if isinstance(converted, list) and name.startswith("list[") else [converted]
        numbers = [v for v in numbers if _is_number(v)]
        if all(_COMPARE[op](v, bound) for v in numbers for op, bound in declared.bounds) and \
                (not declared.choices or not isinstance(converted, str) or converted in declared.choices):
            return converted
    raise QBertError(f"{source}: {key}={value!r}: expected {declared.describe()}")


def check_values(values: Mapping, declared: Mapping[str, Declared], source: str) -> dict:
    """Every declared key of ``values`` checked and converted; undeclared keys pass unchanged."""
    return {k: check_value(k, v, declared[k], source) if k in declared else v for k, v in values.items()}


# RecBole 1.2.1 keys users commonly set (its YAML files carry no types). A key this project's own YAML
# files also declare must be declared the same way there (tests/test_value_types.py checks it).
RECBOLE_DECLARATIONS = declarations({
    "seed": "int, >=0",
    "epochs": "int, >=0",
    "train_batch_size": "int, >=1",
    "eval_batch_size": "int, >=1",
    "learning_rate": "float, >0",
    "weight_decay": "float, >=0",
    "stopping_step": "int, >=0",
    "eval_step": "int, >=0",
    "clip_grad_norm": "dict|None",
    "learner": "str, adam|sgd|adagrad|rmsprop|sparse_adam|adamw",
    "loss_type": "str, CE|BPR",
    "hidden_size": "int, >=1",
    "embedding_size": "int, >=1",
    "n_layers": "int, >=1",
    "num_layers": "int, >=1",
    "n_heads": "int, >=1",
    "inner_size": "int, >=1",
    "hidden_dropout_prob": "float, >=0, <1",
    "attn_dropout_prob": "float, >=0, <1",
    "dropout_prob": "float, >=0, <1",
    "mask_ratio": "float, >0, <1",
    "hidden_act": "str, gelu|relu|swish|tanh|sigmoid",
    "layer_norm_eps": "float, >0",
    "initializer_range": "float, >0",
    "MAX_ITEM_LIST_LENGTH": "int, >=1",
    "topk": "list[int]|int, >=1",
    "metrics": "list|str",
    "valid_metric": "str",
    "use_gpu": "bool",
    "reproducibility": "bool",
    "show_progress": "bool",
    "train_neg_sample_args": "dict|None",
    "eval_args": "dict",
    "load_col": "dict|None",
}, "recbole_qbert/value_types.py")


def check_cross(config: Mapping, source: str) -> None:
    """Checks between keys, on the merged config."""
    for width, heads in (("hidden_size", "n_heads"), ("shared_dim", "num_heads")):
        w, h = config.get(width), config.get(heads)
        if _is_number(w) and _is_number(h) and h > 0 and w % h:
            raise QBertError(f"{source}: {width}={w} is not divisible by {heads}={h}; attention splits "
                             f"{width} evenly over the heads")


def merged_declarations(*sources: Mapping[str, Declared], where: Optional[str] = None) -> Dict[str, Declared]:
    """The union of several sets of declarations; a key declared twice must be declared alike."""
    out: Dict[str, Declared] = {}
    for source in sources:
        for key, declared in source.items():
            if key in out and out[key] != declared:
                raise QBertError(f"{where or 'declarations'}: key '{key}' is declared as ({out[key].describe()}) "
                                 f"and as ({declared.describe()})")
            out[key] = declared
    return out
