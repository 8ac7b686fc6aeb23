"""Stage 2: quantize item features into unique semantic IDs with an RQ-VAE (thin CLI).

    python -m dataset_prep.quantize train --dataset NAME [--features TABLE.npz] [--config FILE.yaml]
                                          [--set key=value ...] [--report results/stage2/NAME.json]
                                          [--check-determinism]
    python -m dataset_prep.quantize train --dataset A --dataset B ...   # joint: one shared codebook
    python -m dataset_prep.quantize shuffle --sid build/sid/NAME/NAME.sid --out build/sid/NAME-shuffled/NAME.sid
    python -m dataset_prep.quantize assign --checkpoint build/sid/NAME/NAME.rqvae.safetensors
                                           --features NEW.npz --out NEW.sid [--base-sid build/sid/NAME/NAME.sid]

``train`` reads the settings of properties/quantize.yaml (overridden by --config files, then --set),
trains on any FeatureTable keyed by the dataset's item tokens (stage 1's fused table by default),
resolves collisions, and writes build/sid/NAME/NAME.sid (+ .sid.json, .rqvae.safetensors,
.report.json). With several ``--dataset``, one quantizer is trained on all their items and each
dataset gets its own file with the same codebook sizes (cross-domain pretraining; see
recbole_qbert/quantize/joint.py); ``--features`` then takes ``{dataset}`` in place of the name.
``assign`` gives NEW items codes from their features with the trained quantizer,
without retraining (cold start). ``shuffle`` deals a file's code tuples to its items in a random order
(the random-ID ablation: same code structure, no content behind it).
"""
import argparse
import contextlib
import json
import shlex
import sys
from pathlib import Path
from typing import List, Optional

from recbole_qbert.cli import one_line_errors
from recbole_qbert.errors import QBertError
from recbole_qbert.locks import output_lock
from recbole_qbert.safe_io import check_output
from recbole_qbert.stage_config import parse_set_options


def _set_threads(n: Optional[int]) -> None:
    if n is not None:
        import torch

        if n < 1:  # torch.set_num_threads fails with a bare RuntimeError
            raise QBertError(f"--threads {n}: expected an integer >= 1")
        torch.set_num_threads(n)


def _summary(report: dict) -> str:
    lines = [f"{report['dataset']}: {report['items']} items -> {report['outputs']['sid']}"]
    rec = report["reconstruction"]
    lines.append(f"  reconstruction: mse {rec['mse']:.4f}, relative error {rec['relative_error']:.4f}, "
                 f"cosine {rec['mean_cosine']:.4f}")
    for lv in report["levels"]:
        lines.append(f"  level {lv['level']}: {lv['used_codes']}/{lv['codebook_size']} codes used "
                     f"(utilisation {lv['utilisation']:.3f}), perplexity {lv['perplexity']:.1f}")
    before, after = report["collisions"]["before"], report["collisions"]["after"]
    lines.append(f"  collisions ({report['collisions']['strategy']}): {before['collision_rate']:.2%} of items "
                 f"shared their tuple before (largest group {before['largest_group']}), "
                 f"{after['collision_rate']:.2%} after; codebook sizes {report['collisions']['codebook_sizes_after']}")
    for length, p in report["prefixes"].items():
        lines.append(f"  prefix length {length}: {p['distinct_prefixes']} prefixes, {p['mean_items']:.2f} items "
                     f"each on average (max {p['max_items']})")
    if "determinism" in report:
        lines.append(f"  determinism: {'identical' if report['determinism']['identical'] else 'DIFFERENT'} .sid "
                     "bytes on a second run")
    lines.append(f"  time: {report['time_s']['total']:.1f} s (train {report['time_s']['train']:.1f} s)")
    return "\n".join(lines)


