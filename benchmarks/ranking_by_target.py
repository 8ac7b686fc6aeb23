"""Where a finished run wins and loses: validation and test NDCG@10 and Recall@10 of its ``best.pth``
broken down by how popular the target item is in the training split (five bins, the quintiles of the
dataset's validation and test targets, so every run on one dataset shares them), with each bin's share of
the targets.

    python benchmarks/ranking_by_target.py saved/leaderboard/amazon-beauty-converged/QSASRec-seed2020 [...]

prints one block per run and writes ``results/benchmarks/ranking-by-target-<dataset>.json`` (``--out``).
Ranks are computed here from ``full_sort_predict`` under RecBole's full ranking (history items kept, the
padding item left out); the overall means are printed beside RecBole's evaluator on the same checkpoint,
which they match up to ties. A model that leans on popularity loses more from validation to test when the test
targets, one step later in time, are less popular.
"""
import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import recbole_qbert  # noqa: E402,F401  (pins the numeric kernels before numpy and torch load)
import numpy as np  # noqa: E402
from recbole_qbert.config import PROJECT_ROOT  # noqa: E402
from recbole_qbert.safe_io import write_json  # noqa: E402
from finished_runs import load_best, over_runs  # noqa: E402

N_BINS = 5
# per-target value of each metric from the number of items ranked above the target ``(N,)``
METRICS = {"ndcg@10": lambda ranks: np.where(ranks < 10, 1 / np.log2(ranks + 2), 0.0),
           "recall@10": lambda ranks: (ranks < 10).astype(float)}


def training_counts(dataset):
    """Interactions per item ``(n_items,)`` in the training split, as the protocol defines it
    (:func:`recbole_qbert.data.split.leave_one_out`: each user's last two interactions are held out)."""
    from recbole_qbert.data.split import leave_one_out

    feat = dataset.inter_feat
    times = feat[dataset.time_field].numpy() if dataset.time_field else None
    train = np.concatenate([s.train for s in leave_one_out(feat[dataset.uid_field].numpy(), times)])
    return np.bincount(feat[dataset.iid_field].numpy()[train], minlength=dataset.item_num)


def target_ranks(model, data):
    """``(ranks, targets)`` over one evaluation split: the number of items scored strictly above each
    user's target, and the target item ids."""
    import torch

    ranks, targets = [], []
    with torch.no_grad():
        for interaction, _, positive_u, positive_i in data:
            scores = model.full_sort_predict(interaction.to(model.device)).view(len(interaction), -1)
            scores[:, 0] = -math.inf
            target = scores[positive_u, positive_i].unsqueeze(1)
            ranks.append((scores > target).sum(1).cpu().numpy())
            targets.append(positive_i.cpu().numpy())
    return np.concatenate(ranks), np.concatenate(targets)


def breakdown(run_dir: Path) -> dict:
    from recbole_qbert.trainer import make_trainer

    config, model, dataset, _, valid, test = load_best(run_dir)
    counts = training_counts(dataset)
    splits = {name: target_ranks(model, data) for name, data in (("valid", valid), ("test", test))}
    all_targets = np.concatenate([t for _, t in splits.values()])
    edges = np.quantile(counts[all_targets], np.linspace(0, 1, N_BINS + 1)[1:-1])
    result = {"model": config["model"], "dataset": config["dataset"],
              "bins": [f"<= {edges[0]:g}"] + [f"{a:g}-{b:g}" for a, b in zip(edges[:-1] + 1, edges[1:])]
              + [f"> {edges[-1]:g}"]}
    for name, (ranks, targets) in splits.items():
        bins = np.searchsorted(edges, counts[targets], side="left")
        result[name] = {"share_by_bin": [round(float((bins == b).mean()), 3) for b in range(N_BINS)]}
        for metric, per_target in METRICS.items():
            value = per_target(ranks)
            result[name][metric] = round(float(value.mean()), 4)
            result[name][f"{metric}_by_bin"] = [round(float(value[bins == b].mean()), 4) if (bins == b).any()
                                                else None for b in range(N_BINS)]  # None: no target in that bin
    trainer = make_trainer(config, model)  # RecBole's evaluator on the same checkpoint, as a cross-check
    for name, data in (("valid", valid), ("test", test)):
        evaluated = trainer.evaluate(data, load_best_model=False, show_progress=False)
        for metric in METRICS:
            result.setdefault(f"recbole_{metric}", {})[name] = round(float(evaluated[metric]), 4)
    return result


def report(run_dir: Path, r: dict) -> None:
    print(f"{run_dir}: target popularity bins {', '.join(r['bins'])}")
    for split in ("valid", "test"):
        s = r[split]
        print(f"  {split}: share of targets by bin " + "  ".join(f"{w:.0%}" for w in s["share_by_bin"]))
        for metric in METRICS:
            print(f"    {metric} {s[metric]:.4f} (RecBole {r['recbole_' + metric][split]:.4f}); by bin "
                  + "  ".join("-" if v is None else f"{v:.4f}" for v in s[f"{metric}_by_bin"]), flush=True)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("runs", nargs="+", type=Path, help="run folders (the --checkpoint_dir of a run)")
    parser.add_argument("--out", type=Path, help="JSON file (default: results/benchmarks/ranking-by-target-<dataset>.json)")
    args = parser.parse_args(argv)
    results, failed = over_runs(args.runs, breakdown, report)
    if results:
        datasets = sorted({r["dataset"] for r in results.values()})
        out = args.out or PROJECT_ROOT / f"results/benchmarks/ranking-by-target-{'-'.join(datasets)}.json"
        write_json(out, results)
        print(f"wrote {out}")
    return 2 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
