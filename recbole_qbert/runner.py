"""Train and evaluate one model on one dataset with RecBole's Trainer and evaluator.

This is what ``run_recbole.py`` runs. It replaces ``recbole.quick_start.run_recbole`` (which imports
``ray`` and pickles) and adds what a leaderboard needs: protocol defaults, input checks, safe and
resumable checkpoints, a time budget, and one result record per run.
"""
import datetime
import json
import logging
import re
import shutil
import socket
import time
from pathlib import Path
from typing import Dict, Optional, Sequence

from recbole_qbert.atomic_check import check_atomic_files
from recbole_qbert.config import PROJECT_ROOT, build_config, plain_config, project_path, shown_path, topk_list
from recbole_qbert.errors import QBertError
from recbole_qbert.locks import output_lock
from recbole_qbert.model_registry import is_own_model, resolve_model
from recbole_qbert.run_record import command_line, git_commit, machine_info, peak_memory_mb, run_budget
from recbole_qbert.safe_io import check_output, write_json

_ANSI = re.compile(r"\x1b\[[0-9;]*m")


class _StripColour(logging.Formatter):
    def format(self, record):
        return _ANSI.sub("", super().format(record))


def setup_logging(log_file: Optional[Path], level: str = "INFO") -> None:
    """RecBole logs to the root logger; send it to the console and to the run's log file (RecBole's own
    ``init_logger`` would write into ``./log/`` instead)."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if getattr(h, "_qbert", False)]:
        root.removeHandler(handler)
        handler.close()
    handlers = [logging.StreamHandler()]
    if log_file is not None:
        log_file.parent.mkdir(parents=True, exist_ok=True)
        handlers.append(logging.FileHandler(log_file, encoding="utf-8"))
    for handler in handlers:
        handler._qbert = True
        handler.setFormatter(_StripColour("%(asctime)s %(message)s", "%H:%M:%S"))
        root.addHandler(handler)
    root.setLevel(level)


def dataset_class(config, model_class):
    """The dataset class for ``model_class``: its own ``dataset_class`` attribute, else the one
    ``recbole.data.create_dataset`` would choose (constructed directly, because ``create_dataset``
    unpickles a cached copy when it finds one)."""
    import recbole.data.dataset as recbole_datasets
    from recbole.utils import ModelType

    own = getattr(model_class, "dataset_class", None)
    if own is not None:
        return own
    special = getattr(recbole_datasets, f"{config['model']}Dataset", None)
    if special is not None:
        return special
    by_type = {ModelType.SEQUENTIAL: "SequentialDataset", ModelType.KNOWLEDGE: "KnowledgeBasedDataset"}
    return getattr(recbole_datasets, by_type.get(config["MODEL_TYPE"], "Dataset"))


def build_dataset(config, model_class):
    """Check the atomic files and load the dataset ``model_class`` reads (not yet split)."""
    check_atomic_files(config)
    try:
        return dataset_class(config, model_class)(config)
    except QBertError:
        raise
    except Exception as e:  # RecBole's loader fails with KeyError/ValueError deep in pandas
        raise QBertError(f"dataset '{config['dataset']}' in {config['data_path']}: RecBole could not load "
                         f"it ({type(e).__name__}: {e})") from e


def load_data(config, model_class):
    """Check the atomic files, build the dataset and RecBole's train/valid/test loaders.

    Returns ``(statistics, train, valid, test)``; the statistics are taken before RecBole's split,
    which rewrites the dataset's interaction table."""
    from recbole.data import data_preparation
    from recbole.utils import ModelType

    dataset = build_dataset(config, model_class)
    logging.getLogger().info(str(dataset))
    stats = {"users": dataset.user_num - 1, "items": dataset.item_num - 1,  # minus RecBole's padding id
             "interactions": dataset.inter_num}
    where = f"dataset '{config['dataset']}' in {config['data_path']}"
    if config["eval_args"]["order"] == "TO" and dataset.time_field not in dataset.inter_feat:
        raise QBertError(f"{where}: the protocol splits each user's interactions in time order (eval_args "
                         f"order TO), but load_col does not load the time field '{dataset.time_field}'; add it "
                         "to load_col inter")
    topk = max(topk_list(config))
    if topk > stats["items"]:  # torch.topk over the full ranking would fail after the first epoch
        raise QBertError(f"{where}: has {stats['items']} items, fewer than the top {topk} the metrics rank "
                         "(topk); lower topk")
    try:
        train, valid, test = data_preparation(config, dataset)
    except Exception as e:  # RecBole checks the split arguments only here, with ValueError/KeyError
        raise QBertError(f"{where}: RecBole could not split it ({type(e).__name__}: {e})") from e
    for name, part in (("validation", valid), ("test", test)):
        if not part._dataset.inter_num:  # RecBole would train, then evaluate nothing and return None
            # a sequential model's samples are (history, next item) pairs: the first item is no target
            needed = 4 if model_class.type == ModelType.SEQUENTIAL else 3
            raise QBertError(f"{where}: the split leaves no {name} interactions ({stats['users']} users, "
                             f"{stats['interactions']} interactions); leave-one-out needs users with at least "
                             f"{needed} interactions for a {model_class.type.name.lower()} model")
    stats["train_samples"] = train._dataset.inter_num
    return stats, train, valid, test


