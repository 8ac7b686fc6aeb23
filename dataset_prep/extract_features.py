"""Stage 1a: item features of one converted dataset (thin CLI over :mod:`recbole_qbert.features`).

    python -m dataset_prep.extract_features all --dataset amazon-beauty
    python -m dataset_prep.extract_features text --dataset ml-100k [--set text_encoder=NAME]
    python -m dataset_prep.extract_features image --dataset NAME [--set image_model=ViT-B-32]
    python -m dataset_prep.extract_features structural --dataset amazon-sports
    python -m dataset_prep.extract_features import --dataset amazon-scientific \\
        --unisrec ../shared/data/amazon-scientific-2018-mm-subset
    python -m dataset_prep.extract_features import --dataset NAME --features F --index I --dim D --view image

Tables go to ``<out>/<dataset>/<view>.npz`` (default ``build/features``), each a FeatureTable keyed by
item token with a presence mask and metadata (encoder, dimension, config, input hash, time, peak memory).
``all`` runs text, image (when the item file names images) and structural.
"""
import argparse
import sys
import time
from pathlib import Path
from typing import List

from recbole_qbert.cli import one_line_errors
from recbole_qbert.errors import QBertError
from recbole_qbert.stage_config import add_stage_arguments

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULTS = REPO_ROOT / "properties" / "features.yaml"
MODALITIES = ("text", "image", "structural")


def _report(path, table, notes) -> None:
    print(f"  wrote {path}  ({int(table.present.sum())}/{len(table)} items present, {table.dim}-d, "
          f"{table.meta['time_s']} s, peak {table.meta['peak_rss_mb']} MiB)")
    for note in notes:
        print(f"  note: {note}")


def _text(catalog, cfg, out, progress, command):
    from recbole_qbert.features.store import write_table
    from recbole_qbert.features.text import extract_text_features

    start = time.perf_counter()
    tables, notes = extract_text_features(catalog, cfg, progress=progress)
    if not tables:
        for note in notes:
            print(f"  note: {note}")
        return
    load_share = (time.perf_counter() - start - sum(t.meta["encode_s"] for t in tables.values())) / len(tables)
    for i, table in enumerate(tables.values()):
        path = write_table(table, out, catalog, seconds=table.meta["encode_s"] + load_share, command=command,
                            notes=notes if i == 0 else ())
        _report(path, table, notes if i == 0 else ())


def _image(catalog, cfg, out, progress, explicit, command):
    from recbole_qbert.features.image import extract_image_features, image_field
    from recbole_qbert.features.store import write_table

    if not explicit and image_field(catalog, cfg["image_field"]) is None:
        print(f"  note: {catalog.name} names no images; no image features (import precomputed ones instead)")
        return
    start = time.perf_counter()
    table, notes = extract_image_features(catalog, cfg, progress=progress)
    if table is None:
        raise QBertError("; ".join(notes))
    path = write_table(table, out, catalog, seconds=time.perf_counter() - start, command=command,
                           notes=notes)
    _report(path, table, notes)


def _structural(catalog, cfg, out, command):
    from recbole_qbert.features.store import write_table
    from recbole_qbert.features.structural import attribute_features, graph_features

    for make in (lambda: graph_features(catalog, window=cfg["graph_window"], dim=cfg["graph_dim"], seed=cfg["seed"]),
                 lambda: attribute_features(catalog, fields=cfg["attribute_fields"], dim=cfg["attribute_dim"],
                                            min_count=cfg["attribute_min_count"], seed=cfg["seed"])):
        start = time.perf_counter()
        table, notes = make()
        if table is None:
            for note in notes:
                print(f"  note: {note}")
            continue
        path = write_table(table, out, catalog, seconds=time.perf_counter() - start, command=command,
                           notes=notes)
        _report(path, table, notes)


