"""What a (model, seed) run needs now: nothing (its record matches the current config and input
files), a resume from its ``last.pth``, or a fresh start."""
import sys
from pathlib import Path
from typing import List, Optional

import yaml

from recbole_qbert.config import PROJECT_ROOT, build_config
from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.aggregate import read_record
from recbole_qbert.leaderboard.spec import Spec
from recbole_qbert.model_registry import is_own_model, resolve_model
from recbole_qbert.safe_io import atomic_open


def run_identity(spec: Spec, model: str, seed: int, config_file: Path):
    """(config hash, budget, input file hashes) of a run as configured now; a record must match all
    three to be reused."""
    from recbole_qbert.run_record import run_budget, run_inputs

    name = spec.model_of(model)
    config = build_config(resolve_model(name), spec.dataset, spec.config_files + [str(config_file)],
                          own_model=is_own_model(name))
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
        record = read_record(spec.record_path(model, seed))
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
