"""Safe checkpoints and resume.

RecBole 1.2.1 pickles its whole ``Config`` into checkpoints and reloads them with ``torch.load``, which
torch >= 2.6 refuses by default and which would execute code from an untrusted file. The checkpoints
here hold tensors and plain values only (the config as YAML text) and are loaded with ``weights_only=True``:

* ``best.pth``: the model at the best validation epoch (what the test is evaluated on);
* ``last.pth``: the model, optimizer and trainer state after the latest evaluated epoch, from which an
  interrupted run resumes.
"""
import random
from pathlib import Path

import numpy as np
import torch
import yaml

from recbole_qbert.config import plain_config
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import atomic_path
from recbole_qbert.training.other_parameter import decode_other_parameter, encode_other_parameter

# 2: last.pth holds every random state (torch, numpy, Python, the loader's shuffling) and models' extra state
CHECKPOINT_FORMAT = 2
# what last.pth holds beyond best.pth's model: the trainer state a resume reads
RESUME_KEYS = ("optimizer", "rng", "cur_step", "best_valid_score", "best_valid_result", "best_epoch", "history",
               "train_seconds", "stop_reason")


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
    """Restore what :func:`rng_states` saved. Generator states must be CPU byte tensors, whatever device
    the checkpoint was loaded onto."""
    torch.set_rng_state(states["torch"].cpu())
    n = states["numpy"]
    np.random.set_state((n["kind"], n["keys"].cpu().numpy().astype(np.uint32), n["pos"], n["has_gauss"],
                         n["cached"]))
    p = states["python"]
    random.setstate((p["version"], tuple(p["state"]), p["gauss"]))
    if "cuda" in states and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([s.cpu() for s in states["cuda"]])
    if "loader" in states and loader is not None and getattr(loader, "generator", None) is not None:
        loader.generator.set_state(states["loader"].cpu())


class CheckpointMixin:
    """A trainer's checkpoints: ``best.pth`` (what RecBole's ``fit`` saves), ``last.pth`` (after every
    evaluated epoch), resume from ``last.pth`` and loading of ``best.pth`` before a test."""

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

    # RecBole's fit calls it for the best model; its own pickles the whole Config (see the module docstring)
    def _save_checkpoint(self, epoch, verbose=True, **kwargs):
        """Best model so far. RecBole calls this with ``epoch=-1`` when there is nothing left to train;
        the best model of a resumed run must then stay as it is."""
        if not self.config["single_spec"] and self.config["local_rank"] != 0:
            return
        path = Path(kwargs.pop("saved_model_file", self.saved_model_file))
        if epoch < 0 and path.is_file():
            return
        save_checkpoint({**self._meta(), "epoch": epoch, "state_dict": self.model.state_dict(),
                         "other_parameter": encode_other_parameter(self.model.other_parameter())}, path)
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
            **self._plateau_state(),
            "state_dict": self.model.state_dict(),
            "other_parameter": encode_other_parameter(self.model.other_parameter()),
            "optimizer": self.optimizer.state_dict(),
            "rng": rng_states(self._train_loader),
        }, self.last_checkpoint_file)

    def resume_checkpoint(self, resume_file=None):
        """Continue from ``last.pth`` (or ``resume_file``): model, optimizer, early-stopping state and
        history. A run that stopped early, or whose time budget is spent, trains no further; one that
        ran out of epochs continues if ``epochs`` is now larger, and one that stopped early continues
        with a plateau drop if ``plateau_lr_drops`` now allows another."""
        path = Path(resume_file or self.last_checkpoint_file)
        state = load_checkpoint(path, map_location=self.device)
        self._check_meta(state, path)
        missing = [key for key in RESUME_KEYS if key not in state]
        if missing:
            raise QBertError(f"{path}: holds a model but not the training state to resume from (no "
                             f"{', '.join(missing)}; a best.pth copied to last.pth?); rerun without resuming")
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(decode_other_parameter(state.get("other_parameter")))
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
        self._restore_plateau(state, path)
        spent = self.train_budget_s is not None and self._spent() >= float(self.train_budget_s)
        done = self.stop_reason == "early_stopping" or spent
        self.start_epoch = self.epochs if done else state["epoch"] + 1
        if self.start_epoch < self.epochs:  # a raised epoch limit or budget: the run goes on
            self.stop_reason = None
        if self._should_drop() and not spent:  # stopped early, and now has a drop left
            self._drop_learning_rate()
        self.logger.info(f"Resumed from {path} at epoch {self.start_epoch}")

    def load_best(self, model_file=None) -> None:
        if not self.config["single_spec"]:
            torch.distributed.barrier()  # rank 0 may still be writing best.pth
        path = Path(model_file or self.saved_model_file)
        state = load_checkpoint(path, map_location=self.device)
        self._check_meta(state, path)
        self.model.load_state_dict(state["state_dict"])
        self.model.load_other_parameter(decode_other_parameter(state.get("other_parameter")))
        self.logger.info(f"Loaded model of epoch {state['epoch']} from {path}")

    @torch.no_grad()
    def evaluate(self, eval_data, load_best_model=True, model_file=None, show_progress=False):
        if load_best_model:
            self.load_best(model_file)
        return super().evaluate(eval_data, load_best_model=False, show_progress=show_progress)
