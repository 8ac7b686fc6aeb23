"""Multi-view contrastive losses of stage 1.

* :func:`info_nce`: symmetric InfoNCE between two ``(B, d)`` sets of L2-normalised vectors, row ``i`` of
  one matching row ``i`` of the other, the other rows of the batch as negatives. ``groups`` marks rows
  whose targets are identical content (two items with the same brand have the same brand vector): such
  pairs are not used as negatives, since nothing could tell them apart.
* :func:`multi_view_loss`: InfoNCE of the fused vector against each view (over the items where that
  view is present) plus a collaborative view (the fused vector of an item adjacent in a training
  sequence), and a small cost on the expected depth so that the gates only keep items deep where it
  helps.
"""
from typing import Dict, Optional, Tuple

import torch
import torch.nn.functional as F


def info_nce(anchor: torch.Tensor, target: torch.Tensor, temperature: float,
             groups: Optional[torch.Tensor] = None) -> torch.Tensor:
    """Symmetric InfoNCE; ``anchor``, ``target`` (B, d) normalised, ``groups`` (B,) long or ``None``."""
    logits = anchor @ target.t() / temperature                                    # (B, B)
    if groups is not None:
        same = groups.unsqueeze(0) == groups.unsqueeze(1)
        same.fill_diagonal_(False)
        logits = logits.masked_fill(same, float("-inf"))
    labels = torch.arange(anchor.shape[0], device=anchor.device)
    return 0.5 * (F.cross_entropy(logits, labels) + F.cross_entropy(logits.t(), labels))


def multi_view_loss(fused: torch.Tensor, views: torch.Tensor, mask: torch.Tensor, groups: torch.Tensor, *,
                    temperature: float, view_weights: Optional[torch.Tensor] = None,
                    neighbour_fused: Optional[torch.Tensor] = None, neighbour_rows: Optional[torch.Tensor] = None,
                    collab_weight: float = 1.0, expected_depth: Optional[torch.Tensor] = None,
                    num_layers: int = 1, depth_cost: float = 0.0) -> Tuple[torch.Tensor, Dict[str, float]]:
    """``(loss, parts)``.

    ``fused`` (B, d); ``views`` (B, M, d) normalised; ``mask`` (B, M) present; ``groups`` (B, M) content ids;
    ``neighbour_fused`` (P, d) the fused vectors of the neighbours of rows ``neighbour_rows`` (P,);
    ``expected_depth`` (B,). Views with fewer than 2 present rows in the batch are skipped.
    ``parts`` holds the value of each term (``view<m>``, ``collab``, ``depth``) as floats.
    """
    terms, weights, parts = [], [], {}
    for m in range(views.shape[1]):
        rows = mask[:, m]
        if int(rows.sum()) < 2:
            continue
        loss = info_nce(fused[rows], views[rows, m], temperature, groups[rows, m])
        terms.append(loss)
        weights.append(1.0 if view_weights is None else float(view_weights[m]))
        parts[f"view{m}"] = float(loss.detach())
    if neighbour_fused is not None and neighbour_rows is not None and len(neighbour_rows) >= 2:
        loss = info_nce(fused[neighbour_rows], neighbour_fused, temperature)
        terms.append(loss)
        weights.append(collab_weight)
        parts["collab"] = float(loss.detach())
    if not terms:
        total = fused.sum() * 0.0
    else:
        w = torch.tensor(weights, device=fused.device, dtype=fused.dtype)
        total = (torch.stack(terms) * w).sum() / w.sum()
    if expected_depth is not None and depth_cost > 0:
        depth = expected_depth.mean() / max(num_layers, 1)
        total = total + depth_cost * depth
        parts["depth"] = float(depth.detach())
    return total, parts
