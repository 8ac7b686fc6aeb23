"""Leaderboards: several models x several seeds on one dataset, one split, one protocol.

A spec (``properties/leaderboard/*.yaml``) lists the dataset, models, seeds and the config every run
shares. A model entry is a model name, or ``{name: ROW, model: MODEL, config: {...}}`` for a variant
(an ablation row such as QBERT4Rec on random codes). Each (model, seed) runs in its own process through ``run_recbole.py`` (so its peak memory is its
own) and leaves a record in ``<out>/records/``. A run whose record matches the current config is not
redone; an interrupted run resumes from its ``last.pth``; a run whose config or input files (atomic files, semantic IDs) changed starts over.

``extends: OTHER.yaml`` takes the other spec's keys (not its name); ``config`` and ``model_config`` are
merged key by key, this spec's winning.
"""
import math
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Dict, List, Optional

import yaml

from recbole_qbert.config import PROJECT_ROOT, build_config, load_spec_yaml
from recbole_qbert.errors import QBertError
from recbole_qbert.model_registry import is_own_model, resolve_model
from recbole_qbert.run_record import command_line, machine_summary
from recbole_qbert.safe_io import atomic_open, write_text

SPEC_KEYS = {"name", "dataset", "extends", "models", "seeds", "config_files", "config", "model_config"}
METRICS = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)]
HEADLINE = ["ndcg@10", "recall@10"]
SUBSET_METRICS = ["subset ndcg@10", "subset recall@10"]  # test events whose target is in test_subset_items
# per-run figures averaged over seeds (seconds: wall, and CPU where other jobs share the machine)
COST_KEYS = ("best_epoch", "epochs_trained", "train_s_per_epoch", "train_cpu_s_per_epoch", "eval_s", "eval_cpu_s")


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


def load_spec(path, out: Optional[str] = None, overrides: Optional[Dict] = None) -> Spec:
    """Read and check a leaderboard spec; ``overrides`` (``--key=value``) apply to every run."""
    data = load_spec_yaml(path, kind="leaderboard", keys=SPEC_KEYS, merge=["config", "model_config"])
    for key in ("dataset", "models", "seeds"):
        if not data.get(key):
            raise QBertError(f"{path}: '{key}' is required")
    if not all(isinstance(s, int) for s in data["seeds"]):
        raise QBertError(f"{path}: 'seeds' must be a list of integers")
    names, model_class, model_config = [], {}, dict(data.get("model_config") or {})
    for entry in data["models"]:
        if isinstance(entry, dict):
            if set(entry) - {"name", "model", "config"} or not entry.get("name") or not entry.get("model"):
                raise QBertError(f"{path}: a model variant needs 'name' and 'model' (and optional 'config'), "
                                 f"got {entry}")
            name = str(entry["name"])
            model_class[name] = str(entry["model"])
            model_config[name] = {**(entry.get("config") or {}), **model_config.get(name, {})}
        else:
            name = str(entry)
        if name in names:
            raise QBertError(f"{path}: model '{name}' is listed twice")
        names.append(name)
    for model in model_config:
        if model not in names:
            raise QBertError(f"{path}: model_config names '{model}', which is not in models")
    name = data.get("name") or Path(path).stem
    base = Path(path).resolve().parent
    return Spec(
        name=name,
        dataset=data["dataset"],
        models=names,
        seeds=list(data["seeds"]),
        out=Path(out) if out else PROJECT_ROOT / "results" / "leaderboard" / name,
        config_files=[str(f if Path(f).is_absolute() else (base / f)) for f in data.get("config_files") or []],
        config={**(data.get("config") or {}), **(overrides or {})},
        model_config=model_config,
        model_class=model_class,
        source=str(path),
    )


def _read_json(path: Path) -> Optional[dict]:
    import json

    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None


def _run_identity(spec: Spec, model: str, seed: int, config_file: Path):
    """(config hash, budget, input file hashes) of a run as configured now; a record must match all
    three to be reused."""
    from recbole_qbert.run_record import run_budget, run_inputs

    name = spec.model_of(model)
    config = build_config(resolve_model(name), spec.dataset, spec.config_files + [str(config_file)],
                          own_model=is_own_model(name))
    return config.run_hash, run_budget(config), run_inputs(config)


