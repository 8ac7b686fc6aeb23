"""Time to quality: the training CPU seconds each model of a converged leaderboard needs to reach the
reference model's best validation NDCG@10 (seed by seed), read from the runs' per-epoch histories.

    python benchmarks/time_to_quality.py properties/leaderboard/amazon-scientific-converged.yaml \
        --reference SASRec

prints one line per model and writes ``results/benchmarks/time-to-quality-<leaderboard>.json``
(``--out``). A run
that never reaches the target counts as not reaching it (``null``), never as its total time. Seconds are
the run's own CPU seconds of training (evaluation excluded), so runs that shared the machine compare.
A row evaluated on another protocol than the reference (``eval_filter_history``: its validation leaves the
history out of the ranking) is still measured but marked ``"comparable": false``: its validation scores are
on another scale than the target's.
"""
import argparse
import statistics
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recbole_qbert.config import PROJECT_ROOT  # noqa: E402
from recbole_qbert.errors import QBertError  # noqa: E402
from recbole_qbert.leaderboard import collect, load_spec  # noqa: E402
from recbole_qbert.safe_io import write_json  # noqa: E402


def seconds_to_reach(record: dict, target: float):
    """(CPU seconds, epoch) of the first evaluated epoch with validation NDCG@10 >= ``target``, or None."""
    spent = 0.0
    for h in record["history"]:
        spent += h.get("train_cpu_s", 0.0)
        if h.get("valid", {}).get("ndcg@10", float("-inf")) >= target:
            return round(spent, 2), h["epoch"]
    return None


def filters_history(records) -> bool:
    """Whether a row's runs leave the user's history out of the ranking (RecBole's ranking keeps it)."""
    return any(r.get("config", {}).get("eval_filter_history", False) for r in records)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("spec", help="converged leaderboard spec")
    parser.add_argument("--reference", default="SASRec", help="row whose best validation NDCG@10 is the target")
    parser.add_argument("--board", help="leaderboard folder (default: results/leaderboard/<spec name>)")
    parser.add_argument("--out", help="JSON file (default: results/benchmarks/time-to-quality-<spec name>.json)")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec, out=args.board)
    by_model = collect(spec)
    if args.reference not in by_model:
        raise SystemExit(f"error: {spec.out}: no records of the reference row '{args.reference}'")
    targets = {r["seed"]: r["valid"]["ndcg@10"] for r in by_model[args.reference]}
    result = {"leaderboard": spec.name, "reference": args.reference, "targets": targets, "models": {}}
    reference_filters = filters_history(by_model[args.reference])
    for model, records in by_model.items():
        comparable = filters_history(records) == reference_filters
        runs = []
        for r in records:
            if r["seed"] not in targets:
                continue
            hit = seconds_to_reach(r, targets[r["seed"]])
            runs.append({"seed": r["seed"], "cpu_s": hit and hit[0], "epoch": hit and hit[1],
                         "best_valid_ndcg@10": r["valid"]["ndcg@10"], "stop_reason": r["stop_reason"],
                         "total_train_cpu_s": r["train_cpu_s"]})
        reached = [run["cpu_s"] for run in runs if run["cpu_s"] is not None]
        result["models"][model] = {"runs": runs, "reached": f"{len(reached)}/{len(runs)}",
                                   "mean_cpu_s_when_reached": round(statistics.fmean(reached), 2) if reached else None,
                                   "comparable": comparable}
        mean = result["models"][model]["mean_cpu_s_when_reached"]
        print(f"{model:24s} reached {len(reached)}/{len(runs)} seeds"
              + (f", mean {mean:.1f} CPU s" if mean is not None else "")
              + ("" if comparable else " (not comparable: another protocol for the history in the ranking)"))
    out = Path(args.out) if args.out else PROJECT_ROOT / "results" / "benchmarks" / f"time-to-quality-{spec.name}.json"
    write_json(out, result)
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except QBertError as e:
        sys.exit(f"error: {e}")
