"""Stage 1b: fuse one dataset's feature tables into one vector per item (thin CLI over :mod:`recbole_qbert.fusion`).

    python -m dataset_prep.fuse --dataset amazon-beauty [--features build/features] [--out build/fused]
        [--config my.yaml] [--set num_layers=2 --set fixed_depth=2] [--report results/stage1/amazon-beauty.json]

Reads every table of ``<features>/<dataset>/`` (or the ``views`` of the config), trains the dynamic
cross-modal transformer with properties/fusion.yaml (layered with --config files and --set overrides),
and writes ``<out>/<dataset>/fused.npz`` (a FeatureTable, atomically) and ``<out>/<dataset>/report.json``
(loss curves, alignment accuracy per view, gate depth, co-purchase AUC, nearest neighbours, times and
peak memory, including those of the feature extraction). ``--report`` writes the report there too.
"""
import argparse
import datetime
import platform
import sys
import time
from pathlib import Path
from typing import List

from recbole_qbert.cli import one_line_errors
from recbole_qbert.stage_config import add_stage_arguments

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = REPO_ROOT / "properties" / "fusion.yaml"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.fuse", description=__doc__.split("\n")[0])
    add_stage_arguments(parser, DEFAULTS)
    parser.add_argument("--features", type=Path, default=REPO_ROOT / "build" / "features",
                        help="feature root; tables are read from <features>/<dataset>/ (default: build/features)")
    parser.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "fused",
                        help="output root; writes <out>/<dataset>/fused.npz and report.json (default: build/fused)")
    parser.add_argument("--report", type=Path, help="also write the run report (JSON) here")
    parser.add_argument("--quiet", action="store_true", help="no per-epoch lines")
    return parser


def extraction_summary(tables) -> dict:
    return {name: {k: t.meta.get(k) for k in ("modality", "encoder", "dim", "n_present", "time_s", "encode_s", "peak_rss_mb",
                                              "command", "notes", "input_hash") if k in t.meta}
            for name, t in tables.items()}


def _fuse(args, argv: List[str], cfg: dict, out: Path) -> None:
    from recbole_qbert.features.catalog import load_catalog
    from recbole_qbert.features.store import command_line, load_views
    from recbole_qbert.fusion.train import train_fusion
    from recbole_qbert.safe_io import write_json

    start = time.perf_counter()
    catalog = load_catalog(args.dataset, args.data_path)
    tables = load_views(args.features / args.dataset, catalog, cfg["views"])
    fused, report = train_fusion(catalog, tables, cfg, log=(lambda _: None) if args.quiet else print)
    command = command_line("dataset_prep.fuse", argv)
    fused.meta["command"] = command
    fused.save(out / "fused.npz")
    full = {
        "dataset": args.dataset, "stage": "1 (cross-modal fusion)",
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "machine": f"{platform.machine()}, {__import__('os').cpu_count()} CPU cores (shared with other jobs)",
        "commands": {"extraction": sorted({t.meta.get("command", "?") for t in tables.values()}),
                     "fusion": command},
        "config": cfg, "extraction": extraction_summary(tables), **report,
        "total_fusion_stage_seconds": round(time.perf_counter() - start, 1),
        "output": {"path": str(out / "fused.npz"), "content_hash": fused.content_hash(),
                   "input_hash": fused.meta["input_hash"]},
    }
    write_json(out / "report.json", full)
    if args.report:
        write_json(args.report, full)
    acc = report["alignment_accuracy"]["all_items_final_model"]
    print(f"wrote {out / 'fused.npz'} ({len(fused)} items x {fused.dim}) in {full['total_fusion_stage_seconds']} s, "
          f"peak {report['fusion_peak_rss_mb']} MiB")
    print("  alignment accuracy: " + ", ".join(f"{k} {v:.3f}" for k, v in acc.items()))
    print(f"  mean depth {report['gate']['mean_expected_depth']} (used {report['gate']['mean_used_depth']}) "
          f"of {report['gate']['max_depth']}")
    print("  co-purchase AUC (fused): " + ", ".join(f"{k} {v['auc']}" for k, v in report["auc"]["fused"].items()))


@one_line_errors
def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    from recbole_qbert.locks import output_lock
    from recbole_qbert.safe_io import check_output
    from recbole_qbert.stage_config import load_stage_config, parse_set_options

    cfg = load_stage_config(DEFAULTS, args.config, parse_set_options(args.set))
    out = args.out / args.dataset
    for path in (out / "fused.npz", out / "report.json", args.report):  # now, not after training
        if path is not None:
            check_output(path)
    with output_lock(out, what="fusion"):
        _fuse(args, argv, cfg, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
