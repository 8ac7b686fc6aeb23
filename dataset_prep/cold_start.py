"""Make a cold-start variant of a converted dataset (thin CLI over :mod:`recbole_qbert.data.cold_start`).

    python -m dataset_prep.cold_start --dataset amazon-scientific [--share 0.1] [--seed 2020]

Writes build/atomic/<dataset>-cold/ (the held-out items' training interactions removed, their list in
cold_items.txt, statistics in <name>.cold.json).
"""
import argparse
import json
import sys
from pathlib import Path
from typing import List

from recbole_qbert.cli import one_line_errors

REPO_ROOT = Path(__file__).resolve().parents[1]


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.cold_start", description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", required=True, help="converted dataset under --data-path")
    parser.add_argument("--data-path", type=Path, default=REPO_ROOT / "build" / "atomic")
    parser.add_argument("--name", help="output dataset name (default: <dataset>-cold)")
    parser.add_argument("--share", type=float, default=0.1, help="share of the items to hold out (default 0.1)")
    parser.add_argument("--seed", type=int, default=2020)
    return parser


@one_line_errors
def main(argv: List[str]) -> int:
    from recbole_qbert.data.cold_start import make_cold_split

    args = build_parser().parse_args(argv)
    name = args.name or f"{args.dataset}-cold"
    stats = make_cold_split(args.data_path / args.dataset, args.data_path, name, share=args.share, seed=args.seed)
    print(json.dumps(stats, indent=2))
    print(f"wrote {args.data_path / name}/")
    return 0


if __name__ == "__main__":
    sys.exit(main())
