"""A pre-LayerNorm transformer encoder: the layer layout of Kang & McAuley's original SASRec.

RecBole's ``TransformerEncoder`` normalises after each residual sum (BERT's post-norm). The original
SASRec, and the re-implementations that report the strongest SASRec figures, normalise the input of the
attention and of the feed-forward block instead, and once more after the last layer; the residual path
then carries the un-normalised sum from the embeddings to the output.
"""
import torch
from torch import nn
from torch.nn import functional as F


class PreNormBlock(nn.Module):
    """One layer: ``x + Attn(LN(x))``, then ``x + FFN(LN(x))``, on ``(B, T, H)``."""

    def __init__(self, *, hidden_size: int, n_heads: int, inner_size: int, hidden_dropout_prob: float,
                 attn_dropout_prob: float, layer_norm_eps: float):
        super().__init__()
        self.n_heads = n_heads
        self.attn_dropout_prob = attn_dropout_prob
        self.attn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.qkv = nn.Linear(hidden_size, 3 * hidden_size)
        self.attn_out = nn.Linear(hidden_size, hidden_size)
        self.ffn_norm = nn.LayerNorm(hidden_size, eps=layer_norm_eps)
        self.ffn = nn.Sequential(nn.Linear(hidden_size, inner_size), nn.GELU(), nn.Dropout(hidden_dropout_prob),
                                 nn.Linear(inner_size, hidden_size))
        self.dropout = nn.Dropout(hidden_dropout_prob)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """``x`` ``(B, T, H)``, ``attention_mask`` additive ``(B, 1, T, T)``, or ``(B, 1, 1, T)`` when it only
        hides padding (0 allowed, -1e4 blocked)."""
        batch, length, hidden = x.shape
        # (3, B, heads, T, H / heads)
        q, k, v = self.qkv(self.attn_norm(x)).view(batch, length, 3, self.n_heads, -1).permute(2, 0, 3, 1, 4)
        attended = F.scaled_dot_product_attention(
            q, k, v, attn_mask=attention_mask, dropout_p=self.attn_dropout_prob if self.training else 0.0)
        x = x + self.dropout(self.attn_out(attended.transpose(1, 2).reshape(batch, length, hidden)))
        return x + self.dropout(self.ffn(self.ffn_norm(x)))


class PreNormTransformer(nn.Module):
    """``n_layers`` :class:`PreNormBlock` and a final LayerNorm: ``(B, T, H)`` -> ``(B, T, H)``."""

    def __init__(self, *, n_layers: int, layer_norm_eps: float, **block):
        super().__init__()
        self.layers = nn.ModuleList(PreNormBlock(layer_norm_eps=layer_norm_eps, **block) for _ in range(n_layers))
        self.final_norm = nn.LayerNorm(block["hidden_size"], eps=layer_norm_eps)

    def forward(self, x: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x, attention_mask)
        return self.final_norm(x)
