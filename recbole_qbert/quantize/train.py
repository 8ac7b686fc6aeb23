"""Train an RQ-VAE on a feature matrix, assign codes, and measure the quantization.

Everything random (weights, k-means, shuffling, dropout, dead-code resets) is seeded from
``settings['seed']`` inside a forked RNG, so the caller's random state is untouched and the same seed
gives the same codes, bit for bit, on the same machine and thread count.
"""
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

import numpy as np
import torch

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.kmeans import squared_distances
from recbole_qbert.quantize.rqvae import RQVAE

CHUNK = 4096


def as_matrix(matrix) -> torch.Tensor:
    """A float32 ``(n, d)`` tensor; NaN/inf or a wrong shape is a one-line error."""
    x = torch.as_tensor(np.asarray(matrix, dtype=np.float32))
    if x.ndim != 2 or x.shape[0] == 0 or x.shape[1] == 0:
        raise QBertError(f"feature matrix has shape {tuple(x.shape)}, expected (items, dim) with both > 0")
    bad = ~torch.isfinite(x).all(1)
    if bad.any():
        raise QBertError(f"feature matrix: {int(bad.sum())} rows hold NaN or inf (first: row "
                         f"{int(bad.nonzero()[0])}); fix the features before quantizing")
    return x


def build_model(in_dim: int, settings: Dict) -> RQVAE:
    return RQVAE(in_dim=in_dim, hidden_dims=settings["hidden_dims"], code_dim=settings["code_dim"],
                 n_levels=settings["n_levels"], codebook_size=settings["codebook_size"], beta=settings["beta"],
                 dropout=settings["dropout"], input_norm=settings["input_norm"])


@dataclass
class TrainResult:
    model: RQVAE
    history: List[Dict] = field(default_factory=list)
    resets_per_level: List[int] = field(default_factory=list)
    seconds: float = 0.0


@torch.no_grad()
def _latent(model: RQVAE, x: torch.Tensor) -> torch.Tensor:
    return torch.cat([model.latent(x[i:i + CHUNK]) for i in range(0, len(x), CHUNK)])


