"""Build RecBole ``Config`` objects with this project's protocol, and check them before RecBole runs.

Config files are layered, later ones winning:

1. ``properties/overall.yaml`` (the evaluation protocol, README.md "Evaluation protocol"), then
   ``<data_path>/<dataset>/<dataset>.yaml`` (the field settings ``dataset_prep.convert`` wrote), when it
   exists;
2. ``properties/model_type/<type>.yaml`` for the model's RecBole type (``sequential``), then
   ``properties/dataset/<dataset>.yaml``, each when it exists;
3. ``properties/model/<Model>.yaml`` for this package's own models (RecBole never loads an outside
   model's YAML by itself);
4. the user's ``config_files`` in order, then ``overrides`` (``--key=value`` on the command line).

Every key is checked against the keys RecBole and this project know, so a typo is an error that names
the file it came from instead of a setting silently ignored, and every declared value against its type
and range (:mod:`recbole_qbert.value_types`), so ``epochs: ten`` is one line, not a RecBole traceback.
"""
import ast
import difflib
import functools
import sys
from pathlib import Path
from typing import Dict, Iterable, List, Optional, Sequence

import yaml

from recbole_qbert.errors import QBertError
from recbole_qbert.value_types import check_cross, check_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PROPERTIES = PROJECT_ROOT / "properties"

# Keys RecBole reads without declaring them in any of its YAML files.
_RECBOLE_INTERNAL_KEYS = {
    "model", "dataset", "config_files", "nproc", "world_size", "offset", "ip", "port", "local_rank",
    "valid_neg_sample_args", "test_neg_sample_args", "neg_sampling", "training_neg_sample_num",
    "additional_feat_suffix", "benchmark_filename", "numerical_features", "discretization",
}
# RecBole loads these pickles with pickle.load when they exist, which can execute code.
_PICKLE_KEYS = ("save_dataset", "dataset_save_path", "save_dataloaders", "dataloaders_save_path")