def _plan(spec: Spec, model: str, seed: int, tag: str) -> Optional[List[str]]:
    """The command that (re)runs ``(model, seed)``, or None when its record is current."""
    from recbole_qbert.trainer import load_checkpoint

    run_dir = spec.run_dir(model, seed)
    run_dir.mkdir(parents=True, exist_ok=True)
    config_file = run_dir / "leaderboard.yaml"
    with atomic_open(config_file, "w", encoding="utf-8") as f:
        yaml.safe_dump(spec.run_config(model, seed), f, sort_keys=True)
    identity = _run_identity(spec, model, seed, config_file)

    record = _read_json(spec.record_path(model, seed))
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
           f"--dataset={spec.dataset}", f"--config_files={' '.join(spec.config_files + [str(config_file)])}",
           f"--checkpoint_dir={run_dir}", f"--record={spec.record_path(model, seed)}"]
    return cmd + ["--resume"] if resume else cmd


def run_all(spec: Spec, jobs: int = 1) -> None:
    """Run every (model, seed) not already recorded with the current config, ``jobs`` at a time (with
    ``jobs > 1`` each run's console output goes to ``<run dir>/console.log``)."""
    write_text(spec.out / "command.txt", command_line() + "\n")
    pairs = [(m, s) for m in spec.models for s in spec.seeds]
    running: List[tuple] = []
    failures: List[str] = []

    def reap(block: bool) -> None:
        for entry in list(running):
            tag, proc, run_dir, log = entry
            code = proc.wait() if block else proc.poll()
            if code is None:
                continue
            running.remove(entry)
            if log is not None:
                log.close()
            if code != 0:
                failures.append(f"{tag} failed with exit status {code}; see {run_dir / 'run.log'}")
            elif jobs > 1:
                print(f"{tag}: finished", flush=True)
            if block:
                return

    for i, (model, seed) in enumerate(pairs, 1):
        tag = f"[{i}/{len(pairs)}] {model} seed {seed}"
        while len(running) >= jobs:
            reap(block=True)
        if failures and jobs == 1:
            break
        cmd = _plan(spec, model, seed, tag)
        if cmd is None:
            continue
        run_dir = spec.run_dir(model, seed)
        log = open(run_dir / "console.log", "w", encoding="utf-8") if jobs > 1 else None
        running.append((tag, subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT if log else None),
                        run_dir, log))
    while running:
        reap(block=True)
    if failures:
        raise QBertError(f"{failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
                         + "; fix it and rerun the same command to continue")


# -- rendering ---------------------------------------------------------------------------------

def collect(spec: Spec) -> Dict[str, List[dict]]:
    """The records of the spec's runs that exist, by model, in spec order."""
    by_model = {}
    for model in spec.models:
        records = [r for r in (_read_json(spec.record_path(model, s)) for s in spec.seeds) if r]
        if records:
            by_model[model] = records
    return by_model


def _mean_std(values: List[float]):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, std


def summarise(by_model: Dict[str, List[dict]]) -> List[dict]:
    rows = []
    for model, records in by_model.items():
        row = {"model": model, "runs": len(records), "seeds": [r["seed"] for r in records]}
        for metric in METRICS:
            row[metric] = _mean_std([r["test"][metric] for r in records])
        row["valid ndcg@10"] = _mean_std([r["valid"].get("ndcg@10", float("nan")) for r in records])
        subsets = [(r.get("test_subset") or {}).get("metrics") or {} for r in records]
        if all(subsets):
            for metric in SUBSET_METRICS:
                row[metric] = _mean_std([m[metric.split(" ")[1]] for m in subsets])
            row["subset events"] = records[0]["test_subset"]["events"]
        for key in COST_KEYS:
            row[key] = statistics.fmean(float(r[key] if r.get(key) is not None else "nan") for r in records)
        row["peak_rss_mb"] = max(r["peak_memory"]["rss_mb"] for r in records)
        row["stop"] = ", ".join(sorted({r["stop_reason"] or "?" for r in records}))
        rows.append(row)
    return rows


def converged(row: dict) -> bool:
    """Every run of the row ended by early stopping on validation (not by a time or epoch cap)."""
    return row["stop"] == "early_stopping"


