"""Invariants of every registered masking strategy, and the mixture drawn per sequence."""
import pytest
import torch

from recbole_qbert.errors import QBertError
from recbole_qbert.model.masking import MASKING_STRATEGIES, MaskMixture, build_strategy

MAX_LEN = 12


def batch(seed=0, n=512):
    g = torch.Generator().manual_seed(seed)
    lengths = torch.randint(1, MAX_LEN + 1, (n,), generator=g)
    lengths[:MAX_LEN] = torch.arange(1, MAX_LEN + 1)  # every length at least once
    return lengths, g


@pytest.fixture(params=sorted(MASKING_STRATEGIES))
def strategy(request):
    return build_strategy(request.param)


def test_shape_and_dtype(strategy):
    lengths, g = batch()
    mask = strategy(lengths, MAX_LEN, g)
    assert mask.shape == (len(lengths), MAX_LEN) and mask.dtype == torch.bool


def test_only_real_items_are_masked(strategy):
    lengths, g = batch()
    mask = strategy(lengths, MAX_LEN, g)
    padding = torch.arange(MAX_LEN).unsqueeze(0) >= lengths.unsqueeze(1)
    assert not (mask & padding).any()


def test_at_least_one_masked(strategy):
    lengths, g = batch()
    assert (strategy(lengths, MAX_LEN, g).sum(1) >= 1).all()


def test_not_all_masked_when_two_or_more_items(strategy):
    lengths, g = batch()
    counts = strategy(lengths, MAX_LEN, g).sum(1)
    assert (counts[lengths >= 2] < lengths[lengths >= 2]).all()


def test_deterministic_under_a_seed(strategy):
    lengths, _ = batch()
    a = strategy(lengths, MAX_LEN, torch.Generator().manual_seed(5))
    b = strategy(lengths, MAX_LEN, torch.Generator().manual_seed(5))
    assert torch.equal(a, b)


def test_last_masks_only_the_last_position():
    lengths, g = batch()
    mask = build_strategy("last")(lengths, MAX_LEN, g)
    assert (mask.sum(1) == 1).all()
    assert mask[torch.arange(len(lengths)), lengths - 1].all()


def runs_per_row(mask):
    """Number of maximal runs of masked positions in each row."""
    return (mask[:, 1:] & ~mask[:, :-1]).sum(1) + mask[:, 0].long()


def test_span_is_one_run_within_its_cap_with_the_truncated_geometric_mean():
    n = 2000
    span = build_strategy("span", {"mean_length": 3.0, "max_ratio": 0.5})(
        torch.full((n,), 10), MAX_LEN, torch.Generator().manual_seed(0))
    assert (runs_per_row(span) == 1).all()
    size = span.sum(1).float()
    assert size.max() <= 5, "at most max_ratio of the 10 items"
    # E[min(G, 5)] for G geometric with p = 1/3: sum over k < 5 of P(G > k) = sum (2/3)^k
    expected = sum((2 / 3) ** k for k in range(5))
    assert abs(size.mean().item() - expected) < 4 * size.std().item() / n ** 0.5


def test_tail_masks_the_last_k_items():
    tail = build_strategy("tail", {"max_k": 3})(torch.full((2000,), 10), MAX_LEN, torch.Generator().manual_seed(0))
    k = tail.sum(1)
    assert set(k.tolist()) == {1, 2, 3}
    assert torch.equal(tail, (torch.arange(MAX_LEN) >= 10 - k.unsqueeze(1)) & (torch.arange(MAX_LEN) < 10))


@pytest.mark.parametrize("regions, segments", [(2, [(0, 5), (5, 10)]), (3, [(0, 3), (3, 6), (6, 10)])])
def test_multi_region_masks_part_of_every_segment(regions, segments):
    """Ten items cut into ``regions`` equal segments: each holds a span and keeps an item visible."""
    multi = build_strategy("multi_region", {"min_regions": regions, "max_regions": regions})(
        torch.full((2000,), 10), MAX_LEN, torch.Generator().manual_seed(0))
    for lo, hi in segments:
        masked = multi[:, lo:hi].sum(1)
        assert (masked >= 1).all() and (masked < hi - lo).all(), (lo, hi)
    assert (runs_per_row(multi) <= regions).all()
    assert (runs_per_row(multi) >= 2).float().mean() > 0.8, "spans of neighbouring segments rarely touch"


def test_random_masks_each_item_with_its_ratio():
    rnd = build_strategy("random", {"ratio": 0.2})(torch.full((4000,), MAX_LEN), MAX_LEN,
                                                   torch.Generator().manual_seed(0))
    assert abs(rnd.float().mean().item() - 0.2) < 0.02


@pytest.mark.parametrize("weights", [{"tail": 1, "last": 1}, {"tail": 1, "last": 3}])
def test_mixture_draws_one_strategy_per_sequence_by_weight(weights):
    """Every mask here is a tail of k = 1..3 items: 'last' gives k = 1, 'tail' each k with probability 1/3.
    The shares of k must match within 4 binomial standard deviations."""
    n = 4000
    lengths = torch.full((n,), 10)
    mask = MaskMixture(weights)(lengths, MAX_LEN, torch.Generator().manual_seed(0))
    k = mask.sum(1)
    positions = torch.arange(MAX_LEN)
    assert torch.equal(mask, (positions >= 10 - k.unsqueeze(1)) & (positions < 10)), "a tail of the real items"
    p_last = weights["last"] / sum(weights.values())
    for size, expected in ((1, p_last + (1 - p_last) / 3), (2, (1 - p_last) / 3), (3, (1 - p_last) / 3)):
        tolerance = 4 * (expected * (1 - expected) / n) ** 0.5
        assert abs((k == size).float().mean().item() - expected) < tolerance, (size, expected)


@pytest.mark.parametrize("make, message", [
    (lambda: build_strategy("nope"), "unknown masking strategy 'nope'"),
    (lambda: build_strategy("random", {"ratio": 1.0}), "ratio must be in \\(0, 1\\)"),
    (lambda: build_strategy("random", {"rate": 0.1}), "masking 'random': .*rate"),
    (lambda: MaskMixture({"random": 0}), "at least one strategy"),
    (lambda: MaskMixture({"random": 1}, {"spam": {}}), "unknown masking strategy 'spam'"),
])
def test_configurations_that_would_mask_nothing_or_everything_fail(make, message):
    with pytest.raises(QBertError, match=message):
        make()
