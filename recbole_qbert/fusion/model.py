"""The dynamic cross-modal transformer of stage 1 (README.md, "The model": cross-modal fusion).

Shapes: ``B`` items in a batch, ``M`` views (modality tables: text, text_title, image, graph, ...),
``d_m`` the width of view ``m``, ``d`` the shared width.

1. **Query.** A learnable ID vector per item, ``h0`` ``(B, d)``.
2. **Views.** Each view is normalised (LayerNorm over its ``d_m`` features) and projected into the shared
   space: ``v`` ``(B, M, d)``; a learned type embedding per view is added to form the keys. Absent
   views are masked everywhere (``mask`` ``(B, M)``, True = present); their rows are never read as
   content. A learned *null* key is always present, so an item with no view at all attends to it and
   its output rests on its ID vector alone (no NaN, no zero vector taken as content).
3. **Alignment.** Similarity-weighted: ``a = softmax(cos(h0, v_m) / tau)`` over the present views,
   ``h = h0 + sum_m a_m v_m``.
4. **Dynamic depth.** Up to ``num_layers`` cross-attention blocks (pre-norm multi-head attention of the
   ID vector over the keys, then a feed-forward layer) update ``h``. Keys and values are projected once
   and shared by the blocks, which differ in their query, output and feed-forward weights (the query is
   a single vector, so per-block key/value projections would dominate the cost). Before block ``l`` a gate
   ``g_l = sigmoid(MLP_l(h))`` decides whether the item goes on; ``p_l = g_1 ... g_l`` is the
   probability of reaching block ``l`` and ``h <- h + p_l (block_l(h) - h)``, so an item whose gates close
   stops early (its later blocks barely change it). The expected depth is ``sum_l p_l``; the *used*
   depth counts the blocks with ``p_l >= 0.5``. ``fixed_depth=k`` (ablation) switches the gates off
   and runs exactly ``k`` blocks for every item.
5. **Output.** ``fused = normalize(W LN(h))`` ``(B, d)``.
"""
import math
from dataclasses import dataclass
from typing import List, Optional, Sequence

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class FusionOutput:
    fused: torch.Tensor            # (B, d) L2-normalised fused vectors
    views: torch.Tensor            # (B, M, d) L2-normalised projected views (zeros where absent)
    align_weights: torch.Tensor    # (B, M) alignment weights over the present views (0 where absent)
    continue_probs: torch.Tensor   # (B, L) p_l: probability of running block l (1/0 with fixed_depth)
    expected_depth: torch.Tensor   # (B,) sum_l p_l
    used_depth: torch.Tensor       # (B,) number of blocks with p_l >= 0.5


class CrossAttentionBlock(nn.Module):
    """Pre-norm multi-head attention of one query vector per item over its (already projected) keys and
    values, then a feed-forward layer."""

    def __init__(self, *, dim: int, num_heads: int, ffn_dim: int, dropout: float):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.norm_q = nn.LayerNorm(dim)
        self.q_proj = nn.Linear(dim, dim)
        self.out_proj = nn.Linear(dim, dim)
        self.norm_ffn = nn.LayerNorm(dim)
        self.ffn = nn.Sequential(nn.Linear(dim, ffn_dim), nn.GELU(), nn.Dropout(dropout),
                                 nn.Linear(ffn_dim, dim))
        self.attn_dropout = nn.Dropout(dropout)
        self.dropout = nn.Dropout(dropout)

    def forward(self, h: torch.Tensor, k: torch.Tensor, v: torch.Tensor, ignore: torch.Tensor) -> torch.Tensor:
        """``h`` (B, d); ``k``, ``v`` (B, K, H, d/H); ``ignore`` (B, K) True = masked -> (B, d)."""
        batch = h.shape[0]
        q = self.q_proj(self.norm_q(h)).view(batch, self.num_heads, self.head_dim)       # (B, H, d/H)
        scores = torch.einsum("bhe,bkhe->bhk", q, k) / math.sqrt(self.head_dim)           # (B, H, K)
        attn = torch.softmax(scores.masked_fill(ignore.unsqueeze(1), float("-inf")), dim=-1)
        attended = torch.einsum("bhk,bkhe->bhe", self.attn_dropout(attn), v).reshape(batch, -1)
        h = h + self.dropout(self.out_proj(attended))
        return h + self.dropout(self.ffn(self.norm_ffn(h)))


