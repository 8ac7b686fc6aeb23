"""RQ-VAE: k-means init, residual quantization, exact eval round trip, dead-code reset, bad inputs,
determinism, safetensors checkpoint."""
import numpy as np
import pytest
import torch

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize import RQVAE, ResidualQuantizer
from recbole_qbert.quantize.checkpoint import load_quantizer, save_quantizer
from recbole_qbert.quantize.kmeans import kmeans
from recbole_qbert.quantize.settings import load_settings
from recbole_qbert.quantize.train import assign_codes, level_stats, train_rqvae


pytestmark = pytest.mark.usefixtures("one_torch_thread")


def clustered(n_per=40, centres=((0, 0), (10, 0), (0, 10), (10, 10)), seed=0):
    g = torch.Generator().manual_seed(seed)
    c = torch.tensor(centres, dtype=torch.float32)
    x = c.repeat_interleave(n_per, 0) + 0.1 * torch.randn(len(c) * n_per, 2, generator=g)
    return x, c


def settings(**extra):
    return load_settings(overrides={"n_levels": 2, "codebook_size": 8, "code_dim": 8, "hidden_dims": [32],
                                    "epochs": 6, "batch_size": 32, "kmeans_iters": 10, **extra})


def test_kmeans_finds_clusters_and_is_deterministic():
    x, centres = clustered()
    found, assign = kmeans(x, 4, generator=torch.Generator().manual_seed(1))
    nearest = torch.cdist(centres, found).min(1).values
    assert (nearest < 0.1).all()
    assert torch.bincount(assign, minlength=4).tolist() == [40, 40, 40, 40]
    again, _ = kmeans(x, 4, generator=torch.Generator().manual_seed(1))
    assert torch.equal(found, again)


def test_kmeans_refuses_fewer_points_than_codes_and_nan():
    with pytest.raises(QBertError, match="3 items but 4 codes per level"):
        kmeans(torch.randn(3, 2), 4)
    with pytest.raises(QBertError, match="NaN"):
        kmeans(torch.tensor([[float("nan"), 0.0]] * 5), 2)


def test_residual_quantizer_init_codes_and_straight_through():
    x, _ = clustered()
    rq = ResidualQuantizer(n_levels=3, codebook_size=4, dim=2)
    rq.init_kmeans(x, generator=torch.Generator().manual_seed(0))
    assert bool(rq.initialized)
    xr = x.clone().requires_grad_(True)
    rq.train()
    quantized, codes, loss = rq(xr)
    assert codes.shape == (160, 3) and codes.dtype == torch.int64
    assert len(set(codes[:, 0].tolist())) == 4, "level 1 separates the four clusters"
    assert ((quantized - x).norm(dim=1) < 0.5).all()
    (quantized.sum() + loss).backward()
    assert xr.grad is not None and torch.isfinite(xr.grad).all(), "gradients pass straight through"
    assert rq.codebooks.grad is not None and rq.codebooks.grad.abs().sum() > 0


def test_eval_round_trip_is_exact():
    torch.manual_seed(0)
    model = RQVAE(in_dim=6, hidden_dims=[16], code_dim=4, n_levels=3, codebook_size=8)
    x = torch.randn(64, 6)
    model.fit_input_norm(x)
    model.quantizer.init_kmeans(model.latent(x).detach())
    model.eval()
    out = model(x)
    codes = model.encode(x)
    assert torch.equal(codes, out.codes)
    assert torch.equal(model.quantizer.lookup(codes), out.quantized), "quantized vector bit-identical"
    assert torch.equal(model.decode(codes), out.recon)


def test_keyword_only_defaults():
    with pytest.raises(TypeError):
        RQVAE(10)  # noqa  (positional arguments are refused)
    model = RQVAE(in_dim=10)
    q = model.quantizer
    assert (q.n_levels, q.codebook_size, q.dim, q.beta) == (3, 256, 32, 0.25)


def test_dead_code_reset_revives_unused_codes():
    x, _ = clustered()
    rq = ResidualQuantizer(n_levels=1, codebook_size=4, dim=2)
    rq.init_kmeans(x, generator=torch.Generator().manual_seed(0))
    rq.codebooks.data[0, 2:] = 1000.0  # two codes nobody chooses
    rq.train()
    rq(x)
    assert rq.usage[0, 2:].tolist() == [0, 0]
    reset = rq.reset_dead_codes(x, generator=torch.Generator().manual_seed(0))
    assert sorted(reset[0].tolist()) == [2, 3]
    assert (rq.codebooks.data[0, 2:].abs() < 20).all(), "moved onto data points"
    rq(x)
    assert (rq.usage[0] > 0).sum() >= 3, "revived codes are chosen again"


