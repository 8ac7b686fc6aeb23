"""Command-line entry points: ``run_recbole.py`` / ``qbert-run``, ``qbert-leaderboard``, ``qbert-pipeline``
and ``qbert-recommend``.

Problems with the user's input end in one line, ``error: <message>``, and exit status 2.
"""
import argparse
import functools
import signal
import sys
from typing import List, Optional

from recbole_qbert.errors import QBertError


def one_line_errors(main):
    """Wrap ``main(argv) -> int`` so that a :class:`QBertError` prints ``error: <message>`` and returns 2,
    and Ctrl-C or SIGTERM says how to resume and returns 128 + the signal number (the ``finally`` blocks
    that remove temporary files and locks run first); every command-line tool of the project uses it."""

    @functools.wraps(main)
    def wrapper(argv: Optional[List[str]] = None) -> int:
        from recbole_qbert.children import Stopped, stop_on_signals

        if argv is None:  # run as a command, not called from a test
            stop_on_signals()
        try:
            return main(sys.argv[1:] if argv is None else argv) or 0
        except QBertError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        except KeyboardInterrupt as e:
            signum = e.signum if isinstance(e, Stopped) else signal.SIGINT
            print(f"stopped by {signal.Signals(signum).name}: rerun the same command to resume", file=sys.stderr)
            return 128 + signum

    return wrapper


def _split_files(value: Optional[str]) -> List[str]:
    return value.split() if value else []


@one_line_errors
def run_main(argv: List[str]) -> int:
    """Train and test one model, RecBole-style: ``--model``, ``--dataset``, ``--config_files``,
    any ``--key=value`` config override."""
    parser = argparse.ArgumentParser(
        prog="run_recbole.py",
        description="Train and evaluate a model (ours or any RecBole model) under the leaderboard protocol.",
        epilog="Any other --key=value overrides a config key, as in RecBole (e.g. --epochs=5).")
    parser.add_argument("--model", "-m", default="SASRec", help="model name, e.g. SASRec, BERT4Rec, GRU4Rec")
    parser.add_argument("--dataset", "-d", default="ml-100k",
                        help="dataset name: ml-100k (shipped with recbole) or a converted one in data_path")
    parser.add_argument("--config_files", default=None, help="space-separated YAML files, later ones win")
    parser.add_argument("--config_file", action="append", default=[],
                        help="one YAML file, its path taken whole (spaces and all); repeatable, after --config_files")
    parser.add_argument("--checkpoint_dir", default=None,
                        help="run folder for checkpoints, log and record (default: saved/<model>-<dataset>-<time>)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --checkpoint_dir")
    parser.add_argument("--record", default=None, help="where to write the result record (JSON)")
    parser.add_argument("--nproc", type=int, default=1,
                        help="processes for distributed training (one per GPU; gloo on CPUs)")
    parser.add_argument("--list-models", action="store_true", help="print the model names and exit")
    args, rest = parser.parse_known_args(argv)

    from recbole_qbert.config import parse_overrides
    from recbole_qbert.model_registry import OWN_MODELS, recbole_model_names

    if args.list_models:
        print("\n".join(sorted(OWN_MODELS) + recbole_model_names()))
        return 0
    if args.resume and not args.checkpoint_dir:
        raise QBertError("--resume needs --checkpoint_dir, the folder of the run to continue")

    from recbole_qbert.runner import run

    config_files = _split_files(args.config_files) + args.config_file
    record = run(args.model, args.dataset, config_files, parse_overrides(rest), run_dir=args.checkpoint_dir,
                 resume=args.resume, record_path=args.record, nproc=args.nproc)
    print(f"{record['model']} on {record['dataset']} (seed {record['seed']}): best epoch {record['best_epoch']}, "
          f"test " + ", ".join(f"{k}={v:.4f}" for k, v in record["test"].items()))
    return 0


