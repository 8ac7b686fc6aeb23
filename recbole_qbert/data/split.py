"""The protocol's split, defined once: leave-one-out by time order, per user.

``eval_args`` in properties/overall.yaml (``split: {LS: valid_and_test}, order: TO, group_by: user``) as
RecBole 1.2.1 applies it (``Dataset.build``): the interactions are sorted by timestamp with a stable sort,
so ties keep their file order (a file without timestamps keeps file order), then grouped by user. Of a
user's ``n`` interactions the last is the test target, the one before it the validation target and the
rest are training; a user with two interactions has only a test target, one with a single interaction
only training.

RecBole's ``SequentialDataset`` (every sequential model) splits its per-prefix samples (``n - 1`` per
user, the ``k``-th predicting interaction ``k + 1``) the same way, which gives the same three parts for
every user with at least four interactions. A user with three has no validation target there (the second
interaction is a training target), one with two only training, one with one no sample at all. So no row
this split calls training is ever a validation or test target of the models: stages 1 and 2 see none.
"""
from dataclasses import dataclass
from typing import List, Optional, Tuple

import numpy as np
import pandas as pd

# the protocol holds out the last two interactions: validation, then test
HELD_OUT = 2


@dataclass
class UserSplit:
    """One user's interactions as row indices into the interaction table, each part in time order:
    ``train`` ``(n_train,)``, ``valid`` and ``test`` one row each or ``None``."""
    user: str
    train: np.ndarray
    valid: Optional[int]
    test: Optional[int]


def rows_by_user(users: np.ndarray, times: Optional[np.ndarray]) -> Tuple[np.ndarray, List[np.ndarray]]:
    """Each user's rows in RecBole's time order (stable: ties keep file order).

    ``users`` ``(R,)`` tokens and ``times`` ``(R,)`` numbers (``None``: file order) of the rows. Returns the
    users ``(U,)`` in the order they first appear in time order, and for each a ``(n_u,)`` array of rows."""
    order = np.arange(len(users)) if times is None else np.argsort(times, kind="stable")
    codes, first = pd.factorize(users[order])
    by_user = order[np.argsort(codes, kind="stable")]
    bounds = np.flatnonzero(np.diff(np.sort(codes, kind="stable"))) + 1
    return np.asarray(first), np.split(by_user, bounds)


def leave_one_out(users: np.ndarray, times: Optional[np.ndarray]) -> List[UserSplit]:
    """The protocol's split of the rows (see the module docstring), users as :func:`rows_by_user` orders them."""
    splits = []
    for user, rows in zip(*rows_by_user(users, times)):
        held = min(HELD_OUT, len(rows) - 1)
        n_train = len(rows) - held
        tail = rows[n_train:].tolist()
        splits.append(UserSplit(user=user, train=rows[:n_train], valid=tail[0] if held == HELD_OUT else None,
                                test=tail[-1] if held else None))
    return splits
