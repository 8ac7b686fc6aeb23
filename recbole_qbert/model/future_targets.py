"""Training targets further ahead than the next item, for a causal model's loss (``future_targets``).

SASRec trains each position to predict the next item only. Amazon review histories are ordered by review
time, and a user often reviews several items the same day in an order the data does not keep, so the item
two or three steps ahead is nearly as much "what this user picks next" as the next one. With
``future_targets: K`` each position also learns the K - 1 items after the next, the one k steps ahead
weighted ``future_target_decay ** (k - 1)``: more (history, item) pairs from the same short histories, and a
softer target order. Inference is unchanged (the scores at the last position).
"""
import torch
from torch import nn


def future_targets(items: torch.Tensor, lengths: torch.Tensor, last: torch.Tensor, window: int) -> torch.Tensor:
    """Histories ``items`` ``(B, T)`` (left-aligned, 0 after ``lengths`` ``(B,)``) and the item after each,
    ``last`` ``(B,)`` -> ``(B, T, window)``: at position t, the items 1..window steps after it (0 past the
    end of the history plus ``last``, and at padding positions)."""
    rows = torch.arange(len(items), device=items.device)
    sequence = torch.cat([items, items.new_zeros(len(items), window)], dim=1)  # (B, T + window)
    sequence[rows, lengths] = last
    return torch.stack([sequence[:, k:k + items.shape[1]] for k in range(1, window + 1)], dim=-1)


def future_target_loss(scores: torch.Tensor, targets: torch.Tensor, decay: float) -> torch.Tensor:
    """Cross-entropy of scores ``(N, n_items)`` over targets ``(N, K)`` (0: no target), each pair weighted
    ``decay ** k`` for the target in column k and averaged by weight; with K = 1, plain cross-entropy."""
    if targets.shape[1] == 1:
        return nn.functional.cross_entropy(scores, targets[:, 0])
    log_probs = nn.functional.log_softmax(scores, dim=-1)
    present = targets > 0
    weights = decay ** torch.arange(targets.shape[1], device=scores.device, dtype=scores.dtype)
    weights = weights.unsqueeze(0) * present  # (N, K)
    nll = -log_probs.gather(1, targets)  # (N, K); a 0 target reads the padding column, weighted 0
    nll = nll.masked_fill(~present, 0.0)  # the padding column scores -inf: keep its inf out of the sum
    return (weights * nll).sum() / weights.sum()
