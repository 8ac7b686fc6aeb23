"""What the scripts that re-evaluate finished runs share: loading a run folder's ``best.pth`` and going
over several folders, where one that cannot be read is reported and skipped and the others still count."""
import sys
from pathlib import Path
from typing import Callable, Dict, Iterable, Tuple

from recbole_qbert.errors import QBertError


def load_best(run_dir: Path):
    """RecBole's ``(config, model, dataset, train, valid, test)`` for the run folder's ``best.pth``."""
    from recbole_qbert.recommend import load_data_and_model

    best = run_dir / "best.pth"
    if not best.is_file():
        raise QBertError(f"{best}: no such checkpoint (a run folder holds best.pth)")
    return load_data_and_model(best)


def over_runs(run_dirs: Iterable[Path], evaluate: Callable[[Path], dict],
              report: Callable[[Path, dict], None]) -> Tuple[Dict[str, dict], int]:
    """``({run folder: evaluate(folder)}, number of folders that failed)``; ``report`` prints each result."""
    results, failed = {}, 0
    for run_dir in run_dirs:
        try:
            results[str(run_dir)] = evaluate(run_dir)
        except QBertError as e:
            print(f"error: {e}", file=sys.stderr, flush=True)
            failed += 1
            continue
        report(run_dir, results[str(run_dir)])
    return results, failed
