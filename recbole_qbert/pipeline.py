"""One benchmark end to end: conversion, features, fusion, quantization (and any pretraining), then the
leaderboard, skipping every step whose inputs have not changed.

A pipeline spec (``properties/pipeline/*.yaml``) lists steps; each runs one of our stage commands in its
own process::

    steps:
      - name: fuse                                  # (str) stamp name, unique in the spec
        run: [fuse, --dataset, ml-100k]             # (list) dataset_prep module (or run_recbole) + arguments
        inputs: [build/features/ml-100k]            # (list) files/folders it reads
        outputs: [build/fused/ml-100k]              # (list) files/folders it writes
    leaderboard: properties/leaderboard/ml-100k.yaml

``extends: OTHER.yaml`` takes the other spec's keys but its name, and its steps (this spec's run after them).

A step's identity is the SHA-256 of its command, of every file under its inputs, of the settings file its
module reads by default and of the module's own source code. After a step succeeds, a stamp
(``build/pipeline/<dataset>/<step>.json``, shared by the pipelines of one dataset) records that identity and the hash of every output file. The next
run skips the step while the identity is the same and the outputs are still there, unchanged. The
leaderboard then reuses each finished (model, seed) run whose config and input files are unchanged. A
``run_recbole`` step rerun into a ``--checkpoint_dir=`` that holds a ``last.pth`` continues that run.

``{atomic}`` in ``inputs`` is the dataset's folder of atomic files (ml-100k: the one in the recbole wheel).
The run's figures (seconds, peak memory, reuse and the SHA-256 of every output file per step) go to
``results/pipeline/<name>.json``: two machines' reports show which step first made different bytes.
"""
import contextlib
import datetime
import hashlib
import os
import shlex
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

from recbole_qbert.children import Children
from recbole_qbert.config import PROJECT_ROOT, load_spec_yaml, project_path, shown_path
from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.spec import plain_name
from recbole_qbert.locks import output_lock
from recbole_qbert.safe_io import sha256_file, write_json
from recbole_qbert.value_types import check_values, declarations

SPEC_KEYS = {"name": "str", "dataset": "str", "extends": "str", "steps": "list|None", "leaderboard": "str|None"}
STEP_KEYS = declarations({"name": "str", "run": "list", "inputs": "list|None", "outputs": "list|None"}, "pipeline step")
# what each command reads besides its declared inputs: its code and its default settings
MODULE_DEPENDENCIES = {
    "convert": ["dataset_prep/convert.py", "recbole_qbert/convert"],
    "extract_features": ["dataset_prep/extract_features.py", "recbole_qbert/features", "properties/features.yaml"],
    "fuse": ["dataset_prep/fuse.py", "recbole_qbert/fusion", "recbole_qbert/features/table.py",
             "properties/fusion.yaml"],
    "quantize": ["dataset_prep/quantize.py", "recbole_qbert/quantize", "recbole_qbert/semantic_ids.py",
                 "properties/quantize.yaml"],
    "run_recbole": ["run_recbole.py", "recbole_qbert/model", "recbole_qbert/trainer.py",
                    "recbole_qbert/training", "recbole_qbert/data", "properties/model", "properties/model_type",
                    "properties/overall.yaml", "properties/qbert4rec"],
}
KERNELS = "recbole_qbert/cpu_kernels.py"  # pins the CPU kernels every step computes with


@dataclass
class Step:
    name: str
    run: List[str]
    inputs: List[Path]
    outputs: List[Path]

    def command(self) -> List[str]:
        module = self.run[0]
        if module == "run_recbole":
            return [sys.executable, str(PROJECT_ROOT / "run_recbole.py"), *self.run[1:], *self._resume()]
        return [sys.executable, "-m", f"dataset_prep.{module}", *self.run[1:]]

    def _resume(self) -> List[str]:
        """``--resume`` when the training step's ``--checkpoint_dir=`` holds a ``last.pth`` (an interrupted
        step, or one given more epochs): the runner refuses a fresh start there, and the checkpoint refuses,
        in one line, a changed config or changed data."""
        args = self.run[1:]
        folders = [a.split("=", 1)[1] for a in args if a.startswith("--checkpoint_dir=")]
        if "--resume" in args or not folders:
            return []
        return ["--resume"] if (project_path(folders[-1]) / "last.pth").is_file() else []


