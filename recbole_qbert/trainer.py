"""RecBole trainers with safe checkpoints, resumable runs, budgets and per-epoch timing.

RecBole 1.2.1 pickles its whole ``Config`` into checkpoints and reloads them with ``torch.load``, which
torch >= 2.6 refuses by default and which would execute code from an untrusted file. The mixin here
stores tensors and plain values only (the config as YAML text) and loads with ``weights_only=True``:

* ``best.pth``: the model at the best validation epoch (what the test is evaluated on);
* ``last.pth``: the model, optimizer and trainer state after the latest evaluated epoch, from which an
  interrupted run resumes.

It wraps whichever trainer RecBole picks for a model (:func:`make_trainer`), so RecBole's built-in
models get the same behaviour as ours.
"""
import random
import time
from pathlib import Path

import numpy as np
import torch
import yaml
from recbole.utils import get_trainer

from recbole_qbert.config import plain_config
from recbole_qbert.errors import QBertError
from recbole_qbert.run_record import run_inputs
from recbole_qbert.safe_io import atomic_path

# 2: last.pth holds every random state (torch, numpy, Python, the loader's shuffling) and models' extra state
CHECKPOINT_FORMAT = 2


class BudgetExhausted(Exception):
    """Raised after an epoch once the run's wall-clock training budget is spent."""


def save_checkpoint(state: dict, path) -> None:
    """``torch.save`` through a temporary file, so a crash never leaves half a checkpoint."""
    with atomic_path(path) as tmp:
        torch.save(state, tmp)


def load_checkpoint(path, map_location="cpu") -> dict:
    """Load a checkpoint written by :func:`save_checkpoint`; never unpickles arbitrary objects."""
    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as e:  # torch raises UnpicklingError, RuntimeError or EOFError depending on damage
        raise QBertError(f"{path}: not a readable recbole-qbert checkpoint ({type(e).__name__}): damaged (e.g. cut "
                         "short by a kill or a full disk) or not written by this package; delete it to start this "
                         "run over") from None
    if isinstance(state, dict) and isinstance(state.get("format"), int) and state["format"] < CHECKPOINT_FORMAT:
        raise QBertError(f"{path}: checkpoint of an older recbole-qbert (format {state['format']}, this one "
                         f"reads {CHECKPOINT_FORMAT}); rerun into a fresh checkpoint_dir")
    if not isinstance(state, dict) or state.get("format") != CHECKPOINT_FORMAT:
        raise QBertError(f"{path}: not a recbole-qbert checkpoint (RecBole's own pickled checkpoints "
                         "are not loaded, since unpickling can run code)")
    return state


