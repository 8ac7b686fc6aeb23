"""Learning-rate drops on a plateau (``plateau_lr_drops``, ``plateau_lr_factor``).

A model whose validation curve flattens into noise at its learning rate can often climb further at a
lower one (issue 11, idea 3). When early stopping fires and drops are left, training goes on from the
best model with a fresh optimizer at ``plateau_lr_factor`` times the current rate, and patience counts
anew against the best score so far; the run ends at the first early stop with no drop left. Until then
the run is the plain one epoch for epoch, which is why the two keys are budget keys (like ``epochs``)
rather than part of the config hash: raising ``plateau_lr_drops`` continues a finished run.
"""
from recbole_qbert.errors import QBertError


class PlateauMixin:
    """Drops of the learning rate after early stopping; needs :class:`~.checkpoint.CheckpointMixin`."""

    def _init_plateau(self, config) -> None:
        self.plateau_lr_drops = config["plateau_lr_drops"]
        self.plateau_lr_factor = config["plateau_lr_factor"]
        self.lr_drops_done = 0

    def _plateau_state(self) -> dict:
        """What ``last.pth`` keeps of the drops."""
        return {"lr_drops_done": self.lr_drops_done, "plateau_lr_factor": self.plateau_lr_factor}

    def _restore_plateau(self, state: dict, path) -> None:
        """The drops a resumed run already made; refuses a checkpoint whose drops this config would not make."""
        done = state.get("lr_drops_done", 0)
        if done > self.plateau_lr_drops or (done and state["plateau_lr_factor"] != self.plateau_lr_factor):
            raise QBertError(f"{path}: the run made {done} plateau drop(s) of x{state.get('plateau_lr_factor')}, "
                             f"this config asks for at most {self.plateau_lr_drops} of x{self.plateau_lr_factor}; "
                             "use a fresh checkpoint_dir or the original values")
        self.lr_drops_done = done

    def _should_drop(self) -> bool:
        return (self.stop_reason == "early_stopping" and self.lr_drops_done < self.plateau_lr_drops
                and self.history[-1]["epoch"] + 1 < self.epochs)

    def _drop_learning_rate(self) -> None:
        """Back to the best model, a fresh optimizer at the lower rate, patience from zero; the next
        epoch is the one after the last trained."""
        lr = self.optimizer.param_groups[0]["lr"] * self.plateau_lr_factor
        self.load_best()
        self.optimizer = self._build_optimizer(learning_rate=lr)
        self.lr_drops_done += 1
        self.cur_step = 0
        self.stop_reason = None
        self.start_epoch = self.history[-1]["epoch"] + 1
        self.logger.info(f"Plateau: learning rate {lr:g} from the best model (epoch {self.best_epoch}), "
                         f"drop {self.lr_drops_done} of {self.plateau_lr_drops}")
