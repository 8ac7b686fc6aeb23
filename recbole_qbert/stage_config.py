"""Configs of the dataset_prep stage scripts (feature extraction, fusion, quantization): a YAML file of
typed defaults, then the user's files, then command-line overrides, later ones winning.

The defaults file declares every key, each with its type (and range) in a trailing comment,
RecBole-style (syntax: :mod:`recbole_qbert.value_types`)::

    shared_dim: 256              # (int, >=1) Width of the shared space.
    fixed_depth: ~               # (int|None, >=0) Run exactly this many blocks; ~ lets the gates decide.

A key the defaults do not declare is an error naming the file it came from, and so is a value of the
wrong type or out of range; nothing is silently ignored.
"""
import difflib
import re
from pathlib import Path
from typing import Iterable, List, Mapping, Optional

import yaml

from recbole_qbert.config import load_yaml, parse_value
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike
from recbole_qbert.value_types import Declared, check_cross, check_values, declarations_in


def check_stage_keys(values: Mapping, source: str, declared: Mapping[str, Declared]) -> dict:
    """``values`` checked against the declarations (unknown keys, types, ranges) and converted."""
    for key in values:
        if key not in declared:
            close = difflib.get_close_matches(str(key), list(declared), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QBertError(f"{source}: unknown config key '{key}'{hint}")
    return check_values(values, declared, source)


def load_stage_config(defaults: PathLike, files: Iterable[PathLike] = (),
                      overrides: Optional[Mapping] = None) -> dict:
    """The merged config: ``defaults`` (every key, typed), then ``files`` in order, then ``overrides``;
    ints given for floats become floats. A ``device`` must be one this machine has."""
    declared = declarations_in(defaults)
    merged = load_yaml(defaults)
    undeclared = set(merged) - set(declared)
    if undeclared:
        raise QBertError(f"{defaults}: key '{sorted(undeclared)[0]}' has no '# (type)' comment")
    merged = check_stage_keys(merged, str(defaults), declared)
    for f in files:
        merged.update(check_stage_keys(load_yaml(f), str(f), declared))
    if overrides:
        merged.update(check_stage_keys(overrides, "command line", declared))
    check_cross(merged, "config")
    if "device" in merged:
        check_device(merged["device"], "config")
    return merged


def check_device(value: str, source: str) -> None:
    """Refuse a torch device this machine cannot run on (``cpu``, or ``cuda``/``cuda:N`` with that GPU)
    now, instead of a torch RuntimeError once the work has started."""
    if value == "cpu":
        return
    match = re.fullmatch(r"cuda(?::(\d+))?", value)
    if not match:
        raise QBertError(f"{source}: device={value!r}: expected cpu, cuda or cuda:N")
    import torch

    if not torch.cuda.is_available():
        raise QBertError(f"{source}: device={value!r}: torch sees no CUDA GPU on this machine; use cpu")
    if match.group(1) and int(match.group(1)) >= torch.cuda.device_count():
        raise QBertError(f"{source}: device={value!r}: torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                         f"(cuda:0 to cuda:{torch.cuda.device_count() - 1})")


def parse_set_options(items: List[str]) -> dict:
    """``--set key=value`` options of the stage CLIs -> ``{key: value}``; ``[a, b]`` and ``{k: v}``
    without quotes are read as YAML."""
    out = {}
    for item in items:
        if "=" not in item:
            raise QBertError(f"command line: cannot read --set '{item}', expected key=value")
        key, value = item.split("=", 1)
        parsed = parse_value(value)
        if isinstance(parsed, str) and parsed.strip()[:1] in ("[", "{"):  # [text, graph] without quotes
            try:
                parsed = yaml.safe_load(parsed)
            except yaml.YAMLError:
                raise QBertError(f"command line: cannot read --set '{item}'") from None
        out[key.strip()] = parsed
    return out


def add_stage_arguments(parser, defaults: Path) -> None:
    """The arguments every stage CLI shares: dataset, where its atomic files are, settings files over
    ``defaults`` and single-key overrides."""
    from recbole_qbert.config import PROJECT_ROOT

    parser.add_argument("--dataset", "-d", required=True, help="dataset name (ml-100k comes from the recbole wheel)")
    parser.add_argument("--data-path", type=Path, default=PROJECT_ROOT / "build" / "atomic",
                        help="folder of converted datasets (default: build/atomic)")
    parser.add_argument("--config", action="append", default=[], type=Path,
                        help=f"YAML file over properties/{defaults.name} (repeatable, later wins)")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override one config key")
