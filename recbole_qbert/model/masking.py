"""Masking strategies for multi-mask pretraining, in a registry.

Every strategy maps a batch of left-aligned item sequences to a boolean mask of the positions to hide,
vectorised over the batch. All of them keep three invariants (tested for every registered strategy):

* only real items are masked, never padding;
* every sequence has at least one masked position;
* a sequence of two or more items keeps at least one position visible.

Tensor shapes: ``lengths`` ``(B,)`` long, number of real items per row (>= 1); the returned mask is
``(B, L)`` bool, ``True`` where the item is replaced by the mask token.
"""
import math
from typing import Dict, Mapping

import torch

from recbole_qbert.errors import QBertError

MASKING_STRATEGIES: Dict[str, "MaskingStrategy"] = {}


class MaskingStrategy:
    """Base class: ``name`` in the registry, ``__call__(lengths, max_len, generator)``."""

    name = ""

    def __call__(self, lengths: torch.Tensor, max_len: int, generator: torch.Generator) -> torch.Tensor:
        raise NotImplementedError


def register(cls):
    """Class decorator adding a strategy to :data:`MASKING_STRATEGIES` under ``cls.name``."""
    MASKING_STRATEGIES[cls.name] = cls
    return cls


def _positions(lengths: torch.Tensor, max_len: int) -> torch.Tensor:
    return torch.arange(max_len, device=lengths.device).unsqueeze(0).expand(len(lengths), -1)