def test_training_uses_the_codebook_and_is_deterministic():
    x, _ = clustered(n_per=30, centres=[(i, (i * 7) % 5) for i in range(8)])
    x = torch.cat([x, torch.randn(len(x), 4, generator=torch.Generator().manual_seed(3))], 1).numpy()
    a = train_rqvae(x, settings())
    b = train_rqvae(x, settings())
    codes_a, codes_b = assign_codes(a.model, x).codes, assign_codes(b.model, x).codes
    assert np.array_equal(codes_a, codes_b), "same seed, same codes"
    assert level_stats(codes_a, [8, 8])[0]["used_codes"] >= 6
    c = train_rqvae(x, settings(seed=7))
    assert not np.array_equal(codes_a, assign_codes(c.model, x).codes)
    assert len(a.history) >= 2 and a.history[-1]["recon_loss"] < a.history[0]["recon_loss"]


@pytest.mark.parametrize("matrix, message", [
    (np.zeros((5, 4), np.float32), "5 items but codebook_size 8"),
    (np.full((20, 4), np.nan, np.float32), "20 rows hold NaN"),
    (np.zeros((20,), np.float32), "expected \\(items, dim\\)"),
])
def test_bad_training_inputs(matrix, message):
    with pytest.raises(QBertError, match=message):
        train_rqvae(matrix, settings())


def test_checkpoint_round_trip_without_pickle(tmp_path):
    x = np.random.default_rng(0).normal(size=(40, 6)).astype(np.float32)
    trained = train_rqvae(x, settings(epochs=1))
    save_quantizer(tmp_path / "q.safetensors", trained.model, {"dataset": "d"})
    model, meta = load_quantizer(tmp_path / "q.safetensors")
    assert meta["dataset"] == "d" and meta["model"]["n_levels"] == 2
    assert np.array_equal(assign_codes(model, x).codes, assign_codes(trained.model, x).codes)
    assert [p.name for p in tmp_path.iterdir()] == ["q.safetensors"]
    torch.save({"w": torch.ones(1)}, tmp_path / "p.safetensors")
    with pytest.raises(QBertError, match="not a readable safetensors"):
        load_quantizer(tmp_path / "p.safetensors")
    from safetensors.torch import save_file

    save_file({"w": torch.ones(1)}, str(tmp_path / "other.safetensors"), metadata={"format": "pt"})
    with pytest.raises(QBertError, match="not an RQ-VAE checkpoint"):
        load_quantizer(tmp_path / "other.safetensors")


def test_settings_reject_unknown_and_mistyped_keys(tmp_path):
    with pytest.raises(QBertError, match="unknown config key 'n_level' \\(did you mean 'n_levels'"):
        load_settings(overrides={"n_level": 3})
    with pytest.raises(QBertError, match=r"collision_strategy='ignore': expected str \(one of extra_level, reassign\)"):
        load_settings(overrides={"collision_strategy": "ignore"})
    (tmp_path / "q.yaml").write_text("codebook_size: many\n")
    with pytest.raises(QBertError, match="q.yaml: codebook_size='many': expected int >= 1"):
        load_settings([tmp_path / "q.yaml"])
    assert load_settings(overrides={"beta": 1})["beta"] == 1.0


def test_input_norm_none_is_reachable_from_the_command_line():
    from recbole_qbert.stage_config import parse_set_options

    assert load_settings(overrides=parse_set_options(["input_norm=none"]))["input_norm"] == "none"
    assert load_settings(overrides=parse_set_options(["threads=none"]))["threads"] is None


def test_declared_choices_are_the_code_s():
    """quantize.yaml lists the collision strategies and input norms the code has."""
    from recbole_qbert.quantize.collisions import STRATEGIES
    from recbole_qbert.quantize.rqvae import INPUT_NORMS
    from recbole_qbert.quantize.settings import DEFAULTS_FILE
    from recbole_qbert.value_types import declarations_in

    declared = declarations_in(DEFAULTS_FILE)
    assert declared["collision_strategy"].choices == STRATEGIES and declared["input_norm"].choices == INPUT_NORMS
