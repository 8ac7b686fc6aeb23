"""Configs of the dataset_prep stage scripts (feature extraction, fusion): a YAML file of typed defaults,
then the user's files, then command-line overrides, later ones winning.

The defaults file declares every key, each with its type in a trailing comment, RecBole-style::

    shared_dim: 256              # (int) Width of the shared space.
    fixed_depth: ~               # (int|None) Run exactly this many blocks; ~ lets the gates decide.

A key the defaults do not declare is an error naming the file it came from, and so is a value of the
wrong type; nothing is silently ignored.
"""
import difflib
import re
from pathlib import Path
from typing import Dict, Iterable, List, Mapping, Optional, Tuple

import yaml

from recbole_qbert.config import load_yaml, parse_value
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

_TYPE_COMMENT = re.compile(r"^([A-Za-z_][\w]*)\s*:.*#\s*\(([a-z|A-Z]+)\)")
_TYPES = {
    "int": (int,), "float": (int, float), "bool": (bool,), "str": (str,), "list": (list,), "dict": (dict,),
    "None": (type(None),),
}


def declared_types(path: PathLike) -> Dict[str, Tuple[str, ...]]:
    """``key -> ('int', 'None')`` from the ``# (int|None)`` comments of a defaults file."""
    types = {}
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        match = _TYPE_COMMENT.match(line)
        if match:
            names = tuple(match.group(2).split("|"))
            unknown = [n for n in names if n not in _TYPES]
            if unknown:
                raise QBertError(f"{path}: key '{match.group(1)}' declares unknown type {unknown[0]!r}")
            types[match.group(1)] = names
    return types


def _type_ok(value, names: Iterable[str]) -> bool:
    for name in names:
        if name in ("int", "float") and isinstance(value, bool):
            continue
        if isinstance(value, _TYPES[name]):
            return True
    return False


def check_stage_keys(values: Mapping, source: str, types: Mapping[str, Tuple[str, ...]]) -> None:
    for key, value in values.items():
        if key not in types:
            close = difflib.get_close_matches(str(key), list(types), n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QBertError(f"{source}: unknown config key '{key}'{hint}")
        if not _type_ok(value, types[key]):
            raise QBertError(f"{source}: config key '{key}' must be {' or '.join(types[key])}, "
                             f"got {value!r}")


def load_stage_config(defaults: PathLike, files: Iterable[PathLike] = (),
                      overrides: Optional[Mapping] = None) -> dict:
    """The merged config: ``defaults`` (every key, typed), then ``files`` in order, then ``overrides``."""
    types = declared_types(defaults)
    merged = load_yaml(defaults)
    undeclared = set(merged) - set(types)
    if undeclared:
        raise QBertError(f"{defaults}: key '{sorted(undeclared)[0]}' has no '# (type)' comment")
    check_stage_keys(merged, str(defaults), types)
    for f in files:
        content = load_yaml(f)
        check_stage_keys(content, str(f), types)
        merged.update(content)
    if overrides:
        check_stage_keys(overrides, "command line", types)
        merged.update(overrides)
    for key, value in merged.items():  # ints given for floats become floats
        if types[key][0] == "float" and isinstance(value, int) and not isinstance(value, bool):
            merged[key] = float(value)
    return merged


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