def _uniform(lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    return torch.rand(len(lengths), generator=generator, device=lengths.device)


def _geometric(p: float, size: int, generator: torch.Generator, device) -> torch.Tensor:
    """Span lengths ``>= 1`` with P(k) = (1 - p)^(k-1) p, mean 1/p."""
    u = torch.rand(size, generator=generator, device=device).clamp_min(1e-12)
    return (torch.log(u) / math.log1p(-p)).floor().long() + 1


def _span_mask(start: torch.Tensor, length: torch.Tensor, max_len: int) -> torch.Tensor:
    pos = _positions(start, max_len)
    return (pos >= start.unsqueeze(1)) & (pos < (start + length).unsqueeze(1))


def enforce_invariants(mask: torch.Tensor, lengths: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Mask one random real item where none is masked; unmask one where all of 2+ items are masked."""
    valid = _positions(lengths, mask.shape[1]) < lengths.unsqueeze(1)
    mask = mask & valid
    rows = torch.arange(len(lengths), device=lengths.device)
    pick = (_uniform(lengths, generator) * lengths).long().clamp_max(lengths - 1)
    none = mask.sum(1) == 0
    mask[rows[none], pick[none]] = True
    every = (mask.sum(1) == lengths) & (lengths >= 2)
    mask[rows[every], pick[every]] = False
    return mask


@register
class RandomMask(MaskingStrategy):
    """BERT's cloze task: each item is masked independently with probability ``ratio``."""

    name = "random"

    def __init__(self, *, ratio: float = 0.2):
        if not 0 < ratio < 1:
            raise QBertError(f"masking 'random': ratio must be in (0, 1), got {ratio}")
        self.ratio = ratio

    def __call__(self, lengths, max_len, generator):
        draw = torch.rand(len(lengths), max_len, generator=generator, device=lengths.device)
        return enforce_invariants(draw < self.ratio, lengths, generator)


@register
class SpanMask(MaskingStrategy):
    """One contiguous run of items, geometric length with mean ``mean_length``, at most ``max_ratio``
    of the sequence."""

    name = "span"

    def __init__(self, *, mean_length: float = 3.0, max_ratio: float = 0.5):
        if mean_length < 1 or not 0 < max_ratio < 1:
            raise QBertError(f"masking 'span': need mean_length >= 1 and max_ratio in (0, 1), got "
                             f"{mean_length}, {max_ratio}")
        self.p = 1.0 / mean_length
        self.max_ratio = max_ratio

    def __call__(self, lengths, max_len, generator):
        cap = (lengths.float() * self.max_ratio).floor().long().clamp_min(1)
        length = torch.minimum(_geometric(self.p, len(lengths), generator, lengths.device), cap)
        start = (_uniform(lengths, generator) * (lengths - length + 1)).long()
        return enforce_invariants(_span_mask(start, length, max_len), lengths, generator)


@register
class TailMask(MaskingStrategy):
    """The last ``k`` items, ``k`` uniform in ``1..max_k``: next-few-items prediction."""

    name = "tail"

    def __init__(self, *, max_k: int = 3):
        if max_k < 1:
            raise QBertError(f"masking 'tail': max_k must be >= 1, got {max_k}")
        self.max_k = max_k

    def __call__(self, lengths, max_len, generator):
        k = torch.randint(1, self.max_k + 1, (len(lengths),), generator=generator, device=lengths.device)
        k = torch.minimum(k, (lengths - 1).clamp_min(1))
        return enforce_invariants(_span_mask(lengths - k, k, max_len), lengths, generator)


@register
class MultiRegionMask(MaskingStrategy):
    """Several disjoint spans: the sequence is cut into ``regions`` equal segments (drawn from
    ``min_regions..max_regions``) and each gets a geometric span that leaves one of its items visible."""

    name = "multi_region"

    def __init__(self, *, min_regions: int = 2, max_regions: int = 3, mean_length: float = 2.0):
        if not 1 <= min_regions <= max_regions or mean_length < 1:
            raise QBertError(f"masking 'multi_region': need 1 <= min_regions <= max_regions and "
                             f"mean_length >= 1, got {min_regions}, {max_regions}, {mean_length}")
        self.min_regions, self.max_regions = min_regions, max_regions
        self.p = 1.0 / mean_length

    def __call__(self, lengths, max_len, generator):
        device = lengths.device
        regions = torch.randint(self.min_regions, self.max_regions + 1, (len(lengths),), generator=generator,
                                device=device)
        mask = torch.zeros(len(lengths), max_len, dtype=torch.bool, device=device)
        for j in range(self.max_regions):  # at most a few segments; each is vectorised over the batch
            seg_start = lengths * j // regions
            seg_len = lengths * (j + 1) // regions - seg_start
            active = j < regions
            length = torch.minimum(_geometric(self.p, len(lengths), generator, device), (seg_len - 1).clamp_min(0))
            offset = (_uniform(lengths, generator) * (seg_len - length + 1).clamp_min(1)).long()
            mask |= _span_mask(seg_start + offset, torch.where(active, length, 0), max_len)
        return enforce_invariants(mask, lengths, generator)


@register
class LastMask(MaskingStrategy):
    """Only the last item: next-item prediction, as at inference. Used for fine-tuning."""

    name = "last"

    def __call__(self, lengths, max_len, generator):
        return _span_mask(lengths - 1, torch.ones_like(lengths), max_len)


def mask_generator(config, device) -> torch.Generator:
    """The generator masks are drawn from, seeded by the run's seed; each distributed rank draws its own."""
    generator = torch.Generator(device=device)
    generator.manual_seed(int(config["seed"]) + int(config["local_rank"] or 0))
    return generator


class GeneratorStateMixin:
    """Keeps a model's ``generator`` (masks, sampled negatives) in its state dict (``_extra_state``), so
    a run resumed from a checkpoint draws what a straight run would have drawn."""

    def get_extra_state(self) -> dict:
        return {"mask_rng": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["mask_rng"].cpu())  # a CPU byte tensor, even on a GPU run


def build_strategy(name: str, options: Mapping = None) -> MaskingStrategy:
    if name not in MASKING_STRATEGIES:
        raise QBertError(f"unknown masking strategy '{name}' (registered: {', '.join(sorted(MASKING_STRATEGIES))})")
    try:
        return MASKING_STRATEGIES[name](**dict(options or {}))
    except TypeError as e:
        raise QBertError(f"masking '{name}': {e}") from None


class MaskMixture:
    """Draws one strategy per sequence with the given weights and applies it.

    ``weights``: ``{strategy name: weight}``; ``options``: ``{strategy name: {keyword: value}}``.
    """

    def __init__(self, weights: Mapping[str, float], options: Mapping[str, Mapping] = None):
        weights = {k: float(v) for k, v in dict(weights).items() if float(v) > 0}
        if not weights:
            raise QBertError("mask_strategies: at least one strategy needs a positive weight")
        options = dict(options or {})
        unused = set(options) - set(MASKING_STRATEGIES)
        if unused:
            raise QBertError(f"mask_options: unknown masking strategy '{sorted(unused)[0]}'")
        self.strategies = [build_strategy(name, options.get(name)) for name in weights]
        self.probs = torch.tensor(list(weights.values())) / sum(weights.values())

    def __call__(self, lengths: torch.Tensor, max_len: int, generator: torch.Generator) -> torch.Tensor:
        if len(self.strategies) == 1:
            return self.strategies[0](lengths, max_len, generator)
        probs = self.probs.to(generator.device)
        choice = torch.multinomial(probs, len(lengths), replacement=True, generator=generator).to(lengths.device)
        mask = torch.zeros(len(lengths), max_len, dtype=torch.bool, device=lengths.device)
        for k, strategy in enumerate(self.strategies):
            rows = choice == k
            if rows.any():
                mask[rows] = strategy(lengths[rows], max_len, generator)
        return mask
