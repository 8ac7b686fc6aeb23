"""What a (model, seed) run needs now: nothing (its record matches the current config and input
files), a resume from its ``last.pth``, or a fresh start; and, before any run, whether every row's
config can be built at all."""
import contextlib
import sys
import tempfile
from pathlib import Path
from typing import List, Optional

import yaml

from recbole_qbert.config import PROJECT_ROOT, build_config
from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.aggregate import read_record
from recbole_qbert.leaderboard.spec import Spec
from recbole_qbert.model_registry import is_own_model, resolve_model
from recbole_qbert.safe_io import atomic_open


def _row_config(spec: Spec, model: str, config_file: Path):
    """The RecBole config of row ``model``, its run config being ``config_file``."""
    name = spec.model_of(model)
    return build_config(resolve_model(name), spec.dataset, spec.config_files + [str(config_file)],
                        own_model=is_own_model(name))


@contextlib.contextmanager
def _naming_row(spec: Spec, model: str):
    """A :class:`QBertError` raised inside names the spec and the row it came from."""
    try:
        yield
    except QBertError as e:
        raise QBertError(f"{spec.source}: model '{model}': {e}") from None


def check_models(spec: Spec) -> None:
    """Resolve the model class of every row about to run. It needs neither the dataset nor any stage
    output, so a pipeline checks it before its steps: an unknown model fails in seconds, not after them."""
    for model in spec.run_models:
        with _naming_row(spec, model):
            resolve_model(spec.model_of(model))


def check_rows(spec: Spec) -> None:
    """Build the config of every row about to run once, before anything is written: an unknown or
    unsupported model, a missing config file or dataset is then one line naming the spec and the row,
    not an error per run naming its generated ``leaderboard.yaml``. Cheap: the dataset is not loaded."""
    with tempfile.TemporaryDirectory() as tmp:
        config_file = Path(tmp) / "leaderboard.yaml"
        for model in spec.run_models:
            with _naming_row(spec, model):
                config_file.write_text(yaml.safe_dump(spec.run_config(model, spec.run_seeds[0])), encoding="utf-8")
                folder = Path(_row_config(spec, model, config_file)["data_path"])  # RecBole joins the dataset name
                if not folder.is_dir():
                    raise QBertError(f"dataset '{spec.dataset}' not found: no folder {folder}; convert it first "
                                     "(python -m dataset_prep.convert --help) or set data_path")


def run_identity(spec: Spec, model: str, seed: int, config_file: Path):
    """(config hash, budget, input file hashes) of a run as configured now; a record must match all
    three to be reused."""
    from recbole_qbert.run_record import run_budget, run_inputs

    config = _row_config(spec, model, config_file)
    return config.run_hash, run_budget(config), run_inputs(config)


def plan_run(spec: Spec, model: str, seed: int, tag: str) -> Optional[List[str]]:
    """The command that (re)runs ``(model, seed)``, or None when its record is current."""
    from recbole_qbert.training.checkpoint import load_checkpoint

    run_dir = spec.run_dir(model, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "leaderboard.yaml"
    with atomic_open(config_file, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec.run_config(model, seed), f, sort_keys=True)
    identity = run_identity(spec, model, seed, config_file)

    try:
        record = read_record(spec.record_path(model, seed), tables=True)
    except QBertError as e:
        print(f"{tag}: {e}; running it again", flush=True)  # the run rewrites it
        record = None
    if record and (record.get("config_hash"), record.get("budget"), record.get("inputs")) == identity:
        print(f"{tag}: done, reusing {spec.record_path(model, seed)}", flush=True)
        return None
    resume = False
    last = run_dir / "last.pth"
    if last.is_file():
        state = load_checkpoint(last)
        resume = (state.get("config_hash"), state.get("inputs")) == (identity[0], identity[2])
        if not resume:
            print(f"{tag}: config or input files changed since {last}, starting over", flush=True)
            for stale in ("last.pth", "best.pth"):
                (run_dir / stale).unlink(missing_ok=True)
    print(f"{tag}: {'resuming' if resume else 'running'}", flush=True)
    cmd = [sys.executable, str(PROJECT_ROOT / "run_recbole.py"), f"--model={spec.model_of(model)}",
           f"--dataset={spec.dataset}", *[f"--config_file={f}" for f in spec.config_files + [str(config_file)]],
           f"--checkpoint_dir={run_dir}", f"--record={spec.record_path(model, seed)}"]
    return cmd + ["--resume"] if resume else cmd
