"""What :class:`recbole_qbert.trainer.SafeTrainerMixin` adds to a RecBole trainer, one concern per module:

* :mod:`.checkpoint`: the checkpoint format (``best.pth``, ``last.pth``), saving, loading and resuming,
  and the random states a resumed run restores;
* :mod:`.budget`: time and epoch budgets, the stop reason, and the batches of an epoch cut at the deadline.
* :mod:`.plateau`: learning-rate drops from the best model when early stopping fires (``plateau_lr_drops``).
"""