def _joint_summary(report: dict) -> str:
    lines = [f"joint quantization of {' + '.join(report['datasets'])}: codebook sizes {report['codebook_sizes']}"]
    for ds, r in report["per_dataset"].items():
        used = ", ".join(f"{lv['used_codes']}" for lv in r["levels"])
        lines.append(f"  {ds}: {r['items']} items -> {r['outputs']['sid']}; codes used per level {used}; "
                     f"collisions {r['collisions']['before']['collision_rate']:.2%} -> "
                     f"{r['collisions']['after']['collision_rate']:.2%}")
    for lv in report["shared_codes"]:
        lines.append(f"  level {lv['level']}: {lv['shared_by_all']} codes used by every dataset")
    lines.append(f"  time: {report['time_s']['total']:.1f} s")
    return "\n".join(lines)


def _train(args) -> None:
    from recbole_qbert.quantize.joint import joint_report_path, joint_sid_path
    from recbole_qbert.quantize.settings import load_settings
    from recbole_qbert.quantize.stage import train_outputs
    from recbole_qbert.semantic_ids import resolve_sid_path

    overrides = parse_set_options(args.set)
    if args.features:
        paths = [str(Path.cwd() / f) if "{dataset}" in f else str(Path(f).resolve()) for f in args.features]
        overrides["features"] = paths[0] if len(paths) == 1 else paths
    if len(set(args.dataset)) != len(args.dataset):  # before the locks: the second lock would be our own
        raise QBertError(f"--dataset: each dataset once, got {' '.join(args.dataset)}")
    settings = load_settings(args.config, overrides)
    _set_threads(settings["threads"])
    if len(args.dataset) > 1:
        sid_paths = [joint_sid_path(settings, args.dataset, ds) for ds in args.dataset]
        outputs = [joint_report_path(settings, args.dataset)]
    else:
        sid_paths, outputs = [resolve_sid_path(settings["sid_file"], args.dataset[0])], []
    outputs += [p for sid_path in sid_paths for p in train_outputs(sid_path).values()]
    for path in outputs + ([args.report] if args.report else []):  # now, not after training
        check_output(path)
    with contextlib.ExitStack() as locks:  # one writer per semantic-ID file (and its checkpoint and report)
        for sid_path in sid_paths:
            locks.enter_context(output_lock(sid_path, what="quantize"))
        _train_locked(args, settings)


def _train_locked(args, settings) -> None:
    from recbole_qbert.quantize.explain import examples_for_report, load_item_info
    from recbole_qbert.quantize.stage import run_train

    def examples(sid):
        return examples_for_report(sid, load_item_info(args.dataset, args.data_path))

    command = "python -m dataset_prep.quantize " + " ".join(shlex.quote(a) for a in args.argv)
    if len(args.dataset) > 1:
        from recbole_qbert.quantize.joint import run_train_joint

        if args.check_determinism:
            raise QBertError("--check-determinism is not available for a joint quantization")
        report = run_train_joint(args.dataset, settings, data_path=args.data_path, report_path=args.report,
                                 command=command, log=(lambda m: None) if args.quiet else print)
        print(_joint_summary(report))
        return
    args.dataset = args.dataset[0]
    report = run_train(args.dataset, settings, data_path=args.data_path, report_path=args.report,
                       check_determinism=args.check_determinism, examples=examples, command=command,
                       log=(lambda m: None) if args.quiet else print)
    print(_summary(report))


def _check_sid_out(out: Path, source: Optional[Path], flag: str, what: str) -> None:
    """Refuse an ``--out`` semantic-ID file that is the input ``source`` (written over before it is read
    in full) or that cannot be written, with its metadata file, before any work."""
    from recbole_qbert.semantic_ids import meta_path

    if source is not None and out.resolve() == source.resolve():
        raise QBertError(f"{out}: --out is the {flag} file; write {what} to another file")
    for path in (out, meta_path(out)):
        check_output(path)


