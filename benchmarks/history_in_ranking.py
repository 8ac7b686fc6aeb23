"""How much of a trained sequential model's top-k goes to items the user already has: the validation and
test metrics of finished runs under RecBole's full ranking (history items kept among the candidates, its
default for sequential models) and with each user's history left out (``eval_filter_history``), both from
RecBole's evaluator over the run's ``best.pth``.

    python benchmarks/history_in_ranking.py saved/leaderboard/amazon-beauty-converged/QSASRec-seed2020 [...]

prints one line per run and writes ``results/benchmarks/history-in-ranking.json`` (``--out``). Where
users never pick an item twice (the Amazon 5-core sets), the gap is what a model loses by spending top
slots on its own input, which a protocol that filters viewed items (RecTools' ``filter_viewed``) hides.
"""
import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import recbole_qbert  # noqa: E402,F401  (pins the numeric kernels before numpy and torch load)
from recbole_qbert.config import PROJECT_ROOT  # noqa: E402
from recbole_qbert.safe_io import write_json  # noqa: E402
from finished_runs import load_best, over_runs  # noqa: E402

METRICS = ("ndcg@10", "recall@10")


def evaluate_both_ways(run_dir: Path) -> dict:
    """``{"model", "dataset", "valid": {"kept": {...}, "filtered": {...}}, "test": ...}`` for one run."""
    from recbole_qbert.trainer import make_trainer

    config, model, _, _, valid, test = load_best(run_dir)
    trainer = make_trainer(config, model)
    result = {"model": config["model"], "dataset": config["dataset"]}
    for split, data in (("valid", valid), ("test", test)):
        result[split] = {}
        for name, flag in (("kept", False), ("filtered", True)):
            config["eval_filter_history"] = flag  # read by the trainer at every batch
            metrics = trainer.evaluate(data, load_best_model=False, show_progress=False)
            result[split][name] = {k: round(float(metrics[k]), 4) for k in METRICS}
    return result


def report(run_dir: Path, r: dict) -> None:
    kept, filtered = r["test"]["kept"], r["test"]["filtered"]
    print(f"{run_dir}: test NDCG@10 {kept['ndcg@10']:.4f} kept, {filtered['ndcg@10']:.4f} filtered "
          f"({filtered['ndcg@10'] / kept['ndcg@10'] - 1:+.0%}); Recall@10 {kept['recall@10']:.4f}, "
          f"{filtered['recall@10']:.4f}", flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (the --checkpoint_dir of a run)")
    parser.add_argument("--out", type=Path, default=PROJECT_ROOT / "results/benchmarks/history-in-ranking.json")
    args = parser.parse_args(argv)
    results, failed = over_runs(args.runs, evaluate_both_ways, report)
    if results:
        write_json(args.out, results)
        print(f"wrote {args.out}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