def load_yaml(path) -> dict:
    """Read a YAML mapping; a missing, unreadable or non-mapping file is a one-line error."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise QBertError(f"{path}: config file not found") from None
    except OSError as e:
        raise QBertError(f"{path}: cannot read config file ({e.strerror})") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise QBertError(f"{path}: malformed YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise QBertError(f"{path}: expected a mapping of config keys, got {type(data).__name__}")
    return data


def load_spec_yaml(path, *, kind: str, keys: Dict[str, str], concat: Sequence[str] = (),
                   merge: Sequence[str] = (), _chain: tuple = ()) -> dict:
    """Read a pipeline or leaderboard spec, following ``extends: OTHER.yaml`` (from the project root).

    The other spec's keys come first and this one's win, except: ``name`` is never inherited (a child
    must not write into its parent's results), lists named in ``concat`` are the parent's items then
    this spec's, and mappings named in ``merge`` are merged key by key. ``keys`` declares each key's
    type (``{"seeds": "list[int]"}``, syntax of :mod:`recbole_qbert.value_types`). Unknown keys, values
    of the wrong type and cycles are one-line errors naming the file.
    """
    from recbole_qbert.value_types import declarations

    data = load_yaml(path)
    unknown = sorted(set(data) - set(keys))
    if unknown:
        raise QBertError(f"{path}: unknown {kind} key '{unknown[0]}' (expected {sorted(keys)})")
    data = check_values(data, declarations(keys, f"{kind} spec"), str(path))
    if not data.get("extends"):
        return data
    parent_path = project_path(str(data["extends"]))
    if not parent_path.is_file():
        raise QBertError(f"{path}: extends {data['extends']}, which does not exist")
    chain = _chain + (Path(path).resolve(),)
    if parent_path.resolve() in chain:
        raise QBertError(f"{path}: extends {data['extends']}, which extends it back (a cycle)")
    parent = load_spec_yaml(parent_path, kind=kind, keys=keys, concat=concat, merge=merge, _chain=chain)
    out = {**{k: v for k, v in parent.items() if k != "name"}, **data}
    out.pop("extends")
    for key in concat:
        out[key] = list(parent.get(key) or []) + list(data.get(key) or [])
    for key in merge:
        out[key] = {**(parent.get(key) or {}), **(data.get(key) or {})}
    return out


def _recbole_properties() -> Path:
    import recbole

    return Path(recbole.__file__).resolve().parent / "properties"


def _yaml_keys(paths: Iterable[Path]) -> set:
    keys = set()
    for p in paths:
        keys.update(load_yaml(p))
    return keys


def _shared_keys() -> set:
    """Keys every model may read: RecBole's own (any of its model files too) and ``overall.yaml``'s."""
    from recbole.utils import argument_list

    keys = set(_RECBOLE_INTERNAL_KEYS)
    for name in ("general_arguments", "training_arguments", "evaluation_arguments", "dataset_arguments"):
        keys.update(getattr(argument_list, name))
    keys |= _yaml_keys(_recbole_properties().rglob("*.yaml"))
    # not the stage configs: RecBole never reads them
    return keys | _yaml_keys([PROPERTIES / "overall.yaml", *PROPERTIES.glob("model_type/*.yaml")])


def known_keys() -> set:
    """Every config key RecBole 1.2.1 or this project reads (all models' keys, so that one profile can
    serve several models)."""
    return _shared_keys() | _yaml_keys(PROPERTIES.glob("model/*.yaml")) | _yaml_keys(PROPERTIES.glob("dataset/*.yaml"))


@functools.lru_cache(maxsize=1)
def model_only_keys() -> Dict[str, List[str]]:
    """``key -> [models]`` for the keys that only this project's model YAML files declare: a model whose
    own file lacks one of them never reads it."""
    shared, owners = _shared_keys(), {}
    for f in sorted(PROPERTIES.glob("model/*.yaml")):
        for key in load_yaml(f):
            if key not in shared:
                owners.setdefault(key, []).append(f.stem)
    return owners


def check_model_reads(config: Dict, model_name: str, source: str) -> None:
    """A key given for ``model_name`` alone (command line, a leaderboard row) that only other models read
    would change nothing: one line naming ``source`` and the models that read it. Models without a YAML
    file here or in RecBole (a user's own plugin) are not checked: what they read is not declared."""
    from recbole_qbert.model_registry import recbole_model_names

    if not (PROPERTIES / "model" / f"{model_name}.yaml").is_file() and model_name not in recbole_model_names():
        return
    owners = model_only_keys()
    for key in config:
        if key in owners and model_name not in owners[key]:
            raise QBertError(f"{source}: config key '{key}' is not read by {model_name} "
                             f"(only by {', '.join(owners[key])})")


@functools.lru_cache(maxsize=1)
def declared_values() -> Dict:
    """``key -> Declared`` for run configs: RecBole's common keys and the ``# (type, range)`` comments of
    this project's overall, model and dataset YAML files."""
    from recbole_qbert.value_types import RECBOLE_DECLARATIONS, declarations_in, merged_declarations

    files = [PROPERTIES / "overall.yaml", *sorted(PROPERTIES.glob("model_type/*.yaml")),
             *sorted(PROPERTIES.glob("model/*.yaml")),
             *sorted(PROPERTIES.glob("dataset/*.yaml"))]
    return merged_declarations(RECBOLE_DECLARATIONS, *(declarations_in(f) for f in files),
                               where=str(PROPERTIES))


def check_keys(config: Dict, source: str, known: Optional[set] = None) -> None:
    """Raise a one-line error naming ``source`` for the first unknown key of ``config``."""
    known = known if known is not None else known_keys()
    for key in config:
        if key not in known:
            close = difflib.get_close_matches(str(key), known, n=1)
            hint = f" (did you mean '{close[0]}'?)" if close else ""
            raise QBertError(f"{source}: unknown config key '{key}'{hint}")


def parse_value(text: str):
    """A command-line value as RecBole reads it (``5``, ``1e-3``, ``[5, 10]``, ``True``, ``CE``), but with
    ``ast.literal_eval`` instead of RecBole's ``eval``."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        lowered = text.strip().lower()
        return {"true": True, "false": False, "none": None, "~": None, "null": None}.get(lowered, text)


def parse_overrides(args: Sequence[str]) -> Dict[str, object]:
    """``['--epochs=5', '--learning_rate=1e-3']`` -> ``{'epochs': 5, 'learning_rate': 0.001}``."""
    overrides = {}
    for arg in args:
        if not arg.startswith("--") or "=" not in arg:
            raise QBertError(f"command line: cannot read '{arg}', expected --key=value")
        key, value = arg[2:].split("=", 1)
        overrides[key] = parse_value(value)
    return overrides


def project_path(value, *, cwd_first: bool = False) -> Path:
    """A user-given path: absolute as is, relative from the project root (``cwd_first``: from the working
    directory when it exists there)."""
    path = Path(value)
    if path.is_absolute() or (cwd_first and path.exists()):
        return path
    return PROJECT_ROOT / path


def shown_path(path) -> str:
    """A path relative to the project root when it lies inside (so artifacts do not depend on where the
    checkout is), else absolute."""
    path = Path(path).resolve()
    try:
        return str(path.relative_to(PROJECT_ROOT))
    except ValueError:
        return str(path)


def resolve_data_path(value: str) -> str:
    return str(project_path(value)) + "/"


def config_file_list(model_class, dataset: str, config_files: Sequence = (), *,
                     own_model: bool = False) -> List[Path]:
    files = [PROPERTIES / "overall.yaml"]
    type_file = PROPERTIES / "model_type" / f"{model_class.type.name.lower()}.yaml"
    if type_file.is_file():
        files.append(type_file)
    dataset_file = PROPERTIES / "dataset" / f"{dataset}.yaml"
    if dataset_file.is_file():
        files.append(dataset_file)
    model_file = PROPERTIES / "model" / f"{model_class.__name__}.yaml"
    if own_model and model_file.is_file():
        files.append(model_file)
    return files + [Path(f) for f in config_files]


def build_config(model_class, dataset: str, config_files: Sequence = (),
                 overrides: Optional[Dict] = None, *, own_model: bool = False):
    """Return a RecBole ``Config`` for ``model_class`` on ``dataset`` with the layered files above.

    RecBole's ``Config`` also reads
    ``sys.argv``; it is hidden while the config is built so that only what is passed here counts.
    """
    from recbole.config import Config
    from recbole.utils import ModelType

    if model_class.type in (ModelType.CONTEXT, ModelType.DECISIONTREE):
        kind = "context-aware" if model_class.type == ModelType.CONTEXT else "decision-tree"
        raise QBertError(f"{model_class.__name__} is a {kind} model: it learns from labelled rows (RecBole's eval "
                         "mode 'labeled'), which this project's protocol does not provide; it ranks every item "
                         "after leave-one-out splits, for sequential, general and knowledge-aware models")
    overrides = dict(overrides or {})
    files = config_file_list(model_class, dataset, config_files, own_model=own_model)
    known, declared = known_keys(), declared_values()
    merged = {}
    for f in files:
        content = load_yaml(f)
        check_keys(content, str(f), known)
        merged.update(check_values(content, declared, str(f)))
    check_keys(overrides, "command line", known)
    check_model_reads(overrides, model_class.__name__, "command line")
    overrides = check_values(overrides, declared, "command line")
    merged.update(overrides)
    for key in _PICKLE_KEYS:
        if merged.get(key) not in (None, False, "False", "None"):
            raise QBertError(f"config key '{key}' is not supported: RecBole would store or load the data "
                             "as a pickle, which can run arbitrary code")
    overrides["data_path"] = resolve_data_path(str(merged.get("data_path", "build/atomic/")))
    converted = Path(overrides["data_path"]) / dataset / f"{dataset}.yaml"  # the converter's field settings
    if converted.is_file():
        content = load_yaml(converted)
        check_keys(content, str(converted), known)
        check_values(content, declared, str(converted))
        files.insert(1, converted)

    argv, sys.argv = sys.argv, sys.argv[:1]
    try:
        config = Config(model=model_class, dataset=dataset,
                        config_file_list=[str(f) for f in files], config_dict=overrides)
    except (ValueError, KeyError, NotImplementedError, TypeError) as e:  # e.g. metrics: [Nope]
        raise QBertError(f"config: RecBole refused it ({type(e).__name__}: {e})") from None
    finally:
        sys.argv = argv
    check_cross(config.final_config_dict, "config")
    check_valid_metric(config)
    if model_class.type == ModelType.KNOWLEDGE and isinstance(config["load_col"], dict):
        # a dataset file's load_col names what sequential models read; RecBole's own quick-start config
        # adds the graph files for knowledge-aware models, which would otherwise load without a graph
        graph = {"kg": [config[f] for f in ("HEAD_ENTITY_ID_FIELD", "RELATION_ID_FIELD", "TAIL_ENTITY_ID_FIELD")],
                 "link": [config["ITEM_ID_FIELD"], config["ENTITY_ID_FIELD"]]}
        config["load_col"] = {**graph, **config["load_col"]}
    # hashed now: some RecBole models (BERT4Rec) add keys to the config when they are built
    config.run_hash = config_hash(config)
    return config


def topk_list(config) -> List[int]:
    """The cut-offs the metrics rank at (RecBole takes ``topk`` as one int or a list)."""
    return config["topk"] if isinstance(config["topk"], list) else [config["topk"]]


def check_valid_metric(config) -> None:
    """``valid_metric`` (``NDCG@10``) must be one of the metrics at one of the cut-offs evaluated, or the
    first evaluation after an epoch of training would fail on it."""
    name, _, k = str(config["valid_metric"]).lower().partition("@")
    metrics = [str(m).lower() for m in config["metrics"]]
    topk = topk_list(config)
    if name not in metrics or (k and (not k.isdigit() or int(k) not in topk)):
        raise QBertError(f"config: valid_metric {config['valid_metric']} is not among the metrics evaluated "
                         f"({', '.join(config['metrics'])} at {', '.join(map(str, topk))})")


def plain_config(config) -> dict:
    """The final config as plain YAML-able values (enums, devices and the like become strings)."""

    def plain(value):
        if isinstance(value, dict):
            return {str(k): plain(v) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [plain(v) for v in value]
        if value is None or isinstance(value, (bool, int, float, str)):
            return value
        return str(value)

    return {k: plain(v) for k, v in sorted(config.final_config_dict.items())}


# Keys that say where or how verbosely a run happens, not what it computes, and the budget keys (how far
# it trains; records compare them apart, run_record.run_budget).
_NON_SEMANTIC_KEYS = {"seed", "data_path", "checkpoint_dir", "show_progress", "state", "device", "gpu_id",
                      "use_gpu", "local_rank", "single_spec", "worker", "train_budget_s", "epochs",
                      "nproc", "world_size", "ip", "port", "offset", "cpu_threads", "train_budget_clock",
                      "plateau_lr_drops", "plateau_lr_factor"}


# Keys that change nothing in a config where their test holds (unused, or at their off value); left out
# of the hash then, so that adding such a key does not make every earlier record look stale.
_INERT_WHEN = {
    "pretrained_parts": lambda plain: not plain.get("pretrained_checkpoint"),
    "train_negatives": lambda plain: plain["train_negatives"] == 0,
    "seen_item_bias": lambda plain: not plain["seen_item_bias"],
    "eval_filter_history": lambda plain: not plain["eval_filter_history"],
    "score_temperature": lambda plain: plain["score_temperature"] is None,
    "next_item_loss_weight": lambda plain: plain["next_item_loss_weight"] == 0,
    "future_targets": lambda plain: plain["future_targets"] == 1,
    "future_target_decay": lambda plain: plain["future_targets"] == 1,
    "attention_recency_bias": lambda plain: not plain["attention_recency_bias"],
    # QBERT4Rec's records predate its pre-norm option; QSASRec's post-norm ones were hashed with the key
    "transformer_norm": lambda plain: plain["model"] == "QBERT4Rec" and plain["transformer_norm"] == "post",
}


def config_hash(config) -> str:
    """Hash of everything in ``config`` that can change a model's results except the seed and the
    budget: runs of one leaderboard row share it."""
    return plain_config_hash(plain_config(config))


def is_hashed(key: str, plain: dict) -> bool:
    """Whether ``key`` can change the results of the plain config ``plain`` (and so enters its hash)."""
    return key not in _NON_SEMANTIC_KEYS and not (key in _INERT_WHEN and _INERT_WHEN[key](plain))


def plain_config_hash(plain: dict) -> str:
    """``config_hash`` of a config already made plain (a run record's ``config``), by today's rules: two
    records hashed under older rules can be compared again."""
    from recbole_qbert.safe_io import sha256_json

    return sha256_json({k: v for k, v in plain.items() if is_hashed(k, plain)})[:16]
