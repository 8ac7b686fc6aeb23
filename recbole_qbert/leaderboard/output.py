"""What a leaderboard writes: ``leaderboard.md``, ``leaderboard.csv``, ``runs.csv``, ``leaderboard.png``
and ``curves.png``."""
import math
from pathlib import Path
from typing import Dict, List

from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.aggregate import (COST_KEYS, METRICS, SUBSET_METRICS, collect, converged, seen,
                                                 stop_label, summarise, view)
from recbole_qbert.leaderboard.spec import Spec
from recbole_qbert.run_record import machine_summary
from recbole_qbert.safe_io import atomic_open, write_text

HEADLINE = ["ndcg@10", "recall@10"]


def _fmt(mean: float, std: float) -> str:
    return f"{mean:.4f}" if math.isnan(std) else f"{mean:.4f} ± {std:.4f}"


def _budget_text(budget: dict) -> str:
    clock = "CPU " if budget.get("train_budget_clock") == "cpu" else ""
    drops = budget.get("plateau_lr_drops")
    return (f"at most {budget['epochs']} epochs, early stopping after {budget['stopping_step']} evaluations "
            f"without gain" + (f" once {drops} plateau drop(s) of the learning rate (x{budget['plateau_lr_factor']:g}, "
                               f"from the best model) are spent" if drops else "")
            + (f", at most {budget['train_budget_s']} {clock}s of training per run" if budget["train_budget_s"] else ""))


def _metric_columns(rows: List[dict]) -> List[str]:
    return METRICS + ["valid ndcg@10"] + [m for m in SUBSET_METRICS if all(m in r for r in rows)]


def render_markdown(spec: Spec, rows: List[dict], by_model: Dict[str, List[dict]]) -> str:
    metric_cols = _metric_columns(rows)
    capped = [r for r in rows if not converged(r)]
    # a row stopped by its budget is never marked best beside converged rows: it would read as a verdict
    contenders = [r for r in rows if converged(r)] or rows
    best = {m: max(r[m][0] for r in contenders) for m in metric_cols}
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
                  f"{r['eval_s']:.1f}", f"{r['eval_cpu_s']:.1f}", f"{r['peak_rss_mb']:.0f}", stop_label(r)]
        lines.append("| " + " | ".join(cells) + " |")
    first = next(iter(by_model.values()))[0]
    # rows with a budget of their own (more patience, a CPU cap) are named beside the first row's budget
    budgets: Dict[str, List[str]] = {}
    for model, rs in by_model.items():
        budgets.setdefault(_budget_text(rs[0]["budget"]), []).append(model)
    budget_line = "; ".join([text if i == 0 else f"{text} for {', '.join(models)}"
                             for i, (text, models) in enumerate(budgets.items())])
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
        f"{first['data']['items']} items, {first['data']['users']} users. "
        + ("Best mean per column in bold." if len(capped) < len(rows) else
           "**An efficiency view** (every run stopped by its budget): the bold means are the best within that "
           "budget, not the better model."),
        "",
        *lines,
        "",
        f"- Budget: {budget_line}.",
        *([f"- **Not converged** (stopped by {', '.join(sorted({r['stop'] for r in capped}))}): "
           + ", ".join(f"{r['model']} ({r['epochs_trained']:.1f} epochs)" for r in capped)
           + (". An efficiency view: it measures what each model reaches within the budget, not which is better."
              if len(capped) == len(rows) else
              ": what it reaches within its budget, an efficiency view, not a converged figure nor a verdict on "
              "which model is better. Every other run stopped by early stopping on validation NDCG@10.")]
          if capped else ["- Every run stopped by early stopping on validation NDCG@10."]),
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
    writer.writerow(["model", "view", "runs"] + [f"{m}_{s}" for m in metric_cols for s in ("mean", "std")]
                    + list(COST_KEYS) + ["peak_rss_mb", "stopped_by"])
    for r in rows:
        writer.writerow([r["model"], view(r["stop"]), r["runs"]] + [f"{v:.6f}" for m in metric_cols for v in r[m]]
                        + [f"{r[k]:.2f}" for k in COST_KEYS]
                        + [f"{r['peak_rss_mb']:.0f}", r["stop"]])
    return buf.getvalue()


def render_runs_csv(by_model: Dict[str, List[dict]]) -> str:
    import csv
    import io

    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["model", "view", "seed", "config_hash"] + METRICS
                    + ["valid_ndcg@10", "best_epoch", "epochs_trained", "train_s_per_epoch", "eval_s", "eval_cpu_s",
                       "peak_rss_mb", "stop_reason", "git_commit"])
    for model, records in by_model.items():
        for r in records:
            writer.writerow([model, view(r["stop_reason"]), r["seed"], r["config_hash"]]
                            + [r["test"][m] for m in METRICS]
                            + [r["valid"].get("ndcg@10"), r["best_epoch"], r["epochs_trained"],
                               r["train_s_per_epoch"], r["eval_s"], r.get("eval_cpu_s"), r["peak_memory"]["rss_mb"],
                               r["stop_reason"], r["git_commit"]])
    return buf.getvalue()


def render_plot(spec: Spec, rows: List[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    # horizontal bars, one band per model from the top down: long names and 20 rows stay readable
    y = np.arange(len(rows))
    height = 0.8 / len(HEADLINE)
    fig, ax = plt.subplots(figsize=(9.0, max(3.0, 0.5 * len(rows) + 1.5)))
    # a run cut short by a budget is not a verdict on its model: hatched, and its epochs beside its name
    hatches = ["" if converged(r) else "//" for r in rows]
    stds = {m: [0.0 if math.isnan(r[m][1]) else r[m][1] for r in rows] for m in HEADLINE}  # one run: no bar
    for i, metric in enumerate(HEADLINE):
        means = [r[metric][0] for r in rows]
        ax.barh(y + (i - (len(HEADLINE) - 1) / 2) * height, means, height, xerr=stds[metric], capsize=2, hatch=hatches,
                edgecolor="black", linewidth=0.5, label=metric.replace("ndcg", "NDCG").replace("recall", "Recall"))
    ax.set_yticks(y, [f"{r['model']} ({seen(r)})" for r in rows],
                  fontsize="small")
    ax.invert_yaxis()  # the spec's first model on top, as in the table
    widest = max(r[m][0] + std for m in HEADLINE for r, std in zip(rows, stds[m]))
    ax.set_xlim(0.0, 1.35 * widest)  # room on the right for the legend
    ax.set_xlabel("test, mean ± std over seeds")
    unconverged = sum(1 for r in rows if not converged(r))
    fig.suptitle(f"{spec.dataset}: {spec.name}" + (  # over the whole figure: the axes are narrow beside the names
        f"\nhatched: {unconverged} of {len(rows)} models stopped before convergence (efficiency view)"
        if unconverged else "\nevery run trained to early stopping"), fontsize="medium")
    ax.legend(loc="upper right")
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
    by_model = collect(spec, tables=True)
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