def seen(row: dict) -> str:
    """What the row's runs saw, e.g. ``'41.3 epochs, early_stopping'`` or ``'0.2 epochs, budget'``."""
    return f"{row['epochs_trained']:.1f} epochs, {row['stop']}"


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _metric_columns(rows: List[dict]) -> List[str]:
    return METRICS + ["valid ndcg@10"] + [m for m in SUBSET_METRICS if all(m in r for r in rows)]


def render_markdown(spec: Spec, rows: List[dict], by_model: Dict[str, List[dict]]) -> str:
    metric_cols = _metric_columns(rows)
    best = {m: max(r[m][0] for r in rows) for m in metric_cols}
    head = ["Model", "runs"] + [m.replace("recall", "Recall").replace("ndcg", "NDCG").replace("mrr", "MRR")
                                for m in metric_cols] + ["best epoch", "epochs", "s/epoch", "CPU s/epoch", "eval s", "eval CPU s", "peak MiB",
                                                     "stopped by"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["model"], str(r["runs"])]
        for m in metric_cols:
            text = _fmt(*r[m])
            cells.append(f"**{text}**" if r[m][0] == best[m] else text)
        cells += [f"{r['best_epoch']:.1f}", f"{r['epochs_trained']:.1f}", f"{r['train_s_per_epoch']:.1f}",
                  f"{r['train_cpu_s_per_epoch']:.1f}",
                  f"{r['eval_s']:.1f}", f"{r['eval_cpu_s']:.1f}", f"{r['peak_rss_mb']:.0f}", r["stop"]]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(by_model.values()))[0]
    budget = first["budget"]
    budget_text = (f"at most {budget['epochs']} epochs, early stopping after {budget['stopping_step']} "
                   f"evaluations without gain" + (f", at most {budget['train_budget_s']} {'CPU ' if budget.get('train_budget_clock') == 'cpu' else ''}s of training per run"
                                                  if budget["train_budget_s"] else ""))
    machines = sorted({machine_summary(r["machine"]) for rs in by_model.values() for r in rs})
    commits = sorted({r["git_commit"] for rs in by_model.values() for r in rs})
    command_file = spec.out / "command.txt"
    command = command_file.read_text(encoding="utf-8").strip() if command_file.is_file() else \
        f"qbert-leaderboard {spec.source}"
    return "\n".join([
        f"# Leaderboard: {spec.dataset} ({spec.name})",
        "",
        f"Test metrics at the best validation epoch (NDCG@10), mean ± sample std over seeds "
        f"{', '.join(map(str, spec.seeds))}; leave-one-out by time, full ranking over all "
        f"{first['data']['items']} items, {first['data']['users']} users. Best mean per column in bold.",
        "",
        *lines,
        "",
        f"- Budget: {budget_text}.",
        *([f"- **Not converged** (stopped by {', '.join(sorted({r['stop'] for r in rows if not converged(r)}))}): "
           + ", ".join(f"{r['model']} ({r['epochs_trained']:.1f} epochs)" for r in rows if not converged(r))
           + ". An efficiency view: it measures what each model reaches within the budget, not which is better."]
          if any(not converged(r) for r in rows) else ["- Every run stopped by early stopping on validation NDCG@10."]),
        *([f"- Subset columns: the {first['test_subset']['events']} test events whose target is one of the "
           f"{first['test_subset']['items']} items of {first['test_subset']['items_file']}."]
          if any(m in metric_cols for m in SUBSET_METRICS) else []),
        f"- Machine: {'; '.join(machines)}. Commit: {', '.join(commits)}.",
        f"- Reproduce: `{command}`",
        "",
    ])


