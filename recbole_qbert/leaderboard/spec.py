"""A leaderboard spec: the dataset, models, seeds and shared config; where each run's record,
checkpoints and config go."""
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from recbole_qbert.config import (PROJECT_ROOT, check_keys, check_model_reads, declared_values, known_keys,
                                  load_spec_yaml)
from recbole_qbert.errors import QBertError
from recbole_qbert.run_record import command_line
from recbole_qbert.value_types import check_values

TABLE_KEYS = {"metrics", "topk", "valid_metric"}  # what every record must share for the tables to read it
SPEC_KEYS = {"name": "str", "dataset": "str", "extends": "str", "models": "list", "seeds": "list[int], >=0",
             "config_files": "list[str]|None", "config": "dict|None", "model_config": "dict|None"}


@dataclass
class Spec:
    name: str
    dataset: str
    models: List[str]
    seeds: List[int]
    out: Path
    config_files: List[str] = field(default_factory=list)
    config: Dict = field(default_factory=dict)
    model_config: Dict[str, Dict] = field(default_factory=dict)
    model_class: Dict[str, str] = field(default_factory=dict)  # row name -> RecBole/own model, for variants
    source: str = ""
    runs_root: Path = PROJECT_ROOT / "saved" / "leaderboard"  # checkpoints and logs, not committed
    # a partial run (--models/--seeds) runs only these; the table still shows every record of the spec
    selected_models: Optional[List[str]] = None
    selected_seeds: Optional[List[int]] = None
    command: str = field(default_factory=command_line)  # what command.txt says reproduces the table

    @property
    def run_models(self) -> List[str]:
        return self.selected_models or self.models

    @property
    def run_seeds(self) -> List[int]:
        return self.selected_seeds or self.seeds

    @property
    def is_selection(self) -> bool:
        """Whether only some rows or seeds run, into the spec's own table."""
        return bool(self.selected_models or self.selected_seeds)

    def select(self, models: Optional[List[str]] = None, seeds: Optional[List[int]] = None, *,
               separate: bool) -> None:
        """Run only ``models`` x ``seeds``. ``separate`` (an output folder of its own): the table shows
        the selection only; otherwise it is merged into the spec's table, which shows every record of
        the spec (and of the selection), and command.txt keeps the table's command (where there is none
        yet, this command without the selection)."""
        if separate:
            self.models, self.seeds = models or self.models, seeds or self.seeds
            return
        self.selected_models, self.selected_seeds = models, seeds
        self.models = self.models + [m for m in models or [] if m not in self.models]
        self.seeds = self.seeds + [s for s in seeds or [] if s not in self.seeds]
        if models or seeds:
            self.command = command_line(drop=("--models", "--seeds"))

    def run_id(self, model: str, seed: int) -> str:
        return f"{model}-seed{seed}"

    def record_path(self, model: str, seed: int) -> Path:
        return self.out / "records" / f"{self.run_id(model, seed)}.json"

    def run_dir(self, model: str, seed: int) -> Path:
        return self.runs_root / self.name / self.run_id(model, seed)

    def model_of(self, name: str) -> str:
        return self.model_class.get(name, name)

    def run_config(self, model: str, seed: int) -> dict:
        return {**self.config, **self.model_config.get(model, {}), "seed": seed}


def plain_name(value, what: str, source) -> str:
    """``value`` as a file or folder name; one with a path separator, or ``.``, ``..`` or nothing, would
    put outputs outside their folder."""
    name = str(value)
    if name in ("", ".", "..") or set(name) & {"/", "\\", "\0"}:
        raise QBertError(f"{source}: {what} {name!r} must be a plain name (no path separators, not '.' or '..')")
    return name


def load_spec(path, out: Optional[str] = None, overrides: Optional[Dict] = None) -> Spec:
    """Read and check a leaderboard spec; ``overrides`` (``--key=value``) apply to every run."""
    data = load_spec_yaml(path, kind="leaderboard", keys=SPEC_KEYS, merge=["config", "model_config"])
    for key in ("dataset", "models", "seeds"):
        if not data.get(key):
            raise QBertError(f"{path}: '{key}' is required")
    names, model_class, model_config = [], {}, dict(data.get("model_config") or {})
    for model, config in model_config.items():
        if not isinstance(config, dict):
            raise QBertError(f"{path}: model_config of '{model}' must be a mapping of config keys, got {config!r}")
    for entry in data["models"]:
        if isinstance(entry, dict):
            if set(entry) - {"name", "model", "config"} or not entry.get("name") or not entry.get("model") \
                    or not isinstance(entry.get("config") or {}, dict):
                raise QBertError(f"{path}: a model variant needs 'name' and 'model' (and optional 'config'), "
                                 f"got {entry}")
            name = str(entry["name"])
            model_class[name] = str(entry["model"])
            model_config[name] = {**(entry.get("config") or {}), **model_config.get(name, {})}
        elif isinstance(entry, str):
            name = entry
        else:
            raise QBertError(f"{path}: models: {entry!r} is neither a model name nor a variant mapping")
        name = plain_name(name, "model", path)  # names its records and run folders
        if name in names:
            raise QBertError(f"{path}: model '{name}' is listed twice")
        names.append(name)
    twice = sorted({seed for seed in data["seeds"] if data["seeds"].count(seed) > 1})
    if twice:  # one record per row and seed: a repeated seed would be one run counted twice
        raise QBertError(f"{path}: seed {twice[0]} is listed twice")
    for model, config in model_config.items():
        if model not in names:
            raise QBertError(f"{path}: model_config names '{model}', which is not in models")
        check_model_reads(config, model_class.get(model, model), f"{path}: model '{model}'")
    spec_config, overrides = data.get("config") or {}, overrides or {}
    known, declared = known_keys(), declared_values()
    sources = [(f"{path}: config", spec_config), ("command line", overrides)]
    for where, config in sources + [(f"{path}: model '{m}'", c) for m, c in model_config.items()]:
        # here, not when each run is planned: a typo then names its file (or the command line) before any run starts
        check_keys(config, where, known)
        check_values(config, declared, where)
        fixed = sorted(set(config) & TABLE_KEYS)
        if fixed:
            raise QBertError(f"{where}: '{fixed[0]}' cannot change on a leaderboard, whose tables report "
                             "recall, ndcg and mrr at 5, 10 and 20 and pick each run's best epoch by valid NDCG@10")
    name = plain_name(data.get("name") or Path(path).stem, "name", path)  # names its output folders
    base = Path(path).resolve().parent
    return Spec(
        name=name,
        dataset=plain_name(data["dataset"], "dataset", path),
        models=names,
        seeds=list(data["seeds"]),
        out=Path(out) if out else PROJECT_ROOT / "results" / "leaderboard" / name,
        config_files=[str(f if Path(f).is_absolute() else (base / f)) for f in data.get("config_files") or []],
        config={**spec_config, **overrides},
        model_config=model_config,
        model_class=model_class,
        source=str(path),
    )
