"""Residual vector quantization over ``n_levels`` codebooks of ``codebook_size`` codes.

Level 1 picks the code nearest to the input, each next level the code nearest to what is left
(the residual). ``forward(x) -> (quantized, codes, loss)`` in the style of vector-quantize-pytorch:

* ``quantized`` ``(B, dim)``: the sum of the chosen codes. In training mode the gradient passes straight
  through to ``x`` (``x + (q - x).detach()``); in eval mode it is the exact sum, bit-identical to
  :meth:`ResidualQuantizer.lookup` of the codes.
* ``codes`` ``(B, n_levels)`` int64.
* ``loss``: per level ``||sg(r) - e||^2 + beta * ||r - sg(e)||^2`` (codebook + commitment), summed over
  levels, each term averaged over the batch and dimensions.

Codebooks are initialised by k-means on the residuals of real data (:meth:`init_kmeans`) and codes no
item chose since the last check are moved onto random residuals (:meth:`reset_dead_codes`), so
codebooks do not collapse onto a few codes.
"""
from typing import List, Optional, Tuple

import torch
import torch.nn.functional as F
from torch import nn

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.kmeans import check_points, kmeans, squared_distances


class ResidualQuantizer(nn.Module):
    def __init__(self, *, n_levels: int = 3, codebook_size: int = 256, dim: int = 32, beta: float = 0.25):
        super().__init__()
        if n_levels < 1 or codebook_size < 1 or dim < 1:
            raise QBertError(f"residual quantizer: n_levels ({n_levels}), codebook_size ({codebook_size}) "
                             f"and dim ({dim}) must all be at least 1")
        if beta < 0:
            raise QBertError(f"residual quantizer: beta must be >= 0, got {beta}")
        self.n_levels, self.codebook_size, self.dim, self.beta = n_levels, codebook_size, dim, beta
        self.codebooks = nn.Parameter(torch.randn(n_levels, codebook_size, dim) / dim ** 0.5)
        self.register_buffer("initialized", torch.tensor(False))
        # how many training vectors chose each code since the last dead-code check (not saved)
        self.register_buffer("usage", torch.zeros(n_levels, codebook_size, dtype=torch.long), persistent=False)

    # --- assignment -------------------------------------------------------------------------------
    def _nearest(self, level: int, residual: torch.Tensor) -> torch.Tensor:
        return squared_distances(residual, self.codebooks[level].detach()).argmin(1)

    def forward(self, x: torch.Tensor) -> Tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        residual = x
        quantized = torch.zeros_like(x)
        codes: List[torch.Tensor] = []
        loss = x.new_zeros(())
        for level in range(self.n_levels):
            idx = self._nearest(level, residual.detach())
            e = F.embedding(idx, self.codebooks[level])
            loss = loss + F.mse_loss(e, residual.detach()) + self.beta * F.mse_loss(residual, e.detach())
            quantized = quantized + e
            residual = residual - e.detach()
            codes.append(idx)
            if self.training:
                self.usage[level] += torch.bincount(idx, minlength=self.codebook_size)
        codes_t = torch.stack(codes, dim=1)
        if self.training:
            quantized = x + (quantized - x).detach()  # straight-through estimator
        return quantized, codes_t, loss

    @torch.no_grad()
    def residuals(self, x: torch.Tensor) -> Tuple[torch.Tensor, List[torch.Tensor]]:
        """Codes ``(B, L)`` and the residual entering each level (``L`` tensors ``(B, dim)``)."""
        residual, codes, seen = x, [], []
        for level in range(self.n_levels):
            seen.append(residual)
            idx = self._nearest(level, residual)
            residual = residual - self.codebooks[level][idx]
            codes.append(idx)
        return torch.stack(codes, dim=1), seen

    def lookup(self, codes: torch.Tensor) -> torch.Tensor:
        """The quantized vectors of ``codes`` ``(B, L)``: the sum of each level's code vector."""
        self.check_codes(codes)
        quantized = torch.zeros(codes.shape[0], self.dim, dtype=self.codebooks.dtype, device=codes.device)
        for level in range(self.n_levels):
            quantized = quantized + F.embedding(codes[:, level], self.codebooks[level])
        return quantized

    def check_codes(self, codes: torch.Tensor) -> None:
        if codes.ndim != 2 or codes.shape[1] != self.n_levels:
            raise QBertError(f"codes have shape {tuple(codes.shape)}, expected (n, {self.n_levels})")
        if len(codes) and (codes.min() < 0 or codes.max() >= self.codebook_size):
            raise QBertError(f"codes out of range: expected 0..{self.codebook_size - 1}, "
                             f"got {int(codes.min())}..{int(codes.max())}")

    # --- codebook maintenance ---------------------------------------------------------------------
    @torch.no_grad()
    def init_kmeans(self, x: torch.Tensor, *, generator: Optional[torch.Generator] = None,
                    n_iter: int = 50) -> None:
        """Set each level's codebook to the k-means centroids of that level's residuals of ``x``."""
        check_points(x, self.codebook_size, "codebook initialisation")
        residual = x.detach()
        for level in range(self.n_levels):
            centroids, assign = kmeans(residual, self.codebook_size, n_iter=n_iter, generator=generator)
            self.codebooks.data[level] = centroids.to(self.codebooks.dtype)
            residual = residual - centroids[assign]
        self.initialized.fill_(True)
        self.usage.zero_()

    @torch.no_grad()
    def reset_dead_codes(self, x: torch.Tensor, *, generator: Optional[torch.Generator] = None,
                         threshold: int = 1) -> List[torch.Tensor]:
        """Move every code used fewer than ``threshold`` times since the last call onto a random residual
        of ``x`` at its level (levels in order, so a level's residuals reflect the resets above it).

        Returns the indices of the codes reset, per level, and clears the usage counts."""
        check_points(x, 1, "dead-code reset")
        generator = generator if generator is not None else torch.Generator().manual_seed(0)
        reset = []
        residual = x.detach()
        for level in range(self.n_levels):
            dead = (self.usage[level] < threshold).nonzero().flatten()
            if len(dead):
                pick = torch.randperm(len(residual), generator=generator)[:len(dead)]
                if len(pick) < len(dead):  # more dead codes than vectors: sample with replacement
                    pick = torch.randint(len(residual), (len(dead),), generator=generator)
                self.codebooks.data[level, dead] = residual[pick].to(self.codebooks.dtype)
            reset.append(dead)
            residual = residual - self.codebooks[level][self._nearest(level, residual)]
        self.usage.zero_()
        return reset
