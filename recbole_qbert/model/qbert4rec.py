r"""
QBERT4Rec
################################################

Reference:
    Huang & Gai. "Quantized Semantic-ID Representation Learning for Multimodal Recommendation"
    (Q-BERT4Rec). arXiv 2512.02474.
    Sun et al. "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
    Transformer." CIKM 2019 (the backbone).

A bidirectional transformer over sequences of items, where each item enters as the sum of one
embedding per semantic-ID level (its code tuple from stage 2) instead of a free ID vector; an optional
ID embedding can be added on top. The whole catalogue is scored by dot product (or, with
``score_temperature``, scaled cosine) with the same composed item embeddings, so an item that has codes
but was never trained on can still be recommended.

Training works on one sequence per user (``QBERT4RecDataset``): the user's training history (its last
``MAX_ITEM_LIST_LENGTH`` items) with the target appended, of which the masking strategy hides several
positions. In pretraining one strategy is drawn per sequence from ``mask_strategies`` (random cloze,
span, tail, multi-region); in fine-tuning only the last position is masked, exactly as at inference. With
``finetune_from`` one run does both: it pretrains, then switches to fine-tuning once that share of its
epochs or time budget is spent (the trainer reports progress through
:meth:`QBERT4Rec.on_training_progress`). ``seen_item_bias`` learns one score offset for the items a
sequence visibly holds
(:class:`~recbole_qbert.model.semantic_items.SemanticItemsMixin`). ``transformer_norm: pre`` swaps BERT's
post-norm layers for pre-norm ones (:mod:`recbole_qbert.model.prenorm`), as QSASRec can.
``next_item_loss_weight`` adds, beside the masked loss, SASRec's objective on the same encoder: a second pass
over the unmasked sequence under causal attention predicts every item from the ones before it, so every item
is a target each epoch (the cloze task teaches only the items it hides). Inference stays bidirectional.
"""
import torch
from recbole.model.abstract_recommender import SequentialRecommender
from recbole.model.layers import TransformerEncoder
from recbole.utils import InputType
from torch import nn

from recbole_qbert.errors import QBertError
from recbole_qbert.model.masking import GeneratorStateMixin, MaskMixture, build_strategy, mask_generator
from recbole_qbert.model.length_buckets import encode_by_length
from recbole_qbert.model.prenorm import PreNormTransformer
from recbole_qbert.model.pretrained import load_pretrained_from_config
from recbole_qbert.data.qbert4rec_dataset import QBERT4RecDataset
from recbole_qbert.model.semantic_items import SemanticItemsMixin

TRAIN_STAGES = ("pretrain", "finetune")