def read_subset_items(config, dataset):
    """``(path, tokens)`` of ``config['test_subset_items']``, every token an item of ``dataset``; read
    before training, so that a bad file fails before the run spends anything."""
    from recbole_qbert.data.cold_start import read_item_list

    path = project_path(config["test_subset_items"], cwd_first=True)  # as run_record.run_inputs hashes it
    tokens = read_item_list(path)
    known = set(dataset.field2token_id[dataset.iid_field])
    unknown = [t for t in tokens if t not in known]
    if unknown:
        raise QBertError(f"{path}: {len(unknown)} items are not in dataset '{config['dataset']}' (e.g. {unknown[0]})")
    return path, tokens


def evaluate_subset(config, trainer, test, path, tokens) -> dict:
    """Test metrics over the test events whose target is one of ``tokens`` (read from ``path``), by
    RecBole's full-ranking evaluator on a copy of the test set holding only those events."""
    import torch
    from recbole.data.dataloader import FullSortEvalDataLoader

    dataset = test._dataset
    field = dataset.iid_field
    ids = torch.as_tensor(dataset.token2id(field, tokens))
    rows = torch.isin(dataset.inter_feat[field], ids)
    if not rows.any():
        return {"items_file": shown_path(path), "items": len(tokens), "events": 0, "metrics": {}}
    loader = FullSortEvalDataLoader(config, dataset.copy(dataset.inter_feat[rows]), test._sampler, shuffle=False)
    result = trainer.evaluate(loader, load_best_model=False, show_progress=False)
    return {"items_file": shown_path(path), "items": len(tokens), "events": int(rows.sum()),
            "metrics": {k: float(v) for k, v in result.items()}}


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def init_distributed(config, rank: int, world_size: int) -> None:
    """Join the process group and set the keys RecBole's dataloaders and trainer read in distributed
    mode. RecBole's own set-up hard-codes NCCL and CUDA; this one uses gloo on CPUs."""
    import torch

    on_gpu = torch.cuda.is_available() and config["use_gpu"]
    torch.distributed.init_process_group(
        backend="nccl" if on_gpu else "gloo", rank=rank + (config["offset"] or 0), world_size=world_size,
        init_method=f"tcp://{config['ip'] or '127.0.0.1'}:{config['port']}")
    config["single_spec"] = False
    config["local_rank"] = rank
    config["world_size"] = world_size
    config["device"] = torch.device("cuda", rank) if on_gpu else torch.device("cpu")
    if on_gpu:
        torch.cuda.set_device(rank)
    if rank != 0:
        config["state"] = "ERROR"
        config["show_progress"] = False


def default_run_dir(model: str, dataset: str) -> Path:
    stamp = datetime.datetime.now().strftime("%Y%m%d-%H%M%S")
    return PROJECT_ROOT / "saved" / f"{model}-{dataset}-{stamp}"


def run(model: str, dataset: str, config_files: Sequence = (), overrides: Optional[Dict] = None, *,
        run_dir=None, resume: bool = False, record_path=None, nproc: int = 1) -> dict:
    """Train ``model`` on ``dataset``, test the best validation epoch, and return the result record.

    ``run_dir`` is locked while the run works in it (a second writer is refused) and receives
    ``best.pth``, ``last.pth``, ``run.log`` and (unless ``record_path`` says otherwise) ``record.json``.
    With ``resume``, training continues from ``run_dir/last.pth``; without it, a ``run_dir`` that
    holds a ``last.pth`` is refused rather than overwritten. With ``nproc > 1``, that many
    processes train together through torch.distributed (NCCL on GPUs, gloo on CPUs), each on its share
    of every batch, as RecBole's own distributed training does.
    """
    run_dir = Path(run_dir) if run_dir else default_run_dir(model, dataset)
    check_output(run_dir, folder=True)
    if nproc < 1:
        raise QBertError(f"nproc must be at least 1, got {nproc}")
    with output_lock(run_dir, what="run"):
        fresh = not run_dir.exists()
        try:
            return _run_locked(model, dataset, config_files, overrides, run_dir, resume, record_path, nproc)
        except QBertError:
            # a run refused before it trained leaves no folder holding only its log
            if fresh and run_dir.is_dir() and {p.name for p in run_dir.iterdir()} <= {"run.log"}:
                shutil.rmtree(run_dir)
            raise