def render_csv(rows: List[dict]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    metric_cols = _metric_columns(rows)
    writer.writerow(["model", "runs"] + [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
                    + list(COST_KEYS) + ["peak_rss_mb", "stopped_by"])
    for r in rows:
        writer.writerow([r["model"], r["runs"]] + [f"{v:.6f}" for m in metric_cols for v in r[m]]
                        + [f"{r[k]:.2f}" for k in COST_KEYS]
                        + [f"{r['peak_rss_mb']:.0f}", r["stop"]])
    return buf.getvalue()


def render_runs_csv(by_model: Dict[str, List[dict]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "seed", "config_hash"] + METRICS + ["valid_ndcg@10", "best_epoch", "epochs_trained",
                                                                  "train_s_per_epoch", "eval_s", "eval_cpu_s",
                                                                  "peak_rss_mb",
                                                                  "stop_reason", "git_commit"])
    for model, records in by_model.items():
        for r in records:
            writer.writerow([model, r["seed"], r["config_hash"]] + [r["test"][m] for m in METRICS]
                            + [r["valid"].get("ndcg@10"), r["best_epoch"], r["epochs_trained"],
                               r["train_s_per_epoch"], r["eval_s"], r.get("eval_cpu_s"), r["peak_memory"]["rss_mb"],
                               r["stop_reason"], r["git_commit"]])
    return buf.getvalue()


def render_plot(spec: Spec, rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    x = np.arange(len(rows))
    width = 0.8 / len(HEADLINE)
    fig, ax = plt.subplots(figsize=(max(4.0, 1.6 * len(rows) + 2), 4.0))
    # a run cut short by a budget is not a verdict on its model: hatched, and its epochs under its name
    hatches = ["" if converged(r) else "//" for r in rows]
    for i, metric in enumerate(HEADLINE):
        means = [r[metric][0] for r in rows]
        stds = [0.0 if math.isnan(r[metric][1]) else r[metric][1] for r in rows]
        ax.bar(x + (i - (len(HEADLINE) - 1) / 2) * width, means, width, yerr=stds, capsize=3, hatch=hatches,
               edgecolor="black", linewidth=0.5, label=metric.replace("ndcg", "NDCG").replace("recall", "Recall"))
    ax.set_xticks(x, [f"{r['model']}\n{r['epochs_trained']:.1f} epochs\n{r['stop']}" for r in rows], fontsize="small")
    ax.set_ylabel("test, mean ± std over seeds")
    unconverged = sum(1 for r in rows if not converged(r))
    ax.set_title(f"{spec.dataset}: {spec.name}" + (
        f"\nhatched: {unconverged} of {len(rows)} models stopped before convergence (efficiency view)"
        if unconverged else "\nevery run trained to early stopping"), fontsize="medium")
    ax.legend()
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def render_curves(spec: Spec, by_model: Dict[str, List[dict]], path: Path) -> None:
    """Validation NDCG@10 against training seconds (on the budget's clock), one line per run: how fast
    each model learns under the same budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.0))
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    clock = "cpu" if next(iter(by_model.values()))[0]["budget"].get("train_budget_clock") == "cpu" else "wall"
    rows = {row["model"]: row for row in summarise(by_model)}
    for i, (model, records) in enumerate(by_model.items()):
        for j, r in enumerate(records):
            spent, xs, ys = 0.0, [], []
            for h in r["history"]:
                spent += h.get("train_cpu_s" if clock == "cpu" else "train_s", 0.0)
                if "valid" in h:
                    xs.append(spent)
                    ys.append(h["valid"].get("ndcg@10", float("nan")))
            label = f"{model} ({seen(rows[model])})" if j == 0 else None
            ax.plot(xs, ys, marker=".", color=colors[i % len(colors)], alpha=0.8, label=label,
                    linestyle="-" if converged(rows[model]) else "--")
    ax.set_xlabel(f"training seconds ({'CPU' if clock == 'cpu' else 'wall clock'})")
    ax.set_ylabel("validation NDCG@10")
    ax.set_title(f"{spec.dataset}: {spec.name}, one line per seed (dashed: stopped before convergence)",
                 fontsize="medium")
    ax.legend(fontsize="small")
    fig.tight_layout()
    with atomic_open(path, "wb") as f:
        fig.savefig(f, format="png", dpi=120)
    plt.close(fig)


def render(spec: Spec) -> List[Path]:
    """Write ``leaderboard.md``, ``leaderboard.csv``, ``runs.csv``, ``leaderboard.png`` and
    ``curves.png`` (validation curves) into ``spec.out``."""
    by_model = collect(spec)
    if not by_model:
        raise QBertError(f"{spec.out / 'records'}: no finished runs to render yet")
    rows = summarise(by_model)
    paths = [spec.out / "leaderboard.md", spec.out / "leaderboard.csv", spec.out / "runs.csv",
             spec.out / "leaderboard.png"]
    write_text(paths[0], render_markdown(spec, rows, by_model))
    write_text(paths[1], render_csv(rows))
    write_text(paths[2], render_runs_csv(by_model))
    render_plot(spec, rows, paths[3])
    paths.append(spec.out / "curves.png")
    render_curves(spec, by_model, paths[4])
    return paths
