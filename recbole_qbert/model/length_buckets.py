"""Encode a batch in groups of similar length, each cut to its longest member.

Most histories are far shorter than ``MAX_ITEM_LIST_LENGTH`` (8.9 items on average on Amazon Beauty,
against 50), and padding costs as much as items. Results equal those with full padding, since padding
is masked out of attention either way.
"""
from typing import Callable

import torch

LENGTH_BUCKETS = (4, 8, 16, 32)


def encode_by_length(forward: Callable, items: torch.Tensor, lengths: torch.Tensor, hidden_size: int,
                     *per_position: torch.Tensor) -> torch.Tensor:
    """``forward(items, lengths, *per_position)`` over length buckets.

    ``items`` ``(B, T)`` left-aligned with 0 after ``lengths`` ``(B,)``; each tensor of ``per_position``
    is ``(B, T, ...)`` and is cut like ``items``. Returns hidden states ``(B, T, hidden_size)``, zeros on
    the padding past each bucket's longest member."""
    hidden = torch.zeros(*items.shape, hidden_size, device=items.device)
    lower = 0
    for upper in LENGTH_BUCKETS + (items.shape[1],):
        rows = (lengths > lower) & (lengths <= upper)
        lower = upper
        if rows.any():
            t = int(lengths[rows].max())
            hidden[rows, :t] = forward(items[rows, :t], lengths[rows], *(x[rows, :t] for x in per_position))
    return hidden
