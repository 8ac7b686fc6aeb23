"""From run records to table rows: read the records, check that the seeds of a row were made from the
same config and input files, and average over seeds."""
import statistics
from pathlib import Path
from typing import Dict, List, Optional

from recbole_qbert.errors import QBertError
from recbole_qbert.leaderboard.spec import Spec

METRICS = [f"{m}@{k}" for m in ("recall", "ndcg", "mrr") for k in (5, 10, 20)]
SUBSET_METRICS = ["subset ndcg@10", "subset recall@10"]  # test events whose target is in test_subset_items
# per-run figures averaged over seeds (seconds: wall, and CPU where other jobs share the machine)
COST_KEYS = ("best_epoch", "epochs_trained", "train_s_per_epoch", "train_cpu_s_per_epoch", "eval_s", "eval_cpu_s")


def read_record(path: Path, *, tables: bool = False) -> Optional[dict]:
    """The run record at ``path``, None when there is none; a damaged one is a one-line error, and so is
    (``tables``) one missing a figure the leaderboard's tables show (the benchmark scripts read fewer)."""
    import json

    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as e:
        raise QBertError(f"{path}: damaged run record ({type(e).__name__}); delete it and rerun without "
                         "--render-only to redo that run") from None
    if not isinstance(record, dict) or not isinstance(record.get("test"), dict):
        raise QBertError(f"{path}: not a run record; delete it and rerun without --render-only to redo that run")
    problem = _table_problem(record) if tables else None
    if problem:
        raise QBertError(f"{path}: not a run record ({problem}); delete it and rerun without --render-only to "
                         "redo that run")
    return record


def _table_problem(record: dict) -> Optional[str]:
    """What the tables would fail on in ``record`` (a figure missing or not a number), or None."""
    def number(value) -> bool:
        return isinstance(value, (int, float)) and not isinstance(value, bool)

    test, valid, memory = (record.get(k) for k in ("test", "valid", "peak_memory"))
    if not isinstance(valid, dict) or not isinstance(memory, dict):
        return "'valid' and 'peak_memory' must be mappings"
    figures = {**{f"test {m}": test.get(m) for m in METRICS}, "peak_memory rss_mb": memory.get("rss_mb"),
               # a run stopped before its first evaluation has no valid metrics; older records lack some costs
               **({"valid ndcg@10": valid["ndcg@10"]} if "ndcg@10" in valid else {}),
               **{k: record[k] for k in COST_KEYS if record.get(k) is not None}}
    for what, value in figures.items():
        if not number(value):
            return f"{what} is {'missing' if value is None else repr(value) + ', not a number'}"
    if not isinstance(record.get("seed"), int):
        return f"seed is {record.get('seed')!r}, not an integer"
    if not isinstance(record.get("stop_reason"), (str, type(None))):
        return f"stop_reason is {record['stop_reason']!r}, not a string"
    return None


def collect(spec: Spec, *, tables: bool = False) -> Dict[str, List[dict]]:
    """The records of the spec's runs that exist, by model, in spec order (``tables``: each checked for
    the figures the tables show)."""
    by_model = {}
    for model in spec.models:
        records = [r for r in (read_record(spec.record_path(model, s), tables=tables) for s in spec.seeds) if r]
        if records:
            _check_same_inputs(spec, model, records)
            by_model[model] = records
    return by_model


def _check_same_inputs(spec: Spec, model: str, records: List[dict]) -> None:
    """Seeds of one row are averaged only when they trained the same config on the same files."""
    first = records[0]
    for r in records[1:]:
        for key in ("config_hash", "inputs"):
            if r.get(key) == first.get(key) or (key == "config_hash" and _same_config(first, r)):
                continue
            if key == "inputs":
                a, b = first.get(key) or {}, r.get(key) or {}
                what = "input files " + ", ".join(sorted(k for k in set(a) | set(b) if a.get(k) != b.get(k)))
            else:
                what = "configs"
            raise QBertError(f"{spec.out / 'records'}: {model} seeds {first['seed']} and {r['seed']} were made "
                             f"from different {what}; rerun without --render-only so the stale runs are redone")


def _same_config(a: dict, b: dict) -> bool:
    """The two records' stored configs hash alike by today's rules, a key one of them predates read as
    unset (None): seeds run before a change in what the hash covers still trained the same model."""
    from recbole_qbert.config import plain_config_hash

    configs = a.get("config"), b.get("config")
    if not all(isinstance(c, dict) for c in configs):
        return False
    set_a, set_b = ({k: v for k, v in c.items() if v is not None} for c in configs)
    return plain_config_hash(set_a) == plain_config_hash(set_b)


def _mean_std(values: List[float]):
    mean = statistics.fmean(values)
    std = statistics.stdev(values) if len(values) > 1 else float("nan")
    return mean, std


def summarise(by_model: Dict[str, List[dict]]) -> List[dict]:
    rows = []
    for model, records in by_model.items():
        row = {"model": model, "runs": len(records), "seeds": [r["seed"] for r in records]}
        for metric in METRICS:
            row[metric] = _mean_std([r["test"][metric] for r in records])
        row["valid ndcg@10"] = _mean_std([r["valid"].get("ndcg@10", float("nan")) for r in records])
        subsets = [(r.get("test_subset") or {}).get("metrics") or {} for r in records]
        if all(subsets):
            for metric in SUBSET_METRICS:
                row[metric] = _mean_std([m[metric.split(" ")[1]] for m in subsets])
        for key in COST_KEYS:
            row[key] = statistics.fmean(float(r[key] if r.get(key) is not None else "nan") for r in records)
        row["peak_rss_mb"] = max(r["peak_memory"]["rss_mb"] for r in records)
        row["stop"] = ", ".join(sorted({r["stop_reason"] or "?" for r in records}))
        rows.append(row)
    return rows


def view(stop: str) -> str:
    """What a row or run stopped by ``stop`` can show: ``"converged"`` (early stopping on validation) or
    ``"efficiency"`` (a time or epoch cap: what a model reaches within it, not which model is better)."""
    return "converged" if stop == "early_stopping" else "efficiency"


def converged(row: dict) -> bool:
    """Every run of the row ended by early stopping on validation (not by a time or epoch cap)."""
    return view(row["stop"]) == "converged"


def stop_label(row: dict) -> str:
    """What stopped the row, as its table cell and plot label show it: ``'early_stopping'``, or for a row cut
    short by a cap ``'budget (efficiency view)'``, so the row itself says it is no verdict, not only a note below."""
    return row["stop"] if converged(row) else f"{row['stop']} (efficiency view)"


def seen(row: dict) -> str:
    """What the row's runs saw, e.g. ``'41.3 epochs, early_stopping'`` or ``'0.2 epochs, budget (efficiency view)'``."""
    return f"{row['epochs_trained']:.1f} epochs, {stop_label(row)}"
