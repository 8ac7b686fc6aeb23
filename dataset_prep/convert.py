"""Convert raw Amazon review data into RecBole atomic files (thin CLI over :mod:`recbole_qbert.convert`).

    python -m dataset_prep.convert shared [--data ../shared/data] [--out build/atomic]
    python -m dataset_prep.convert s3rec --src DIR --name NAME [--item-file Amazon_Beauty.item]
    python -m dataset_prep.convert unisrec --src DIR --name NAME
    python -m dataset_prep.convert mcauley --reviews R.json[.gz] --meta M.json[.gz] --name NAME [--kcore 5]

Each dataset goes to ``<out>/<name>/`` and its statistics are printed with the published figures;
a known name (amazon-beauty, amazon-sports, amazon-scientific) whose statistics differ is an error
and writes nothing, unless ``--no-check``.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import Callable, List

from recbole_qbert.convert.atomic_writer import write_dataset
from recbole_qbert.convert.dataset import ConvertedDataset
from recbole_qbert.convert.mcauley import convert_mcauley
from recbole_qbert.convert.s3rec import convert_s3rec
from recbole_qbert.convert.shared import SHARED_DATASETS
from recbole_qbert.convert.stats import format_stats
from recbole_qbert.convert.unisrec import convert_unisrec
from recbole_qbert.cli import one_line_errors
from recbole_qbert.locks import output_lock

REPO_ROOT = Path(__file__).resolve().parents[1]


def _convert_and_write(convert: Callable[[], ConvertedDataset], out: Path, name: str, check: bool) -> None:
    start = time.perf_counter()
    with output_lock(out / name, what="conversion"):
        ds = convert()
        meta = write_dataset(ds, out, check=check)
    print(format_stats(ds.name, meta["statistics"], meta["published"]))
    for key, value in ds.notes.items():
        print(f"  {key}: {value}")
    print(f"  wrote {out / ds.name}/ in {time.perf_counter() - start:.1f} s")


def _run(args: argparse.Namespace) -> None:
    if args.command == "shared":
        for spec in SHARED_DATASETS:
            src = args.data / spec.folder
            _convert_and_write(lambda: spec.convert(src, spec.name), args.out, spec.name, args.check)
    elif args.command == "s3rec":
        _convert_and_write(lambda: convert_s3rec(args.src, args.name, args.item_file), args.out, args.name,
                           args.check)
    elif args.command == "unisrec":
        _convert_and_write(lambda: convert_unisrec(args.src, args.name), args.out, args.name, args.check)
    elif args.command == "mcauley":
        _convert_and_write(lambda: convert_mcauley(args.reviews, args.meta, args.name, args.kcore,
                                                   args.skip_malformed), args.out, args.name, args.check)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.convert", description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "atomic",
                        help="output root; each dataset goes to <out>/<name>/ (default: build/atomic)")
    common.add_argument("--no-check", dest="check", action="store_false",
                        help="report, but do not enforce, the published statistics of a known name")
    named = argparse.ArgumentParser(add_help=False, parents=[common])
    named.add_argument("--name", required=True, help="dataset name (output folder and file stem)")
    sub = parser.add_subparsers(dest="command", required=True)

    shared = sub.add_parser("shared", parents=[common], help="convert the four shared Amazon datasets")
    shared.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data",
                        help="shared data folder (default: ../shared/data from the repository root)")

    s3rec = sub.add_parser("s3rec", parents=[named], help="S3Rec folder (<P>.txt, datamaps.json, "
                                                         "<P>_item2attributes.json) or P5 folder "
                                                         "(sequential_data.txt, datamaps.json)")
    s3rec.add_argument("--src", type=Path, required=True)
    s3rec.add_argument("--item-file", help="RecBole item file keyed by ASIN (relative to --src) for "
                                           "title, categories, brand, sales rank, price")

    unisrec = sub.add_parser("unisrec", parents=[named], help="UniSRec folder: <P>.{train,valid,test}.inter, "
                                                             "<P>.item2index, <P>.user2index, <P>.text")
    unisrec.add_argument("--src", type=Path, required=True)

    mcauley = sub.add_parser("mcauley", parents=[named], help="McAuley review + metadata JSON lines "
                                                             "(2014 or 2018, optionally gzipped)")
    mcauley.add_argument("--reviews", type=Path, required=True)
    mcauley.add_argument("--meta", type=Path, required=True)
    mcauley.add_argument("--kcore", type=int, default=5, help="minimum interactions per user and item")
    mcauley.add_argument("--skip-malformed", action="store_true",
                         help="skip and count malformed lines instead of stopping at the first")
    return parser


@one_line_errors
def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    _run(args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
