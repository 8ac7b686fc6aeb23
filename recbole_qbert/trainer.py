"""RecBole trainers with safe checkpoints, resumable runs, budgets and per-epoch timing.

:class:`SafeTrainerMixin` wraps whichever trainer RecBole picks for a model (:func:`make_trainer`), so
RecBole's built-in models get the same behaviour as ours. Its parts live in :mod:`recbole_qbert.training`:
the checkpoint format, saving, resume and random states in :mod:`~recbole_qbert.training.checkpoint`,
budgets and the stop reason in :mod:`~recbole_qbert.training.budget`, learning-rate drops on a plateau in
:mod:`~recbole_qbert.training.plateau`; this module keeps the per-epoch history and timing, and the names
other code imports.
"""
import time
from pathlib import Path

import torch
from recbole.utils import ModelType, get_trainer

from recbole_qbert.errors import QBertError
from recbole_qbert.run_record import run_inputs
from recbole_qbert.training.budget import CLOCKS, BudgetedBatches, BudgetExhausted, BudgetMixin
from recbole_qbert.training.checkpoint import (CHECKPOINT_FORMAT, CheckpointMixin, load_checkpoint, save_checkpoint,
                                               set_rng_states)
from recbole_qbert.training.plateau import PlateauMixin

__all__ = ["CHECKPOINT_FORMAT", "CLOCKS", "BudgetExhausted", "BudgetedBatches", "SafeTrainerMixin", "load_checkpoint",
           "make_trainer", "save_checkpoint", "set_rng_states"]


class SafeTrainerMixin(CheckpointMixin, BudgetMixin, PlateauMixin):
    """Checkpointing, resume, budget, plateau drops and timing on top of a RecBole trainer class."""

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
        if config["eval_filter_history"] and config["MODEL_TYPE"] != ModelType.SEQUENTIAL:
            raise QBertError(f"eval_filter_history: sequential models only; RecBole already leaves a "
                             f"{config['model']} user's history out of the ranking")
        self.config_hash = config.run_hash
        self.inputs = run_inputs(config)
        self.history = []  # one dict per epoch: loss, seconds, validation metrics
        self.train_seconds = 0.0
        self.train_cpu_seconds = 0.0
        self.best_epoch = None
        self.stop_reason = None
        self._init_plateau(config)
        self._train_loader = None  # its shuffling state goes into last.pth
        self._pending_rng = None  # random states of a resumed run, restored when training starts

    # RecBole's fit has no hook before an epoch's batches: timing, the budget's cut within the epoch, the
    # random states of a resumed run and the model's progress hook need this override
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
        if self.lr_drops_done:
            entry["lr_drops"] = self.lr_drops_done
        if isinstance(batches, BudgetedBatches) and batches.cut:
            entry["partial"] = {"batches": batches.yielded, "of": len(train_data)}
        self.history.append(entry)
        return loss

    # fit's callback gets the validation score only: the result and its seconds for the history come from here
    def _valid_epoch(self, valid_data, show_progress=False):
        start = time.perf_counter()
        score, result = super()._valid_epoch(valid_data, show_progress=show_progress)
        self.history[-1].update(valid_s=time.perf_counter() - start,
                                valid={k: float(v) for k, v in result.items()})
        return score, result

    # RecBole's full ranking leaves a sequential model's history items among the candidates; the
    # eval_filter_history protocol variant drops them (general models' histories RecBole drops itself)
    def _full_sort_batch_eval(self, batched_data):
        interaction, scores, positive_u, positive_i = super()._full_sort_batch_eval(batched_data)
        if self.config["eval_filter_history"]:
            history = interaction[self.model.ITEM_SEQ].to(scores.device)  # (B, L), 0 = padding (already -inf)
            scores.scatter_(1, history, float("-inf"))
        return interaction, scores, positive_u, positive_i

    def fit(self, train_data, valid_data=None, verbose=True, saved=True, show_progress=False,
            callback_fn=None):
        def callback(epoch_idx, valid_score):
            self._end_of_evaluated_epoch(epoch_idx, valid_score)
            if callback_fn:
                callback_fn(epoch_idx, valid_score)

        try:
            super().fit(train_data, valid_data, verbose=verbose, saved=saved,
                        show_progress=show_progress, callback_fn=callback)
            while self._should_drop():
                self._drop_learning_rate()
                super().fit(train_data, valid_data, verbose=verbose, saved=saved,
                            show_progress=show_progress, callback_fn=callback)
        except BudgetExhausted:
            self.logger.info(f"Training budget of {self.train_budget_s}s ({self.budget_clock} clock) spent after "
                             f"{self.train_seconds:.1f}s ({self.train_cpu_seconds:.1f} CPU s) of training")
        return self.best_valid_score, self.best_valid_result


def make_trainer(config, model):
    """The trainer RecBole would use for ``model``, with :class:`SafeTrainerMixin` on top."""
    base = get_trainer(config["MODEL_TYPE"], config["model"])
    cls = type(f"Safe{base.__name__}", (SafeTrainerMixin, base), {})
    return cls(config, model)