@dataclass
class Pipeline:
    name: str
    dataset: str
    steps: List[Step]
    leaderboard: Optional[Path]
    source: str
    stamps: Path = field(default=None)
    report: Path = field(default=None)


def atomic_folder(dataset: str) -> Path:
    from recbole_qbert.data.atomic_files import dataset_folder

    return dataset_folder(dataset)


def load_pipeline(path) -> Pipeline:
    """Read and check a pipeline spec: unknown keys, unknown commands, duplicate steps and names that are
    not plain file names are errors."""
    data = load_spec_yaml(path, kind="pipeline", keys=SPEC_KEYS, concat=["steps"])
    if not data.get("dataset"):
        raise QBertError(f"{path}: 'dataset' is required")
    dataset = plain_name(data["dataset"], "dataset", path)  # names the folder of its stamps
    steps, seen = [], set()
    for i, raw in enumerate(data.get("steps") or []):
        where = f"{path}: step {i + 1}"
        if not isinstance(raw, dict) or set(raw) - set(STEP_KEYS) or not raw.get("name") or not raw.get("run"):
            raise QBertError(f"{where}: a step is a mapping with 'name' and 'run' (and 'inputs', 'outputs'), "
                             f"got {raw!r}")
        raw = check_values(raw, STEP_KEYS, where)
        plain_name(raw["name"], "step name", where)  # names its stamp and log
        if raw["name"] in seen:
            raise QBertError(f"{where}: step name '{raw['name']}' is used twice")
        seen.add(raw["name"])
        run = [str(a) for a in raw["run"]]
        if run[0] not in MODULE_DEPENDENCIES:
            raise QBertError(f"{where}: unknown command '{run[0]}' (expected one of {sorted(MODULE_DEPENDENCIES)})")
        inputs = [atomic_folder(dataset) if str(p) == "{atomic}" else project_path(str(p))
                  for p in raw.get("inputs") or []]
        outputs = [project_path(str(p)) for p in raw.get("outputs") or []]
        if not outputs:
            raise QBertError(f"{where}: 'outputs' is required, to know when the step can be skipped")
        steps.append(Step(str(raw["name"]), run, inputs, outputs))
    board = data.get("leaderboard")
    if board is not None and not project_path(board).is_file():
        raise QBertError(f"{path}: leaderboard spec {board} does not exist")
    name = plain_name(data.get("name") or Path(path).stem, "name", path)  # names its report
    return Pipeline(name, dataset, steps, project_path(board) if board else None, str(path),
                    stamps=PROJECT_ROOT / "build" / "pipeline" / dataset,
                    report=PROJECT_ROOT / "results" / "pipeline" / f"{name}.json")