class QBERT4Rec(GeneratorStateMixin, SemanticItemsMixin, SequentialRecommender):
    input_type = InputType.POINTWISE
    dataset_class = QBERT4RecDataset

    def __init__(self, config, dataset):
        super().__init__(config, dataset)
        self.hidden_size = config["hidden_size"]
        self.train_stage = config["train_stage"]
        if self.train_stage not in TRAIN_STAGES:
            raise QBertError(f"train_stage must be one of {TRAIN_STAGES}, got '{self.train_stage}'")
        if config["loss_type"] != "CE":
            raise QBertError(f"QBERT4Rec trains with loss_type CE only, got '{config['loss_type']}'")

        self.build_item_tables(config, dataset)
        self.mask_embedding = nn.Parameter(torch.zeros(self.hidden_size))
        # history (<= MAX_ITEM_LIST_LENGTH items) plus the slot being predicted
        self.position_embedding = nn.Embedding(self.max_seq_length + 1, self.hidden_size)
        layers = dict(n_layers=config["n_layers"], n_heads=config["n_heads"], hidden_size=self.hidden_size,
                      inner_size=config["inner_size"], hidden_dropout_prob=config["hidden_dropout_prob"],
                      attn_dropout_prob=config["attn_dropout_prob"], layer_norm_eps=config["layer_norm_eps"])
        self.pre_norm = config["transformer_norm"] == "pre"  # post|pre, checked with the config
        if self.pre_norm:  # the last layer's norm replaces the input norm; GELU feed-forward
            self.trm_encoder = PreNormTransformer(**layers)
        else:
            self.trm_encoder = TransformerEncoder(hidden_act=config["hidden_act"], **layers)
            self.LayerNorm = nn.LayerNorm(self.hidden_size, eps=config["layer_norm_eps"])
        self.dropout = nn.Dropout(config["hidden_dropout_prob"])
        self.initializer_range = config["initializer_range"]
        self.apply(self._init_weights)
        nn.init.normal_(self.mask_embedding, std=self.initializer_range)
        self.reset_item_biases()

        self.finetune_from = config["finetune_from"]
        if self.finetune_from is not None and (self.train_stage != "pretrain" or not 0 < self.finetune_from < 1):
            raise QBertError(f"finetune_from must be a share in (0, 1) of a pretrain run, got {self.finetune_from} "
                             f"with train_stage '{self.train_stage}'")
        if self.train_stage == "pretrain":
            self.masking = MaskMixture(config["mask_strategies"], config["mask_options"])
        else:
            self.masking = build_strategy("last")
        self.generator = mask_generator(config, self.device)
        self.next_item_loss_weight = config["next_item_loss_weight"]
        load_pretrained_from_config(self, config)

    def on_training_progress(self, progress: float) -> None:
        """Called by the trainer before each epoch with the share of the run spent so far (epochs or
        time budget, whichever is further): switches to last-position fine-tuning at ``finetune_from``."""
        if self.finetune_from is not None and self.train_stage == "pretrain" and progress >= self.finetune_from:
            self._set_stage("finetune")

    def _set_stage(self, stage: str) -> None:
        self.train_stage = stage
        if stage == "finetune":
            self.masking = build_strategy("last")

    # the training phase travels in the state dict beside the mask generator, so a resumed run
    # continues in the phase it was in
    def get_extra_state(self) -> dict:
        return {**super().get_extra_state(), "train_stage": self.train_stage}

    def set_extra_state(self, state: dict) -> None:
        self._set_stage(state["train_stage"])
        super().set_extra_state(state)

    # -- encoder -------------------------------------------------------------------------------
    def forward(self, items: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Encode ``items`` ``(B, T)`` (left-aligned, 0 after ``lengths`` ``(B,)``) with the positions in
        ``mask`` ``(B, T)`` replaced by the mask token; returns hidden states ``(B, T, H)``."""
        real = torch.arange(items.shape[1], device=items.device).unsqueeze(0) < lengths.unsqueeze(1)
        # bidirectional: only padding is hidden, (B, 1, 1, T)
        attention = (~real).to(self.position_embedding.weight.dtype).mul(-10000.0)[:, None, None, :]
        return self.transform(items, attention, mask)

    def _forward_causal(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` without a mask token, each position seeing only itself and earlier items
        (RecBole's causal mask, as QSASRec's): ``(B, T)`` -> ``(B, T, H)``; ``lengths`` is implied by the padding."""
        return self.transform(items, self.get_attention_mask(items))

    def next_item_loss(self, items: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        """Cross-entropy of each item of ``items`` ``(B, T)`` (left-aligned, 0 after ``lengths`` ``(B,)``, every
        length >= 2) predicted from the items before it under causal attention; with ``seen_item_bias`` a
        prediction's seen items are those before it."""
        hidden = encode_by_length(self._forward_causal, items, lengths, self.hidden_size)
        has_next = torch.arange(items.shape[1], device=items.device).unsqueeze(0) < (lengths - 1).unsqueeze(1)
        targets = torch.cat([items[:, 1:], torch.zeros_like(items[:, :1])], dim=1)
        seen = self.seen_items(self.prefixes(items)[has_next]) if self.seen_bias_raw is not None else None
        return nn.functional.cross_entropy(self.catalogue_scores(hidden[has_next], seen), targets[has_next])

    def encode(self, items: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """:meth:`forward` over length buckets: the same hidden states ``(B, T, H)`` at every real position,
        at a fraction of the cost for short sequences (padding positions hold values nothing reads)."""
        return encode_by_length(self.forward, items, lengths, self.hidden_size, mask)

    def _with_slot(self, interaction, fill: torch.Tensor):
        """History ``(B, L)`` plus one slot after each user's last item holding ``fill`` ``(B,)``:
        returns items ``(B, L + 1)`` and lengths ``(B,)``."""
        history = interaction[self.ITEM_SEQ]
        length = interaction[self.ITEM_SEQ_LEN]
        items = torch.cat([history, torch.zeros_like(history[:, :1])], dim=1)
        items[torch.arange(len(items), device=items.device), length] = fill
        return items, length + 1

    def masked_scores(self, items: torch.Tensor, lengths: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Scores over the catalogue ``(M, n_items)`` at the M positions of ``mask`` ``(B, T)``, row-major.
        With ``seen_item_bias`` a row's seen items are its sequence's unmasked ones (a masked item is as
        hidden from the bias as from the encoder)."""
        hidden = self.encode(items, lengths, mask)
        seen = None
        if self.seen_bias_raw is not None:
            seen = self.seen_items(items.masked_fill(mask, 0)[mask.nonzero(as_tuple=True)[0]])
        return self.catalogue_scores(hidden[mask], seen)

    # -- RecBole interface -----------------------------------------------------------------------
    def calculate_loss(self, interaction):
        items, lengths = self._with_slot(interaction, interaction[self.POS_ITEM_ID])
        mask = self.masking(lengths, items.shape[1], self.generator)
        loss = nn.functional.cross_entropy(self.masked_scores(items, lengths, mask), items[mask])
        if self.next_item_loss_weight:
            loss = loss + self.next_item_loss_weight * self.next_item_loss(items, lengths)
        return loss

    def full_sort_predict(self, interaction):
        length = interaction[self.ITEM_SEQ_LEN]
        items, lengths = self._with_slot(interaction, torch.zeros_like(length))
        mask = torch.zeros_like(items, dtype=torch.bool)
        mask[torch.arange(len(items), device=items.device), length] = True
        return self.masked_scores(items, lengths, mask)  # (B, n_items)

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
