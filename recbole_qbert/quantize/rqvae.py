"""RQ-VAE: MLP encoder -> residual quantizer -> MLP decoder (stage 2 of Q-BERT4Rec).

An item's feature vector is normalised (statistics fitted once on the training items and saved with
the model, so new items are encoded the same way), encoded to ``code_dim``, quantized over ``n_levels``
levels of ``codebook_size`` codes, and decoded back. The training loss is the reconstruction MSE (in
normalised input space) plus the quantizer's codebook and ``beta``-weighted commitment terms.

``encode(x)`` gives the codes ``(n, n_levels)``; ``decode(codes)`` the reconstruction. In eval mode,
``decode(encode(x))`` equals ``forward(x).recon`` exactly, because both decode the same sum of codes.
"""
from typing import List, NamedTuple, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.residual import ResidualQuantizer

INPUT_NORMS = ("standard", "l2", "l2+standard", "none")


class RQVAEOutput(NamedTuple):
    recon: torch.Tensor       # (B, in_dim) reconstruction, in normalised input space
    target: torch.Tensor      # (B, in_dim) the normalised input it reconstructs
    latent: torch.Tensor      # (B, code_dim) encoder output
    quantized: torch.Tensor   # (B, code_dim) sum of the chosen codes
    codes: torch.Tensor       # (B, n_levels) int64
    loss: torch.Tensor        # recon_loss + rq_loss
    recon_loss: torch.Tensor
    rq_loss: torch.Tensor


def mlp(sizes: Sequence[int], dropout: float) -> nn.Sequential:
    layers: List[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.SiLU())
            if dropout > 0:
                layers.append(nn.Dropout(dropout))
    return nn.Sequential(*layers)


class RQVAE(nn.Module):
    def __init__(self, *, in_dim: int, hidden_dims: Sequence[int] = (512, 256, 128), code_dim: int = 32,
                 n_levels: int = 3, codebook_size: int = 256, beta: float = 0.25, dropout: float = 0.0,
                 input_norm: str = "standard"):
        super().__init__()
        if in_dim < 1 or code_dim < 1:
            raise QBertError(f"RQ-VAE: in_dim ({in_dim}) and code_dim ({code_dim}) must be at least 1")
        if input_norm not in INPUT_NORMS:
            raise QBertError(f"RQ-VAE: input_norm must be one of {list(INPUT_NORMS)}, got {input_norm!r}")
        hidden_dims = [int(h) for h in hidden_dims]
        if any(h < 1 for h in hidden_dims):
            raise QBertError(f"RQ-VAE: hidden_dims must be positive, got {hidden_dims}")
        self.init_args = {"in_dim": int(in_dim), "hidden_dims": hidden_dims, "code_dim": int(code_dim),
                          "n_levels": int(n_levels), "codebook_size": int(codebook_size), "beta": float(beta),
                          "dropout": float(dropout), "input_norm": input_norm}
        self.input_norm = input_norm
        self.encoder = mlp([in_dim, *hidden_dims, code_dim], dropout)
        self.decoder = mlp([code_dim, *reversed(hidden_dims), in_dim], dropout)
        self.quantizer = ResidualQuantizer(n_levels=n_levels, codebook_size=codebook_size, dim=code_dim,
                                           beta=beta)
        self.register_buffer("input_mean", torch.zeros(in_dim))
        self.register_buffer("input_scale", torch.ones(in_dim))

    @property
    def n_levels(self) -> int:
        return self.quantizer.n_levels

    @property
    def codebook_size(self) -> int:
        return self.quantizer.codebook_size

    # --- input normalisation ----------------------------------------------------------------------
    def _row_norm(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_norm.startswith("l2"):
            return F.normalize(x, dim=1)
        return x

    @torch.no_grad()
    def fit_input_norm(self, x: torch.Tensor) -> None:
        """Fit the per-dimension mean and scale of ``standard`` normalisation on the training items."""
        self._check_input(x)
        if self.input_norm in ("standard", "l2+standard"):
            rows = self._row_norm(x.float())
            self.input_mean.copy_(rows.mean(0))
            self.input_scale.copy_(rows.std(0, unbiased=False).clamp_min(1e-6))

    def normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (self._row_norm(x) - self.input_mean) / self.input_scale

    def _check_input(self, x: torch.Tensor) -> None:
        if x.ndim != 2 or x.shape[1] != self.init_args["in_dim"]:
            raise QBertError(f"RQ-VAE: input has shape {tuple(x.shape)}, the model expects "
                             f"(n, {self.init_args['in_dim']})")
        if not torch.isfinite(x).all():
            raise QBertError("RQ-VAE: input holds NaN or inf values")

    # --- model --------------------------------------------------------------------------------------
    def latent(self, x: torch.Tensor) -> torch.Tensor:
        """Encoder output for raw (unnormalised) inputs."""
        return self.encoder(self.normalise(x))

    def forward(self, x: torch.Tensor) -> RQVAEOutput:
        self._check_input(x)
        target = self.normalise(x)
        z = self.encoder(target)
        quantized, codes, rq_loss = self.quantizer(z)
        recon = self.decoder(quantized)
        recon_loss = F.mse_loss(recon, target)
        return RQVAEOutput(recon, target, z, quantized, codes, recon_loss + rq_loss, recon_loss, rq_loss)

    @torch.no_grad()
    def encode(self, x: torch.Tensor) -> torch.Tensor:
        """Codes ``(n, n_levels)`` of raw inputs ``x`` (no gradients, whatever the mode)."""
        self._check_input(x)
        codes, _ = self.quantizer.residuals(self.latent(x))
        return codes

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Reconstruction (normalised input space) of ``codes`` ``(n, n_levels)``."""
        return self.decoder(self.quantizer.lookup(codes))