class DynamicCrossModalFusion(nn.Module):
    """Fuse per-item views into one vector per item, the ID vector being the query (module docstring).

    Args (keyword-only):
        num_items: N, rows of the ID embedding.
        view_dims: ``d_m`` of each of the M views, in the order the views are passed to :meth:`forward`.
        shared_dim: ``d``.
        num_layers: L, the most cross-attention blocks an item can go through.
        num_heads: attention heads (``d`` must be divisible by it).
        ffn_dim: hidden width of each block's feed-forward layer.
        dropout: dropout in attention and feed-forward layers.
        align_temperature: ``tau`` of the similarity-weighted alignment.
        gate_hidden: hidden width of each gate MLP.
        gate_bias_init: initial bias of the gates' last layer (``sigmoid(2) = 0.88``: items start deep).
        fixed_depth: ``None`` for gated depth, or an int in ``0..L`` to run exactly that many blocks.
        id_init_std: standard deviation of the initial ID vectors.
    """

    def __init__(self, *, num_items: int, view_dims: Sequence[int], shared_dim: int = 256, num_layers: int = 4,
                 num_heads: int = 4, ffn_dim: int = 512, dropout: float = 0.1, align_temperature: float = 0.1,
                 gate_hidden: int = 64, gate_bias_init: float = 2.0, fixed_depth: Optional[int] = None,
                 id_init_std: float = 0.02):
        super().__init__()
        if not view_dims:
            raise ValueError("at least one view is needed")
        if shared_dim % num_heads:
            raise ValueError(f"shared_dim {shared_dim} is not divisible by num_heads {num_heads}")
        if fixed_depth is not None and not 0 <= fixed_depth <= num_layers:
            raise ValueError(f"fixed_depth must be in 0..{num_layers}, got {fixed_depth}")
        if align_temperature <= 0:
            raise ValueError("align_temperature must be positive")
        self.num_views, self.num_layers, self.fixed_depth = len(view_dims), num_layers, fixed_depth
        self.align_temperature = align_temperature
        self.id_embedding = nn.Embedding(num_items, shared_dim)
        nn.init.normal_(self.id_embedding.weight, std=id_init_std)
        self.view_norms = nn.ModuleList(nn.LayerNorm(d) for d in view_dims)
        self.view_projections = nn.ModuleList(nn.Linear(d, shared_dim) for d in view_dims)
        self.view_type = nn.Parameter(torch.zeros(len(view_dims), shared_dim))
        self.null_key = nn.Parameter(torch.randn(shared_dim) * id_init_std)
        self.num_heads = num_heads
        self.key_norm = nn.LayerNorm(shared_dim)
        self.kv_proj = nn.Linear(shared_dim, 2 * shared_dim)
        self.blocks = nn.ModuleList(CrossAttentionBlock(dim=shared_dim, num_heads=num_heads, ffn_dim=ffn_dim,
                                                        dropout=dropout) for _ in range(num_layers))
        self.gates = nn.ModuleList()
        for _ in range(num_layers):
            gate = nn.Sequential(nn.LayerNorm(shared_dim), nn.Linear(shared_dim, gate_hidden), nn.GELU(),
                                 nn.Linear(gate_hidden, 1))
            nn.init.constant_(gate[-1].bias, gate_bias_init)
            self.gates.append(gate)
        self.out_norm = nn.LayerNorm(shared_dim)
        self.out_proj = nn.Linear(shared_dim, shared_dim)

    def project_views(self, features: List[torch.Tensor], mask: torch.Tensor) -> torch.Tensor:
        """``features[m]`` (B, d_m), ``mask`` (B, M) -> projected views (B, M, d), zeros where absent."""
        zero = features[0].new_zeros(())
        # where, not multiply: an absent row is never read, even if it holds NaN (no NaN gradients either)
        views = torch.stack([proj(norm(torch.where(mask[:, m:m + 1], x, zero))) for m, (x, norm, proj) in
                             enumerate(zip(features, self.view_norms, self.view_projections))], dim=1)
        return torch.where(mask.unsqueeze(-1), views, zero)

    def forward(self, items: torch.Tensor, features: List[torch.Tensor], mask: torch.Tensor) -> FusionOutput:
        """``items`` (B,) long rows of the ID embedding; ``features[m]`` (B, d_m); ``mask`` (B, M) bool."""
        if len(features) != self.num_views or mask.shape[1] != self.num_views:
            raise ValueError(f"expected {self.num_views} views, got {len(features)} tensors and mask {tuple(mask.shape)}")
        mask = mask.bool()
        batch = items.shape[0]
        views = self.project_views(features, mask)                                     # (B, M, d)
        h0 = self.id_embedding(items)                                                   # (B, d)

        # similarity-weighted alignment over the present views
        sims = torch.einsum("bd,bmd->bm", F.normalize(h0, dim=-1), F.normalize(views, dim=-1))
        logits = (sims / self.align_temperature).masked_fill(~mask, float("-inf"))
        any_view = mask.any(dim=1, keepdim=True)
        weights = torch.softmax(torch.where(any_view, logits, torch.zeros_like(logits)), dim=-1)
        weights = weights * mask.to(weights.dtype)                                      # 0 where absent / no view
        h = h0 + torch.einsum("bm,bmd->bd", weights, views)

        keys = torch.cat([self.null_key.expand(batch, 1, -1), views + self.view_type], dim=1)  # (B, 1+M, d)
        ignore = torch.cat([torch.zeros(batch, 1, dtype=torch.bool, device=mask.device), ~mask], dim=1)

        k, v = self.kv_proj(self.key_norm(keys)).view(batch, keys.shape[1], 2, self.num_heads, -1).unbind(2)
        probs = []
        p = torch.ones(batch, device=h.device, dtype=h.dtype)
        for layer, (block, gate) in enumerate(zip(self.blocks, self.gates)):
            if self.fixed_depth is not None:
                p = torch.full_like(p, 1.0 if layer < self.fixed_depth else 0.0)
                if layer < self.fixed_depth:
                    h = block(h, k, v, ignore)
            else:
                p = p * torch.sigmoid(gate(h)).squeeze(-1)
                h = h + p.unsqueeze(-1) * (block(h, k, v, ignore) - h)
            probs.append(p)
        probs_t = torch.stack(probs, dim=1) if probs else h.new_zeros(batch, 0)
        fused = F.normalize(self.out_proj(self.out_norm(h)), dim=-1)
        return FusionOutput(fused=fused, views=F.normalize(views, dim=-1), align_weights=weights,
                            continue_probs=probs_t, expected_depth=probs_t.sum(dim=1),
                            used_depth=(probs_t >= 0.5).sum(dim=1))