def _run_locked(model, dataset, config_files, overrides, run_dir: Path, resume: bool, record_path, nproc: int):
    import torch

    record_path = Path(record_path) if record_path else run_dir / "record.json"
    check_output(record_path)  # now, not when the record is written after training
    last = run_dir / "last.pth"
    if resume and not last.is_file():
        raise QBertError(f"{last}: nothing to resume from")
    # a fresh start would overwrite the checkpoints of the run this folder holds
    if not resume and last.is_file():
        raise QBertError(f"{last} exists: pass --resume to continue it, or choose another --checkpoint_dir")
    overrides = {**(overrides or {}), "checkpoint_dir": str(run_dir)}
    if nproc <= 1:
        return _run(model, dataset, config_files, overrides, run_dir, resume, record_path)
    # a bad config or model name fails here, in one line, before any process starts
    build_config(resolve_model(model), dataset, config_files, overrides, own_model=is_own_model(model))
    overrides.update(nproc=nproc, world_size=nproc, port=free_port())
    try:
        torch.multiprocessing.spawn(_run_rank, nprocs=nproc, join=True, args=(
            model, dataset, config_files, overrides, run_dir, resume, record_path))
    except torch.multiprocessing.ProcessRaisedException as e:
        raise QBertError(f"distributed run failed: {str(e).strip().splitlines()[-1]}") from None
    return json.loads(record_path.read_text(encoding="utf-8"))


def _run_rank(rank, *args):
    _run(*args, rank=rank)


def _run(model, dataset, config_files, overrides, run_dir: Path, resume: bool, record_path: Path,
         rank: Optional[int] = None) -> dict:
    import torch
    from recbole.utils import init_seed

    from recbole_qbert.trainer import make_trainer

    model_class = resolve_model(model)
    config = build_config(model_class, dataset, config_files, overrides, own_model=is_own_model(model))
    if rank is not None:
        init_distributed(config, rank, config["world_size"])
    setup_logging(run_dir / "run.log" if not rank else None, config["state"] or "INFO")
    log = logging.getLogger()
    started = datetime.datetime.now().isoformat(timespec="seconds")

    if config["cpu_threads"]:
        torch.set_num_threads(int(config["cpu_threads"]))
    init_seed(config["seed"], config["reproducibility"])
    stats, train, valid, test = load_data(config, model_class)
    subset_items = read_subset_items(config, test._dataset) if config["test_subset_items"] else None
    init_seed(config["seed"] + config["local_rank"], config["reproducibility"])
    net = model_class(config, train._dataset).to(config["device"])
    trainer = make_trainer(config, net)
    if resume:
        trainer.resume_checkpoint()

    trainer.fit(train, valid, saved=True, show_progress=config["show_progress"])
    start, cpu_start = time.perf_counter(), time.process_time()
    test_result = trainer.evaluate(test, load_best_model=True, show_progress=config["show_progress"])
    eval_s, eval_cpu_s = time.perf_counter() - start, time.process_time() - cpu_start

    subset = evaluate_subset(config, trainer, test, *subset_items) if subset_items else None

    history = trainer.history
    trained = [h for h in history if "train_s" in h]
    evaluated = [h for h in history if "valid_s" in h]
    # an epoch the time budget cut short counts for the share of its batches it trained on
    epochs = sum(h["partial"]["batches"] / h["partial"]["of"] if "partial" in h else 1.0 for h in trained)
    record = {
        "model": model,
        "dataset": dataset,
        "seed": config["seed"],
        "config_hash": config.run_hash,
        "budget": run_budget(config),
        "valid": {k: float(v) for k, v in (trainer.best_valid_result or {}).items()},
        "test": {k: float(v) for k, v in test_result.items()},
        "test_subset": subset,
        "best_epoch": trainer.best_epoch,
        "epochs_trained": round(epochs, 3),
        "stop_reason": trainer.stop_reason,
        "train_s": round(trainer.train_seconds, 2),
        "train_cpu_s": round(trainer.train_cpu_seconds, 2),
        "train_s_per_epoch": round(trainer.train_seconds / max(epochs, 1e-9), 2) if trained else 0.0,
        "train_cpu_s_per_epoch": round(sum(h["train_cpu_s"] for h in trained) / max(epochs, 1e-9), 2) if trained else 0.0,
        "valid_s_per_epoch": round(sum(h["valid_s"] for h in evaluated) / max(len(evaluated), 1), 2),
        "eval_s": round(eval_s, 2),
        "eval_cpu_s": round(eval_cpu_s, 2),
        "peak_memory": peak_memory_mb(),
        "data": stats,
        "inputs": trainer.inputs,  # hashed once, when the trainer was built
        "history": history,
        "machine": machine_info(),
        "git_commit": git_commit(),
        "command": command_line(),
        "started": started,
        "finished": datetime.datetime.now().isoformat(timespec="seconds"),
        "config": plain_config(config),
    }
    if rank is not None:
        record["distributed"] = {"world_size": config["world_size"],
                                 "backend": torch.distributed.get_backend()}
        torch.distributed.destroy_process_group()
    if not rank:
        write_json(record_path, record)
    log.info(f"test: {record['test']}")
    del trainer, net
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    return record