@one_line_errors
def leaderboard_main(argv: List[str]) -> int:
    """Run every (model, seed) of a leaderboard spec, resuming finished and interrupted runs, and render
    the table, CSV and plot."""
    parser = argparse.ArgumentParser(
        prog="qbert-leaderboard",
        description="Run a list of models over one dataset and several seeds under one split; "
                    "render markdown, CSV and a plot.",
        epilog="Any other --key=value overrides a config key for every run.")
    parser.add_argument("spec", help="leaderboard YAML, e.g. properties/leaderboard/ml-100k-pipeline.yaml")
    parser.add_argument("--out", default=None, help="output folder (default: results/leaderboard/<spec name>)")
    parser.add_argument("--models", default=None, help="comma-separated models to run; without --out the "
                        "table still shows every run of the spec recorded so far")
    parser.add_argument("--seeds", default=None, help="comma-separated seeds to run (as --models)")
    parser.add_argument("--render-only", action="store_true", help="only re-render from existing records")
    parser.add_argument("--jobs", type=int, default=1, help="runs at a time (set cpu_threads so that jobs x "
                        "threads fits the cores; timings then share the machine)")
    args, rest = parser.parse_known_args(argv)

    from recbole_qbert.config import parse_overrides
    from recbole_qbert.leaderboard import load_spec, render, run_all

    spec = load_spec(args.spec, out=args.out, overrides=parse_overrides(rest))
    models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
    try:
        seeds = [int(s) for s in args.seeds.split(",") if s.strip()] if args.seeds else None
        valid = not seeds or (min(seeds) >= 0 and len(set(seeds)) == len(seeds))
    except ValueError:
        valid = False
    if not valid:
        raise QBertError(f"--seeds: expected comma-separated integers >= 0, each once, got '{args.seeds}'")
    spec.select(models, seeds, separate=args.out is not None)
    if args.jobs < 1:
        raise QBertError(f"--jobs must be at least 1, got {args.jobs}")
    if not args.render_only:
        run_all(spec, jobs=args.jobs)
    paths = render(spec)
    print("\n".join(f"wrote {p}" for p in paths))
    return 0


@one_line_errors
def pipeline_main(argv: List[str]) -> int:
    """Run a benchmark end to end: stage steps whose inputs changed, then the leaderboard."""
    parser = argparse.ArgumentParser(
        prog="qbert-pipeline",
        description="Run one benchmark end to end (conversion, features, fusion, quantization, then the "
                    "leaderboard), skipping steps whose inputs, settings and code have not changed.")
    parser.add_argument("spec", help="pipeline YAML, e.g. properties/pipeline/ml-100k.yaml")
    parser.add_argument("--force", action="append", default=[], metavar="STEP", help="rerun this step (repeatable)")
    parser.add_argument("--no-leaderboard", action="store_true", help="stop after the stage steps")
    parser.add_argument("--jobs", type=int, default=1, help="leaderboard runs at a time (see qbert-leaderboard)")
    args = parser.parse_args(argv)
    if args.jobs < 1:
        raise QBertError(f"--jobs must be at least 1, got {args.jobs}")

    from recbole_qbert.pipeline import load_pipeline, run_pipeline

    report = run_pipeline(load_pipeline(args.spec), force=args.force, leaderboard=not args.no_leaderboard,
                          jobs=args.jobs)
    done = ", ".join(f"{s['step']} {'reused' if s['reused'] else str(s['seconds']) + ' s'}" for s in report["steps"])
    print(f"pipeline {report['pipeline']}: {done}; leaderboard {report['leaderboard_s']} s; "
          f"total {report['total_s']} s")
    return 0


def _tokens(value: str) -> List[str]:
    return [t.strip() for t in value.split(",") if t.strip()]


@one_line_errors
def recommend_main(argv: List[str]) -> int:
    """Top-k items from a trained run, for users of its dataset or for a typed item history."""
    parser = argparse.ArgumentParser(
        prog="qbert-recommend",
        description="Recommend the top-k items from a run folder (the --checkpoint_dir of run_recbole.py): "
                    "after each given user's whole sequence, or after a typed item history.",
        epilog="The history's own items are left out unless --keep-history. Items never seen in training are "
               "candidates too (a semantic-ID model scores them by their codes).")
    parser.add_argument("run_dir", help="run folder holding best.pth (and last.pth)")
    query = parser.add_mutually_exclusive_group(required=True)
    query.add_argument("--user", help="comma-separated user tokens of the run's dataset")
    query.add_argument("--history", help="comma-separated item tokens, oldest first")
    parser.add_argument("-k", "--topk", type=int, default=10, help="items per query (default 10)")
    parser.add_argument("--checkpoint", choices=("best", "last"), default="best",
                        help="best.pth (best validation epoch, default) or last.pth (latest epoch)")
    parser.add_argument("--keep-history", action="store_true", help="let the history's own items be recommended")
    args = parser.parse_args(argv)

    from recbole_qbert.recommend import Recommender, format_recommendation

    recommender = Recommender.from_run(args.run_dir, checkpoint=args.checkpoint)
    options = {"k": args.topk, "keep_history": args.keep_history}
    if args.history is not None:
        recommendations = [recommender.for_history(_tokens(args.history), **options)]
    else:
        users = _tokens(args.user)
        if not users:
            raise QBertError("--user: no user tokens given")
        recommendations = [recommender.for_user(user, **options) for user in users]
    print("\n\n".join(format_recommendation(r) for r in recommendations))
    return 0
