"""DynamicCrossModalFusion: shapes, masks (absent views are never content), gates and the fixed-depth switch."""
import pytest
import torch

from recbole_qbert.fusion import DynamicCrossModalFusion

DIMS = [4, 6, 8]


@pytest.fixture(autouse=True)
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def model(**kwargs):
    torch.manual_seed(0)
    args = dict(num_items=10, view_dims=DIMS, shared_dim=16, num_layers=3, num_heads=2, ffn_dim=32, dropout=0.0)
    return DynamicCrossModalFusion(**{**args, **kwargs}).eval()


def batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    items = torch.arange(5)
    feats = [torch.randn(5, d, generator=g) for d in DIMS]
    mask = torch.tensor([[1, 1, 1], [1, 0, 1], [0, 0, 1], [0, 0, 0], [1, 1, 0]], dtype=torch.bool)
    return items, feats, mask


def test_shapes_and_ranges():
    out = model()(*batch())
    assert out.fused.shape == (5, 16) and out.views.shape == (5, 3, 16) and out.continue_probs.shape == (5, 3)
    torch.testing.assert_close(out.fused.norm(dim=1), torch.ones(5))
    weights = out.align_weights
    torch.testing.assert_close(weights.sum(dim=1), torch.tensor([1.0, 1.0, 1.0, 0.0, 1.0]))
    assert (weights[~batch()[2]] == 0).all(), "absent views get no alignment weight"
    p = out.continue_probs
    assert ((p > 0) & (p <= 1)).all() and (p[:, 1:] <= p[:, :-1] + 1e-7).all(), "p_l is non-increasing"
    assert ((out.expected_depth >= 0) & (out.expected_depth <= 3)).all()
    assert set(out.used_depth.tolist()) <= {0, 1, 2, 3}
    torch.testing.assert_close(out.expected_depth, p.sum(dim=1))


def test_item_without_any_view_is_finite_and_absent_content_is_never_read():
    m = model()
    items, feats, mask = batch()
    out = m(items, feats, mask)
    assert torch.isfinite(out.fused).all() and not out.views[3].any()
    garbage = [f.clone() for f in feats]
    for v in range(3):
        garbage[v][~mask[:, v]] = float("nan") if v == 0 else 1e6
    again = m(items, garbage, mask)
    torch.testing.assert_close(again.fused, out.fused)
    # gradients stay finite with NaN in absent rows
    m.train()
    res = m(items, garbage, mask)
    (res.fused.sum() + res.expected_depth.sum()).backward()
    assert all(torch.isfinite(p.grad).all() for p in m.parameters() if p.grad is not None)


def test_a_present_view_changes_the_output():
    m = model()
    items, feats, mask = batch()
    out = m(items, feats, mask)
    changed = [f.clone() for f in feats]
    changed[2][0] = torch.randn(8, generator=torch.Generator().manual_seed(9))
    after = m(items, changed, mask)
    assert not torch.allclose(after.fused[0], out.fused[0])
    torch.testing.assert_close(after.fused[1:], out.fused[1:])


@pytest.mark.parametrize("depth", [0, 1, 3])
def test_fixed_depth_switch(depth):
    m = model(fixed_depth=depth)
    out = m(*batch())
    assert out.continue_probs.tolist() == [[1.0] * depth + [0.0] * (3 - depth)] * 5
    assert out.expected_depth.tolist() == [float(depth)] * 5 and out.used_depth.tolist() == [depth] * 5


def test_fixed_depth_runs_only_the_first_blocks():
    shallow, deep = model(fixed_depth=1)(*batch()), model(fixed_depth=3)(*batch())
    assert not torch.allclose(shallow.fused, deep.fused)
    m = model(fixed_depth=1)
    with torch.no_grad():
        for block in m.blocks[1:]:
            for p in block.parameters():
                p.add_(torch.randn_like(p))
    torch.testing.assert_close(m(*batch()).fused, shallow.fused)


def test_gates_decide_depth():
    m = model(gate_bias_init=-6.0)
    assert m(*batch()).used_depth.tolist() == [0] * 5, "closed gates: items stop at once"
    open_ = model(gate_bias_init=8.0)(*batch())
    assert open_.used_depth.tolist() == [3] * 5 and (open_.expected_depth > 2.9).all()


def test_deterministic_under_seed():
    items, feats, mask = batch()
    a, b = model(dropout=0.1).train(), model(dropout=0.1).train()
    torch.manual_seed(5)
    out_a = a(items, feats, mask).fused
    torch.manual_seed(5)
    torch.testing.assert_close(b(items, feats, mask).fused, out_a)


@pytest.mark.parametrize("kwargs, message", [
    ({"shared_dim": 15}, "divisible"), ({"fixed_depth": 4}, "fixed_depth"),
    ({"view_dims": []}, "at least one view"), ({"align_temperature": 0.0}, "positive")])
def test_bad_arguments_are_refused(kwargs, message):
    with pytest.raises(ValueError, match=message):
        model(**kwargs)


def test_a_batch_with_the_wrong_number_of_views_is_refused():
    items, feats, mask = batch()
    with pytest.raises(ValueError, match="expected 3 views"):
        model()(items, feats[:2], mask)