def _shuffle(args) -> None:
    from recbole_qbert.semantic_ids import read_semantic_ids, shuffle_semantic_ids, write_semantic_ids

    if args.seed < 0:  # numpy's generators take no negative seed
        raise QBertError(f"--seed {args.seed}: expected an integer >= 0")
    _check_sid_out(args.out, args.sid, "--sid", "the shuffled IDs")
    base = read_semantic_ids(args.sid)
    shuffled = shuffle_semantic_ids(base, args.seed, source=str(args.out))
    moved = float((shuffled.codes[:, 0] != base.codes[:, 0]).mean())
    meta = {k: v for k, v in base.meta.items() if k in ("dataset", "collision_strategy", "n_quantized_levels")}
    meta.update(kind="shuffled", shuffled_from={"path": str(args.sid), "sid_sha256": base.meta["sid_sha256"]},
                seed=args.seed)
    with output_lock(args.out, what="quantize"):
        write_semantic_ids(args.out, shuffled, meta)
    print(f"wrote {args.out}: the {len(base)} code tuples of {args.sid} dealt at random (seed {args.seed}); "
          f"{moved:.1%} of items changed their first-level code")


def _assign(args) -> None:
    from recbole_qbert.quantize.stage import assign_new_items

    _set_threads(args.threads)
    _check_sid_out(args.out, args.base_sid, "--base-sid", "the new items' IDs")
    with output_lock(args.out, what="quantize"):
        report = assign_new_items(args.checkpoint, args.features, args.out, base_sid=args.base_sid,
                                  absent_items=args.absent_items)
    if args.json:
        print(json.dumps(report, indent=2))
        return
    for item in report["items"]:
        print(f"{item['item']}\t{' '.join(map(str, item['codes']))}\t"
              f"(prefix of {item['prefix_levels_shared_with_known_items']} levels shared with known items)")
    print(f"wrote {report['out']} ({len(report['items'])} items, codebook sizes {report['codebook_sizes']})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m dataset_prep.quantize", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train the RQ-VAE and write the dataset's semantic IDs")
    train.add_argument("--dataset", required=True, action="append",
                       help="dataset name (build/atomic/NAME, or ml-100k); repeat for a joint quantization")
    train.add_argument("--features", action="append", help="FeatureTable .npz to quantize; repeat to "
                       "concatenate several tables' columns (default: the features setting, else "
                       "build/fused/NAME/fused.npz)")
    train.add_argument("--config", action="append", default=[], help="YAML settings file (repeatable)")
    train.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="one setting (repeatable)")
    train.add_argument("--data-path", default=None, help="folder of converted datasets (default build/atomic)")
    train.add_argument("--report", type=Path, help="also write the report JSON here (e.g. results/stage2/NAME.json)")
    train.add_argument("--check-determinism", action="store_true",
                       help="train a second time with the same seed and record whether the codes are identical")
    train.add_argument("--quiet", action="store_true", help="no per-epoch log")
    shuffle = sub.add_parser("shuffle", help="random-ID ablation: deal a file's code tuples to its items at random")
    shuffle.add_argument("--sid", type=Path, required=True, help="semantic-ID file to shuffle")
    shuffle.add_argument("--out", type=Path, required=True, help="semantic-ID file to write")
    shuffle.add_argument("--seed", type=int, default=2020)
    assign = sub.add_parser("assign", help="codes for new items from a trained quantizer (cold start)")
    assign.add_argument("--checkpoint", type=Path, required=True, help="<name>.rqvae.safetensors from train")
    assign.add_argument("--features", type=Path, action="append", required=True,
                        help="FeatureTable .npz of the new items (repeat in the order used for training)")
    assign.add_argument("--out", type=Path, required=True, help="semantic-ID file to write for the new items")
    assign.add_argument("--base-sid", type=Path, help="the dataset's .sid made by the same checkpoint; new "
                                                      "tuples avoid its tuples")
    assign.add_argument("--absent-items", choices=("error", "zeros"), default="error")
    assign.add_argument("--threads", type=int)
    assign.add_argument("--json", action="store_true", help="print the report as JSON")
    return parser


@one_line_errors
def main(argv: List[str]) -> int:
    args = build_parser().parse_args(argv)
    args.argv = list(argv)
    {"train": _train, "shuffle": _shuffle, "assign": _assign}[args.command](args)
    return 0


if __name__ == "__main__":
    sys.exit(main())