def train_rqvae(matrix, settings: Dict, *, log: Optional[Callable[[str], None]] = None) -> TrainResult:
    """Fit normalisation, initialise codebooks by k-means, then train with AdamW and dead-code resets."""
    x = as_matrix(matrix)
    n, k = x.shape[0], settings["codebook_size"]
    if n < k:
        raise QBertError(f"{n} items but codebook_size {k}: a level cannot have more codes than there are "
                         f"items; set codebook_size to at most {n}")
    start = time.perf_counter()
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(settings["seed"])
        generator = torch.Generator().manual_seed(settings["seed"])
        model = build_model(x.shape[1], settings)
        model.fit_input_norm(x)
        model.eval()
        model.quantizer.init_kmeans(_latent(model, x), generator=generator, n_iter=settings["kmeans_iters"])

        codebooks = model.quantizer.codebooks
        others = [p for p in model.parameters() if p is not codebooks]
        opt = torch.optim.AdamW([{"params": others, "weight_decay": settings["weight_decay"]},
                                 {"params": [codebooks], "weight_decay": 0.0}], lr=settings["learning_rate"])
        epochs, batch = settings["epochs"], settings["batch_size"]
        reset_epochs = min(int(round(epochs * settings["dead_code_reset_until"])), epochs - 1)
        log_every = max(1, epochs // 10)
        history: List[Dict] = []
        total_resets = [0] * model.n_levels
        for epoch in range(epochs):
            model.train()
            model.quantizer.usage.zero_()
            perm = torch.randperm(n, generator=generator)
            sums = {"loss": 0.0, "recon_loss": 0.0, "rq_loss": 0.0}
            for s in range(0, n, batch):
                idx = perm[s:s + batch]
                out = model(x[idx])
                opt.zero_grad(set_to_none=True)
                out.loss.backward()
                opt.step()
                for key in sums:
                    sums[key] += getattr(out, key).item() * len(idx)
            means = {key: v / n for key, v in sums.items()}
            if not math.isfinite(means["loss"]):
                raise QBertError(f"RQ-VAE training diverged at epoch {epoch} (loss {means['loss']}); "
                                 "lower learning_rate")
            resets = [0] * model.n_levels
            if settings["dead_code_reset"] and epoch < reset_epochs:
                model.eval()
                dead = model.quantizer.reset_dead_codes(_latent(model, x), generator=generator,
                                                        threshold=settings["dead_code_threshold"])
                state = opt.state.get(codebooks, {})
                for level, idx in enumerate(dead):
                    resets[level] = int(len(idx))
                    total_resets[level] += int(len(idx))
                    for key in ("exp_avg", "exp_avg_sq"):
                        if key in state and len(idx):
                            state[key][level, idx] = 0.0
            if epoch % log_every == 0 or epoch == epochs - 1:
                entry = {"epoch": epoch, **{key: round(v, 6) for key, v in means.items()}, "resets": resets}
                history.append(entry)
                if log:
                    log(f"epoch {epoch:4d}  loss {means['loss']:.4f}  recon {means['recon_loss']:.4f}  "
                        f"rq {means['rq_loss']:.4f}  dead codes reset {resets}")
    model.eval()
    return TrainResult(model, history, total_resets, time.perf_counter() - start)


@dataclass
class Assignment:
    codes: np.ndarray        # (n, L) int64, before collision resolution
    priority: np.ndarray     # (n,) squared quantization error of the latent (lower = better represented)
    candidates: np.ndarray   # (n, K) last-level codes from nearest to farthest


@torch.no_grad()
def assign_codes(model: RQVAE, matrix) -> Assignment:
    """Codes of every row of ``matrix`` with the trained (eval-mode) model."""
    model.eval()
    x = as_matrix(matrix)
    codes, priority, candidates = [], [], []
    for i in range(0, len(x), CHUNK):
        z = model.latent(x[i:i + CHUNK])
        c, residuals = model.quantizer.residuals(z)
        last = model.quantizer.codebooks[-1]
        candidates.append(squared_distances(residuals[-1], last).argsort(dim=1, stable=True))
        priority.append(((z - model.quantizer.lookup(c)) ** 2).sum(1))
        codes.append(c)
    return Assignment(torch.cat(codes).numpy(), torch.cat(priority).double().numpy(),
                      torch.cat(candidates).numpy())


def level_stats(codes: np.ndarray, codebook_sizes: List[int]) -> List[Dict]:
    """Per level: codes used, utilisation (used / K) and perplexity (exp of the code entropy)."""
    out = []
    for level, k in enumerate(codebook_sizes):
        counts = np.bincount(codes[:, level], minlength=k).astype(np.float64)
        p = counts[counts > 0] / counts.sum()
        perplexity = float(np.exp(-(p * np.log(p)).sum()))
        out.append({"level": level + 1, "codebook_size": int(k), "used_codes": int((counts > 0).sum()),
                    "utilisation": round(float((counts > 0).mean()), 4), "perplexity": round(perplexity, 2),
                    "largest_code_share": round(float(counts.max() / counts.sum()), 4)})
    return out


@torch.no_grad()
def reconstruction_stats(model: RQVAE, matrix, codes: np.ndarray) -> Dict:
    """Reconstruction error of ``decode(codes)`` against the normalised input, and the latent's
    quantization error."""
    model.eval()
    x = as_matrix(matrix)
    sse = sst = cos = zsse = zsst = 0.0
    for i in range(0, len(x), CHUNK):
        target = model.normalise(x[i:i + CHUNK])
        c = torch.as_tensor(codes[i:i + CHUNK])
        recon = model.decode(c)
        sse += float(((recon - target) ** 2).sum())
        sst += float(((target - target.mean(0)) ** 2).sum())
        cos += float(torch.nn.functional.cosine_similarity(recon, target, dim=1).sum())
        z = model.encoder(target)
        zsse += float(((z - model.quantizer.lookup(c)) ** 2).sum())
        zsst += float((z ** 2).sum())
    n, d = x.shape
    return {
        "mse": round(sse / (n * d), 6),                       # per element, normalised input space
        "relative_error": round(sse / max(sst, 1e-12), 6),    # SSE / total variance (1 - R^2)
        "mean_cosine": round(cos / n, 6),
        "latent_relative_error": round(zsse / max(zsst, 1e-12), 6),  # ||z - q||^2 / ||z||^2
        "space": f"input normalised by '{model.input_norm}'",
    }
