"""Time and epoch budgets of a training run, and why it stopped (``early_stopping``, ``epochs`` or
``budget``)."""
import time

import torch


class BudgetExhausted(Exception):
    """Raised after an evaluated epoch once the run's training budget (on ``train_budget_clock``) is spent."""


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

    def __getattr__(self, name):
        # the rest of the loader's interface (RecBole's KG trainers call set_mode and knowledge_shuffle)
        return getattr(self.loader, name)

    def __iter__(self):
        for batch in self.loader:
            if self.yielded and self.clock() >= self.deadline:
                self.cut = True
                return
            self.yielded += 1
            yield batch


class BudgetMixin:
    """The share of the run spent, the stop reason after each evaluated epoch, and the training seconds on
    the budget's clock."""

    def _progress(self, epoch_idx: int) -> float:
        """Share of the run spent before ``epoch_idx``: by epochs or by time budget, whichever is further."""
        share = epoch_idx / max(self.epochs, 1)
        if self.train_budget_s:
            share = max(share, self._spent() / float(self.train_budget_s))
        return share

    def _end_of_evaluated_epoch(self, epoch_idx: int, valid_score: float) -> None:
        """After each evaluated epoch (fit's callback): the best epoch, the stop reason and ``last.pth``."""
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
