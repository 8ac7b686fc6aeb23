"""Training-epoch and full-ranking evaluation cost of QBERT4Rec against RecBole's BERT4Rec (and others).

Runs a leaderboard spec whose runs train for one epoch each (every model in its own process, one after
the other on the same machine), then prints and saves, per model, seconds per training epoch, seconds to
evaluate all users with full ranking, peak memory, and each model's cost relative to BERT4Rec:

    python benchmarks/epoch_cost.py [properties/leaderboard/amazon-beauty-epoch-cost.yaml]

The figures go to results/benchmarks/epoch-cost-<dataset>.json with the machine and command.
"""
import argparse
import sys

from recbole_qbert.config import PROJECT_ROOT
from recbole_qbert.leaderboard import collect, load_spec, run_all
from recbole_qbert.run_record import command_line, machine_info
from recbole_qbert.safe_io import write_json


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("spec", nargs="?", default=str(PROJECT_ROOT / "properties/leaderboard/amazon-beauty-epoch-cost.yaml"))
    parser.add_argument("--reference", default="BERT4Rec", help="model the others are compared with")
    args = parser.parse_args(argv)
    spec = load_spec(args.spec)
    run_all(spec)
    rows = {}
    for model, records in collect(spec).items():
        r = records[0]
        rows[model] = {"train_s_per_epoch": r["train_s_per_epoch"], "train_cpu_s_per_epoch": r["train_cpu_s_per_epoch"],
                       "train_samples": r["data"]["train_samples"], "valid_s": r["valid_s_per_epoch"],
                       "test_eval_s": r["eval_s"], "test_eval_cpu_s": r["eval_cpu_s"],
                       "peak_rss_mb": r["peak_memory"]["rss_mb"], "valid_ndcg@10_after_1_epoch": r["valid"].get("ndcg@10")}
    ref = rows[args.reference]
    for row in rows.values():
        row["epoch_cost_vs_reference"] = round(row["train_s_per_epoch"] / ref["train_s_per_epoch"], 3)
        row["epoch_cpu_cost_vs_reference"] = round(row["train_cpu_s_per_epoch"] / ref["train_cpu_s_per_epoch"], 3)
        row["eval_cost_vs_reference"] = round(row["test_eval_s"] / ref["test_eval_s"], 3)
        row["eval_cpu_cost_vs_reference"] = round(row["test_eval_cpu_s"] / ref["test_eval_cpu_s"], 3)
    out = PROJECT_ROOT / "results" / "benchmarks" / f"epoch-cost-{spec.dataset}.json"
    write_json(out, {"dataset": spec.dataset, "reference": args.reference, "models": rows,
                     "machine": machine_info(), "command": command_line()})
    width = max(map(len, rows))
    print(f"{'model':<{width}}  samples  s/epoch (CPU s)  vs {args.reference} (CPU)  eval s (CPU s)  "
          f"vs {args.reference} (CPU)  peak MiB")
    for model, row in rows.items():
        print(f"{model:<{width}}  {row['train_samples']:7d}  {row['train_s_per_epoch']:7.1f} ({row['train_cpu_s_per_epoch']:6.1f})  "
              f"{row['epoch_cost_vs_reference']:6.3f} ({row['epoch_cpu_cost_vs_reference']:.3f})  "
              f"{row['test_eval_s']:6.1f} ({row['test_eval_cpu_s']:6.1f})  "
              f"{row['eval_cost_vs_reference']:6.3f} ({row['eval_cpu_cost_vs_reference']:.3f})  {row['peak_rss_mb']:8.0f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
