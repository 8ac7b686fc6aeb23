"""Deterministic k-means (k-means++ seeding, Lloyd iterations) used to initialise codebooks.

Everything draws its randomness from an explicit ``torch.Generator``, so the same seed gives the same
centroids bit for bit on the same machine.
"""
from typing import Optional, Tuple

import torch

from recbole_qbert.errors import QBertError


def squared_distances(x: torch.Tensor, centroids: torch.Tensor) -> torch.Tensor:
    """``(n, k)`` squared Euclidean distances between the rows of ``x`` and of ``centroids``.

    Written with one matrix product (no ``cdist``) so it is deterministic and the same expression is
    used wherever codes are assigned."""
    d = (x * x).sum(1, keepdim=True) - 2.0 * (x @ centroids.T) + (centroids * centroids).sum(1)[None, :]
    return d.clamp_min_(0.0)


def check_points(x: torch.Tensor, k: int, what: str = "k-means") -> None:
    if x.ndim != 2:
        raise QBertError(f"{what}: expected a (n, d) matrix, got shape {tuple(x.shape)}")
    if k < 1:
        raise QBertError(f"{what}: the number of clusters must be at least 1, got {k}")
    if x.shape[0] < k:
        raise QBertError(f"{what}: {x.shape[0]} items but {k} codes per level; a codebook cannot have more "
                         f"codes than there are items (lower codebook_size to at most {x.shape[0]})")
    if not torch.isfinite(x).all():
        raise QBertError(f"{what}: input holds NaN or inf values")


def kmeans_plus_plus(x: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    """k-means++ seeding: each next centroid is drawn with probability proportional to its squared
    distance from the centroids chosen so far (uniformly once every point coincides with one)."""
    n = x.shape[0]
    chosen = torch.empty(k, dtype=torch.long)
    chosen[0] = torch.randint(n, (1,), generator=generator)
    closest = squared_distances(x, x[chosen[:1]]).squeeze(1)
    for i in range(1, k):
        total = closest.sum()
        if total > 0:
            chosen[i] = torch.multinomial(closest / total, 1, generator=generator)
        else:  # fewer distinct points than k: duplicates are unavoidable
            chosen[i] = torch.randint(n, (1,), generator=generator)
        closest = torch.minimum(closest, squared_distances(x, x[chosen[i:i + 1]]).squeeze(1))
    return x[chosen].clone()


def kmeans(x: torch.Tensor, k: int, *, n_iter: int = 50, generator: Optional[torch.Generator] = None,
           ) -> Tuple[torch.Tensor, torch.Tensor]:
    """Cluster the rows of ``x`` into ``k`` groups; returns ``(centroids (k, d), assignment (n,))``.

    Lloyd iterations stop when no assignment changes or after ``n_iter``. A cluster that empties is
    moved onto the point worst served by its current centroid, so every centroid ends up owning at
    least one point whenever the data has ``k`` distinct points.
    """
    check_points(x, k)
    x = x.detach().float()
    generator = generator if generator is not None else torch.Generator().manual_seed(0)
    centroids = kmeans_plus_plus(x, k, generator)
    assign = squared_distances(x, centroids).argmin(1)
    for _ in range(max(n_iter, 0)):
        sums = torch.zeros_like(centroids).index_add_(0, assign, x)
        counts = torch.bincount(assign, minlength=k)
        nonempty = counts > 0
        centroids[nonempty] = sums[nonempty] / counts[nonempty, None].to(x.dtype)
        empty = (~nonempty).nonzero().flatten()
        if len(empty):
            error = squared_distances(x, centroids).gather(1, assign[:, None]).squeeze(1)
            worst = error.argsort(descending=True, stable=True)[:len(empty)]
            centroids[empty] = x[worst]
        new_assign = squared_distances(x, centroids).argmin(1)
        if torch.equal(new_assign, assign) and not len(empty):
            break
        assign = new_assign
    return centroids, assign