def _files(path: Path) -> List[Path]:
    if path.is_file():
        return [path]
    if path.is_dir():
        return sorted(p for p in path.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    return []


def file_hashes(paths: List[Path], what: str, step: str) -> Dict[str, str]:
    hashes = {}
    for path in paths:
        files = _files(path)
        if not files:
            raise QBertError(f"step '{step}': {what} {shown_path(path)} does not exist (or is an empty folder)")
        hashes.update({shown_path(f): sha256_file(f) for f in files})
    return hashes


def step_identity(step: Step) -> str:
    """SHA-256 of the command, the inputs, and the code and default settings the command uses."""
    code = [PROJECT_ROOT / p for p in MODULE_DEPENDENCIES[step.run[0]] + [KERNELS]]
    parts = {"run": step.run, "inputs": file_hashes(step.inputs, "input", step.name),
             "code": file_hashes(code, "code", step.name)}
    return hashlib.sha256(repr(sorted(parts.items())).encode("utf-8")).hexdigest()


def _stamp_path(pipeline: Pipeline, step: Step) -> Path:
    return pipeline.stamps / f"{step.name}.json"


def current_stamp(pipeline: Pipeline, step: Step, identity: str) -> Optional[Dict]:
    """The step's stamp when it matches ``identity`` and the outputs are intact, else None."""
    import json

    try:
        stamp = json.loads(_stamp_path(pipeline, step).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if stamp.get("identity") != identity:
        return None
    try:
        return stamp if file_hashes(step.outputs, "output", step.name) == stamp.get("outputs") else None
    except QBertError:
        return None


def run_step(step: Step, log_file: Path) -> Dict:
    """Run ``step`` in a child process (output to the console and ``log_file``); wall seconds and the
    child's peak resident memory."""
    log_file.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with open(log_file, "w", encoding="utf-8") as log, Children() as children:
        proc = children.start(step.command(), cwd=PROJECT_ROOT, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT, text=True, bufsize=1)
        for line in proc.stdout:
            sys.stdout.write(f"  {line}")
            log.write(line)
        proc.stdout.close()
        _, status, usage = os.wait4(proc.pid, 0)
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        raise QBertError(f"step '{step.name}' failed with exit status {code}: {' '.join(map(shlex.quote, step.run))} "
                         f"(log: {shown_path(log_file)})")
    return {"seconds": round(time.perf_counter() - start, 1), "peak_rss_mb": round(usage.ru_maxrss / 1024, 1)}


def _run_or_reuse(pipeline: Pipeline, step: Step, tag: str, forced: bool) -> Dict:
    identity = step_identity(step)
    stamp = None if forced else current_stamp(pipeline, step, identity)
    if stamp is not None:
        print(f"{tag}: inputs unchanged, reusing {', '.join(shown_path(p) for p in step.outputs)}", flush=True)
        return {"step": step.name, "reused": True, "made": {k: stamp.get(k) for k in
                                                            ("seconds", "peak_rss_mb", "finished")},
                "outputs": stamp["outputs"]}
    print(f"{tag}: {' '.join(map(shlex.quote, step.run))}", flush=True)
    _stamp_path(pipeline, step).unlink(missing_ok=True)  # a failed rerun must not look current
    cost = run_step(step, pipeline.stamps / f"{step.name}.log")
    outputs = file_hashes(step.outputs, "output", step.name)
    write_json(_stamp_path(pipeline, step), {"identity": identity, "run": step.run, "outputs": outputs,
                                             **cost, "finished": datetime.datetime.now().isoformat(timespec="seconds")})
    return {"step": step.name, "reused": False, **cost, "outputs": outputs}


def run_pipeline(pipeline: Pipeline, *, force: Optional[List[str]] = None, leaderboard: bool = True,
                 jobs: int = 1) -> Dict:
    """Run the steps that are not current, then the leaderboard; returns (and saves) the run's figures."""
    from recbole_qbert.run_record import command_line, git_commit, machine_info

    force = set(force or [])
    unknown = force - {s.name for s in pipeline.steps}
    if unknown:
        raise QBertError(f"--force names unknown step '{sorted(unknown)[0]}' (steps: {[s.name for s in pipeline.steps]})")
    spec = None
    if leaderboard and pipeline.leaderboard is not None:
        from recbole_qbert.leaderboard import load_spec
        from recbole_qbert.leaderboard.plan import check_models

        spec = load_spec(pipeline.leaderboard)  # a bad spec or model name fails now, not after the steps ran
        check_models(spec)
    started = time.perf_counter()
    figures = []
    for i, step in enumerate(pipeline.steps, 1):
        with contextlib.ExitStack() as locks:
            for path in [*step.outputs, _stamp_path(pipeline, step)]:  # one writer per output
                locks.enter_context(output_lock(path, what=f"step '{step.name}'"))
            figures.append(_run_or_reuse(pipeline, step, f"[{i}/{len(pipeline.steps)}] {step.name}",
                                         step.name in force))
    board_s = None
    if spec is not None:
        from recbole_qbert.leaderboard import render, run_all

        print(f"leaderboard: {shown_path(pipeline.leaderboard)}", flush=True)
        t0 = time.perf_counter()
        run_all(spec, jobs=jobs)
        for path in render(spec):
            print(f"wrote {shown_path(path)}")
        board_s = round(time.perf_counter() - t0, 1)
    report = {"pipeline": pipeline.name, "dataset": pipeline.dataset, "spec": pipeline.source,
              "steps": figures, "leaderboard_s": board_s, "total_s": round(time.perf_counter() - started, 1),
              "command": command_line(), "git_commit": git_commit(), "machine": machine_info(),
              "finished": datetime.datetime.now().isoformat(timespec="seconds")}
    write_json(pipeline.report, report)
    return report