def _import(catalog, args, out, command):
    from recbole_qbert.features.image import import_raw_features, import_unisrec
    from recbole_qbert.features.store import write_table

    if args.dim is not None and args.dim < 1:
        raise QBertError(f"--dim {args.dim}: expected a feature width >= 1")
    start = time.perf_counter()
    if args.unisrec:
        tables, notes = import_unisrec(catalog, args.unisrec, dim=args.dim or 512, allow_missing=args.allow_missing,
                                       nan_as_missing=args.nan_as_missing)
    else:
        if not (args.features and args.index and args.dim and args.view):
            raise QBertError("import needs --unisrec DIR, or all of --features, --index, --dim and --view")
        if args.view.startswith(".") or "/" in args.view or "\\" in args.view:  # it names <out>/<dataset>/<view>.npz
            raise QBertError(f"--view {args.view!r}: a view name is a plain file name (no '/' or '\\', no "
                             "leading '.')")
        modality = args.modality or args.view.split("_")[0]
        if modality not in MODALITIES:
            given = f"--modality {modality}" if args.modality else f"--view {args.view}: modality {modality!r}"
            raise QBertError(f"{given}: expected one of {', '.join(MODALITIES)}"
                             + ("" if args.modality else "; pass --modality"))
        table, notes = import_raw_features(catalog, args.features, args.index, dim=args.dim, view=args.view,
                                           modality=modality, encoder=args.encoder or f"imported from {args.features}",
                                           allow_missing=args.allow_missing, nan_as_missing=args.nan_as_missing)
        tables = {args.view: table}
    elapsed = (time.perf_counter() - start) / len(tables)
    for table in tables.values():
        path = write_table(table, out, catalog, seconds=elapsed, command=command)
        _report(path, table, table.meta.get("notes", []))
    for note in notes:
        if "not found" in note:
            print(f"  note: {note}")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.extract_features",
                                     description=__doc__.split("\n")[0])
    common = argparse.ArgumentParser(add_help=False)
    add_stage_arguments(common, DEFAULTS)
    common.add_argument("--out", type=Path, default=REPO_ROOT / "build" / "features",
                        help="output root; tables go to <out>/<dataset>/ (default: build/features)")
    common.add_argument("--no-progress", dest="progress", action="store_false", help="no progress bars")
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("all", parents=[common], help="text, image (when the item file names images) and structural")
    sub.add_parser("text", parents=[common], help="text fields with a Hugging Face encoder")
    sub.add_parser("image", parents=[common], help="image files or URLs with open_clip")
    sub.add_parser("structural", parents=[common], help="co-occurrence graph and categorical attributes")
    imp = sub.add_parser("import", parents=[common], help="precomputed features (e.g. UniSRec CLIP features)")
    imp.add_argument("--unisrec", type=Path, help="UniSRec folder: imports <P>.feat3CLS (image) and <P>.feat1CLS "
                                                  "(text_clip), rows by <P>.item2index")
    imp.add_argument("--features", type=Path, help="raw float32 file or .npy of shape (rows, dim)")
    imp.add_argument("--index", type=Path, help="token<TAB>row file naming the rows")
    imp.add_argument("--dim", type=int, help="feature width (default 512 with --unisrec)")
    imp.add_argument("--view", help="table name, e.g. image")
    imp.add_argument("--modality", help="text, image or structural (default: from --view)")
    imp.add_argument("--encoder", help="what made the features, for the metadata")
    imp.add_argument("--allow-missing", action="store_true", help="dataset items without a row are marked not present")
    imp.add_argument("--nan-as-missing", action="store_true", help="rows with NaN are marked not present")
    return parser


def _extract(args, argv: List[str], cfg: dict, out: Path) -> None:
    from recbole_qbert.features.catalog import load_catalog
    from recbole_qbert.features.store import command_line

    start = time.perf_counter()
    catalog = load_catalog(args.dataset, args.data_path)
    command = command_line("dataset_prep.extract_features", argv)
    print(f"{args.dataset}: {len(catalog)} items, {len(catalog.train_sequences)} users, "
          f"{sum(len(s) for s in catalog.train_sequences)} training interactions "
          f"(read in {time.perf_counter() - start:.1f} s)")
    if args.command in ("all", "text"):
        _text(catalog, cfg, out, args.progress, command)
    if args.command in ("all", "image"):
        _image(catalog, cfg, out, args.progress, args.command == "image", command)
    if args.command in ("all", "structural"):
        _structural(catalog, cfg, out, command)
    if args.command == "import":
        _import(catalog, args, out, command)


@one_line_errors
def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    from recbole_qbert.locks import output_lock
    from recbole_qbert.safe_io import check_output
    from recbole_qbert.stage_config import load_stage_config, parse_set_options

    cfg = load_stage_config(DEFAULTS, args.config, parse_set_options(args.set))
    if cfg["threads"]:
        import torch

        torch.set_num_threads(cfg["threads"])
    out = args.out / args.dataset
    check_output(out, folder=True)  # now, not after the encoders ran
    with output_lock(out, what="feature"):
        _extract(args, argv, cfg, out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