def rng_states(loader=None) -> dict:
    """Every random state a training epoch draws from, as tensors and plain values (checkpoints are
    loaded with ``weights_only``): torch's, numpy's, Python's and the shuffling of RecBole's ``loader``."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss = random.getstate()
    states = {"torch": torch.get_rng_state(),
              "numpy": {"kind": kind, "keys": torch.from_numpy(keys.astype(np.int64)), "pos": int(pos),
                        "has_gauss": int(has_gauss), "cached": float(cached)},
              "python": {"version": version, "state": list(py_state), "gauss": gauss}}
    if torch.cuda.is_available():
        states["cuda"] = torch.cuda.get_rng_state_all()
    if loader is not None and getattr(loader, "generator", None) is not None:
        states["loader"] = loader.generator.get_state()
    return states


def set_rng_states(states: dict, loader=None) -> None:
    """Restore what :func:`rng_states` saved."""
    torch.set_rng_state(states["torch"])
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(states["cuda"])
    if "loader" in states and loader is not None and getattr(loader, "generator", None) is not None:
        loader.generator.set_state(states["loader"])


class SafeTrainerMixin:
    """Checkpointing, resume, budget and timing on top of a RecBole trainer class."""

    def __init__(self, config, model):
        distributed = not config["single_spec"]
        # RecBole wraps the model in DistributedDataParallel(device_ids=[rank]), which a CPU module
        # refuses; build the trainer as single-process and wrap the model here for either device.
        config["single_spec"] = True
        try:
            super().__init__(config, model)
        finally:
            config["single_spec"] = not distributed
        if distributed:
            from torch.nn.parallel import DistributedDataParallel

            on_gpu = torch.device(config["device"]).type == "cuda"
            self.distributed_model = DistributedDataParallel(
                self.model, device_ids=[config["local_rank"]] if on_gpu else None)
        run_dir = Path(config["checkpoint_dir"])
        self.saved_model_file = str(run_dir / "best.pth")
        self.last_checkpoint_file = run_dir / "last.pth"
        self.train_budget_s = config["train_budget_s"]
        self.budget_clock = config["train_budget_clock"] or "wall"
        if self.budget_clock not in CLOCKS:
            raise QBertError(f"train_budget_clock must be one of {sorted(CLOCKS)}, got {self.budget_clock!r}")
        self.config_hash = config.run_hash
        self.inputs = run_inputs(config)
        self.history = []  # one dict per epoch: loss, seconds, validation metrics
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.best_epoch = None
        self.stop_reason = None
        self._train_loader = None  # its shuffling state goes into last.pth
        self._pending_rng = None  # random states of a resumed run, restored when training starts

    # -- what a checkpoint holds --------------------------------------------------------------
    def _meta(self) -> dict:
        return {
            "format": CHECKPOINT_FORMAT,
            "model": self.config["model"],
            "dataset": self.config["dataset"],
            "config_hash": self.config_hash,
            "inputs": self.inputs,
            "config_yaml": yaml.safe_dump(plain_config(self.config), sort_keys=True),
        }

    def _check_meta(self, state: dict, path) -> None:
        for key in ("model", "dataset", "config_hash"):
            mine = self.config_hash if key == "config_hash" else self.config[key]
            if state.get(key) != mine:
                raise QBertError(f"{path}: checkpoint was made for {key} {state.get(key)!r}, this run has "
                                 f"{mine!r}; use a fresh checkpoint_dir or the original config")
        if state.get("inputs") != self.inputs:
            raise QBertError(f"{path}: the dataset or semantic-ID files changed since this checkpoint was made; "
                             "use a fresh checkpoint_dir")

    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """Best model so far. RecBole calls this with ``epoch=-1`` when there is nothing left to train;
        the best model of a resumed run must then stay as it is."""
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = Path(kwargs.pop("saved_model_file", self.saved_model_file))
        if epoch < 0 and path.is_file():
            return
        save_checkpoint({**self._meta(), "epoch": epoch, "state_dict": self.model.state_dict(),
                         "other_parameter": self.model.other_parameter()}, path)
        if verbose:
            self.logger.info(f"Saved best model: {path}")

    def _save_last(self, epoch: int) -> None:
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        save_checkpoint({
            **self._meta(),
            "epoch": epoch,
            "cur_step": self.cur_step,
            "best_valid_score": float(self.best_valid_score),
            "best_valid_result": {k: float(v) for k, v in (self.best_valid_result or {}).items()},
            "best_epoch": -1 if self.best_epoch is None else self.best_epoch,
            "history": self.history,
            "train_seconds": self.train_seconds,
            "stop_reason": self.stop_reason or "",
            "state_dict": self.model.state_dict(),
            "other_parameter": self.model.other_parameter(),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_states(self._train_loader),
        }, self.last_checkpoint_file)

    def resume_checkpoint(self, resume_file=None):
        """Continue from ``last.pth`` (or ``resume_file``): model, optimizer, early-stopping state and
        history. A run that stopped early, or whose time budget is spent, trains no further; one that
        ran out of epochs continues if ``epochs`` is now larger."""
        path = Path(resume_file or self.last_checkpoint_file)
        state = load_checkpoint(path, map_location=self.device)
        self._check_meta(state, path)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.optimizer.load_state_dict(state["optimizer"])
        self._pending_rng = state["rng"]
        self.cur_step = state["cur_step"]
        self.best_valid_score = state["best_valid_score"]
        self.best_valid_result = state["best_valid_result"] or None
        self.best_epoch = None if state["best_epoch"] < 0 else state["best_epoch"]
        self.history = list(state["history"])
        self.train_seconds = state["train_seconds"]
        self.train_cpu_seconds = sum(h.get("train_cpu_s", 0.0) for h in self.history)
        self.stop_reason = state["stop_reason"] or None
        spent = self.train_budget_s is not None and self._spent() >= float(self.train_budget_s)
        done = self.stop_reason == "early_stopping" or spent
        self.start_epoch = self.epochs if done else state["epoch"] + 1
        self.logger.info(f"Resumed from {path} at epoch {self.start_epoch}")

    def load_best(self, model_file=None) -> None:
        if not self.config["single_spec"]:
            torch.distributed.barrier()  # rank 0 may still be writing best.pth
        path = Path(model_file or self.saved_model_file)
        state = load_checkpoint(path, map_location=self.device)
        self._check_meta(state, path)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(state.get("other_parameter"))
        self.logger.info(f"Loaded model of epoch {state['epoch']} from {path}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            self.load_best(model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)

    # -- timing and budget --------------------------------------------------------------------
    def _progress(self, epoch_idx: int) -> float:
        """Share of the run spent before ``epoch_idx``: by epochs or by time budget, whichever is further."""
        share = epoch_idx / max(self.epochs, 1)
        if self.train_budget_s:
            share = max(share, self._spent() / float(self.train_budget_s))
        return share

    def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
        self._train_loader = train_data
        if self._pending_rng is not None:
            set_rng_states(self._pending_rng, train_data)
            self._pending_rng = None
        hook = getattr(self.model, "on_training_progress", None)
        if hook is not None:
            hook(self._progress(epoch_idx))
        start, cpu_start = time.perf_counter(), time.process_time()
        batches = train_data
        if self.train_budget_s is not None and self.config["single_spec"]:
            # a slow model must not overrun the budget by most of an epoch; distributed runs keep the
            # per-epoch check, since ranks stopping at different batches would deadlock the all-reduce
            clock = CLOCKS[self.budget_clock]
            batches = BudgetedBatches(train_data, clock() + float(self.train_budget_s) - self._spent(), clock)
        loss = super()._train_epoch(batches, epoch_idx, loss_func=loss_func, show_progress=show_progress)
        seconds = time.perf_counter() - start
        self.train_seconds += seconds
        self.train_cpu_seconds += time.process_time() - cpu_start
        total = sum(loss) if isinstance(loss, tuple) else loss
        # CPU seconds of all this process's threads: unlike wall time, barely moved by other load
        entry = {"epoch": epoch_idx, "train_loss": float(total), "train_s": seconds,
                 "train_cpu_s": time.process_time() - cpu_start}
        if getattr(self.model, "train_stage", None):
            entry["train_stage"] = self.model.train_stage
        if isinstance(batches, BudgetedBatches) and batches.cut:
            entry["partial"] = {"batches": batches.yielded, "of": len(train_data)}
        self.history.append(entry)
        return loss

    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.history[-1].update(valid_s=time.perf_counter() - start,
                                valid={k: float(v) for k, v in result.items()})
        return score, result

    def _end_of_evaluated_epoch(self, epoch_idx: int, valid_score: float) -> None:
        if self.cur_step == 0:  # RecBole's early_stopping just reset it: this epoch is the best
            self.best_epoch = epoch_idx
        if self.cur_step > self.stopping_step:
            self.stop_reason = "early_stopping"
        elif epoch_idx + 1 >= self.epochs:
            self.stop_reason = "epochs"
        elif self.train_budget_s is not None and self._slowest_train_seconds() >= float(self.train_budget_s):
            self.stop_reason = "budget"
        self._save_last(epoch_idx)
        if self.stop_reason == "budget":
            raise BudgetExhausted

    def _spent(self) -> float:
        """Training seconds so far on the budget's clock."""
        return self.train_cpu_seconds if self.budget_clock == "cpu" else self.train_seconds

    def _slowest_train_seconds(self) -> float:
        """Training seconds so far; in distributed runs the slowest rank's, so all ranks stop together."""
        if self.config["single_spec"]:
            return self._spent()
        seconds = torch.tensor([self._spent()], dtype=torch.float64)
        torch.distributed.all_reduce(seconds, op=torch.distributed.ReduceOp.MAX)
        return float(seconds.item())

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        def callback(epoch_idx, valid_score):
            self._end_of_evaluated_epoch(epoch_idx, valid_score)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        try:
            super().fit(train_data, valid_data, verbose=verbose, saved=saved,
                        show_progress=show_progress, callback_fn=callback)
        except BudgetExhausted:
            self.logger.info(f"Training budget of {self.train_budget_s}s ({self.budget_clock} clock) spent after "
                             f"{self.train_seconds:.1f}s ({self.train_cpu_seconds:.1f} CPU s) of training")
        return self.best_valid_score, self.best_valid_result


# process_time counts this process's CPU seconds (all its threads): a budget on it is not shortened by
# other jobs on the machine, which matters when leaderboard runs share the cores
CLOCKS = {"wall": time.perf_counter, "cpu": time.process_time}


class BudgetedBatches:
    """The batches of ``loader`` until ``clock()`` passes ``deadline``; at least one batch, so every
    epoch has a loss."""

    def __init__(self, loader, deadline: float, clock=time.perf_counter):
        self.loader, self.deadline, self.clock = loader, deadline, clock
        self.yielded, self.cut = 0, False

    def __len__(self) -> int:
        return len(self.loader)

    def __iter__(self):
        for batch in self.loader:
            if self.yielded and self.clock() >= self.deadline:
                self.cut = True
                return
            self.yielded += 1
            yield batch


def make_trainer(config, model):
    """The trainer RecBole would use for ``model``, with :class:`SafeTrainerMixin` on top."""
    base = get_trainer(config["MODEL_TYPE"], config["model"])
    cls = type(f"Safe{base.__name__}", (SafeTrainerMixin, base), {})
    return cls(config, model)
