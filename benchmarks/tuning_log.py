"""Tuning log: every configuration of one or more tuning leaderboards with its validation score, and the
configuration chosen per model family (the best validation NDCG@10; test figures are shown, never used).

A family is a model with everything in its variant config except the grid keys, so QSASRec with and
without input masking are two families, each with its own choice from the same grid.

    python benchmarks/tuning_log.py properties/leaderboard/amazon-scientific-tuning-sasrec.yaml \
        properties/leaderboard/amazon-scientific-tuning-qsasrec.yaml --out results/tuning/amazon-scientific

writes ``<out>.md`` and ``<out>.json``.
"""
import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from recbole_qbert.leaderboard import collect, load_spec  # noqa: E402
from recbole_qbert.safe_io import write_json, write_text  # noqa: E402

GRID_KEYS = ("hidden_size", "inner_size", "hidden_dropout_prob", "attn_dropout_prob", "learning_rate")


def entries(spec_paths):
    for path in spec_paths:
        spec = load_spec(path)
        for name, records in collect(spec).items():
            config = spec.model_config.get(name, {})
            grid = {k: config[k] for k in GRID_KEYS if k in config}
            rest = {k: v for k, v in config.items() if k not in GRID_KEYS}
            family = spec.model_of(name) + (" " + json.dumps(rest, sort_keys=True) if rest else "")
            for r in records:
                yield {"spec": str(path), "row": name, "family": family, "seed": r["seed"], "grid": grid,
                       "valid_ndcg@10": r["valid"]["ndcg@10"], "test_ndcg@10": r["test"]["ndcg@10"],
                       "best_epoch": r["best_epoch"], "epochs": r["epochs_trained"],
                       "stop_reason": r["stop_reason"], "train_cpu_s": r["train_cpu_s"]}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("specs", nargs="+", help="tuning leaderboard specs")
    parser.add_argument("--out", required=True, help="output path without suffix")
    args = parser.parse_args(argv)
    rows = sorted(entries(args.specs), key=lambda e: (e["family"], -e["valid_ndcg@10"]))
    chosen = {}
    for e in rows:
        chosen.setdefault(e["family"], e)  # rows are sorted best first within a family
    lines = ["# Tuning log", "",
             "Every configuration tried, seed 2020, each run to early stopping; the choice per family is the "
             "best validation NDCG@10 (**bold**). Test NDCG@10 is listed for the record and was not used.", "",
             f"Command: `python benchmarks/tuning_log.py {' '.join(args.specs)} --out {args.out}`", "",
             "| family | row | grid | valid NDCG@10 | test NDCG@10 | best epoch | epochs | stopped by | train CPU s |",
             "|---|---|---|---|---|---|---|---|---|"]
    for e in rows:
        mark = "**" if chosen[e["family"]] is e else ""
        grid = ", ".join(f"{k}={v}" for k, v in e["grid"].items())
        lines.append(f"| {e['family']} | {e['row']} | {grid} | {mark}{e['valid_ndcg@10']:.4f}{mark} | "
                     f"{e['test_ndcg@10']:.4f} | {e['best_epoch']} | {e['epochs']:.0f} | {e['stop_reason']} | "
                     f"{e['train_cpu_s']:.0f} |")
    out = Path(args.out)
    write_text(out.with_suffix(".md"), "\n".join(lines) + "\n")
    write_json(out.with_suffix(".json"), {"entries": rows, "chosen": {f: e["row"] for f, e in chosen.items()}})
    print(f"wrote {out.with_suffix('.md')} ({len(rows)} configurations, {len(chosen)} families)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
