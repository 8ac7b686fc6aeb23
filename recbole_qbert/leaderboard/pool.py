"""Running a spec's (model, seed) runs, each in a child process of its own, ``jobs`` at a time; signals
are forwarded to the children by :class:`recbole_qbert.children.Children`."""
import contextlib
import subprocess
import time
from typing import List

from recbole_qbert.children import Children
from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.plan import check_rows, plan_run
from recbole_qbert.leaderboard.spec import Spec
from recbole_qbert.locks import output_lock
from recbole_qbert.safe_io import write_text


def run_all(spec: Spec, jobs: int = 1) -> None:
    """Run every (model, seed) not already recorded with the current config, ``jobs`` at a time (with
    ``jobs > 1`` each run's console output goes to ``<run dir>/console.log``).

    The output folder and each run folder are locked until the end: a second leaderboard (or a direct
    run) writing there is refused. SIGINT or SIGTERM stop the runs in flight, which resume next time. A
    row whose config cannot be built is refused first, before anything is written."""
    check_rows(spec)
    with output_lock(spec.out, what="leaderboard"), contextlib.ExitStack() as held:
        command_file = spec.out / "command.txt"
        # a selection only adds runs to the table: the command that made the table stays its reproduce line
        if not spec.is_selection or not command_file.is_file():
            write_text(command_file, spec.command + "\n")
        with Children() as children:  # stopped before the locks above are released
            _run_pairs(spec, jobs, children, held)


def _run_pairs(spec: Spec, jobs: int, children: Children, held: contextlib.ExitStack) -> None:
    pairs = [(m, s) for m in spec.run_models for s in spec.run_seeds]
    running: List[tuple] = []
    failures: List[str] = []

    def reap() -> None:
        """Wait until at least one run has finished, whichever it is (a short run ending beside a long one
        frees its slot at once), and collect every finished one."""
        while True:
            done = [entry for entry in running if entry[1].poll() is not None]
            for entry in done:
                tag, proc, run_dir = entry
                running.remove(entry)
                if proc.returncode != 0:
                    failures.append(f"{tag} failed with exit status {proc.returncode}; see {run_dir / 'run.log'}")
                elif jobs > 1:
                    print(f"{tag}: finished", flush=True)
            if done or not running:
                return
            time.sleep(0.2)

    for i, (model, seed) in enumerate(pairs, 1):
        tag = f"[{i}/{len(pairs)}] {model} seed {seed}"
        while len(running) >= jobs:
            reap()
        if failures and jobs == 1:
            break
        run_dir = spec.run_dir(model, seed)
        held.enter_context(output_lock(run_dir, what="run"))  # the run inherits it
        cmd = plan_run(spec, model, seed, tag)
        if cmd is None:
            continue
        log = held.enter_context(open(run_dir / "console.log", "w", encoding="utf-8")) if jobs > 1 else None
        running.append((tag, children.start(cmd, stdout=log, stderr=subprocess.STDOUT if log else None), run_dir))
    while running:
        reap()
    if failures:
        raise QBertError(f"{failures[0]}" + (f" (and {len(failures) - 1} more)" if len(failures) > 1 else "")
                         + "; fix it and rerun the same command to continue")
