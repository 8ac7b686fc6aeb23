r"""
QSASRec
################################################

Reference:
    Kang & McAuley. "Self-Attentive Sequential Recommendation." ICDM 2018 (the backbone).
    Huang & Gai. "Quantized Semantic-ID Representation Learning for Multimodal Recommendation"
    (Q-BERT4Rec). arXiv 2512.02474 (the semantic-ID items and the masking strategies).

The causal counterpart of QBERT4Rec: RecBole's SASRec with its free item embedding replaced by items
composed from their semantic IDs (:class:`~recbole_qbert.model.semantic_items.SemanticItemsMixin`: the sum
of one code embedding per level, optionally plus an ID embedding). It separates what the codes bring
from what the bidirectional masked training brings.

Training reads one sequence per user (``QBERT4RecDataset``) and predicts the next item at every position
of it with a softmax over the whole catalogue (or, with ``train_negatives``, over the target and that
many uniformly drawn items: sampled softmax), which is SASRec's original objective: the same
(history, next item) pairs as RecBole's one sample per prefix, in one pass over each history, except that
a history longer than ``MAX_ITEM_LIST_LENGTH`` trains on its last ``MAX_ITEM_LIST_LENGTH`` targets only. With
``input_mask_strategies``, strategies of the masking registry hide some input items behind a mask token
in training (every position still predicts its next item), so the model learns to recommend from
incomplete histories. ``transformer_norm: pre`` swaps RecBole's post-norm layers for the original
SASRec's pre-norm ones (:mod:`recbole_qbert.model.prenorm`). ``seen_item_bias`` learns one score offset
for the items each prefix already holds (:class:`~recbole_qbert.model.semantic_items.SemanticItemsMixin`).
``attention_recency_bias`` adds to each head's attention scores a learned bias per distance between query
and key, so a head can weigh recent items by how recent they are, not by absolute position from the start
of the history (RecBole's histories are left-aligned: the last item's position varies with the length).
``future_targets`` makes each position learn the next few items, not only the next one
(:mod:`recbole_qbert.model.future_targets`).
"""
import torch
from recbole.model.sequential_recommender.sasrec import SASRec
from recbole.utils import InputType
from torch import nn

from recbole_qbert.errors import QBertError
from recbole_qbert.model.future_targets import future_target_loss, future_targets
from recbole_qbert.model.masking import GeneratorStateMixin, MaskMixture, mask_generator
from recbole_qbert.model.length_buckets import encode_by_length
from recbole_qbert.model.prenorm import PreNormTransformer
from recbole_qbert.model.pretrained import load_pretrained_from_config
from recbole_qbert.data.qbert4rec_dataset import QBERT4RecDataset
from recbole_qbert.model.semantic_items import SemanticItemsMixin


class QSASRec(GeneratorStateMixin, SemanticItemsMixin, SASRec):
    input_type = InputType.POINTWISE
    dataset_class = QBERT4RecDataset

    def __init__(self, config, dataset):
        if config["loss_type"] != "CE":
            raise QBertError(f"QSASRec trains with loss_type CE only, got '{config['loss_type']}'")
        super().__init__(config, dataset)
        del self.item_embedding  # SASRec's free ID table: items are composed from their codes instead
        self.pre_norm = config["transformer_norm"] == "pre"  # post|pre, checked with the config
        if self.pre_norm:
            # the last layer's norm replaces the input norm; hidden_act stays GELU in this layout
            del self.trm_encoder, self.LayerNorm
            self.trm_encoder = PreNormTransformer(
                n_layers=self.n_layers, hidden_size=self.hidden_size, n_heads=self.n_heads,
                inner_size=self.inner_size, hidden_dropout_prob=self.hidden_dropout_prob,
                attn_dropout_prob=self.attn_dropout_prob, layer_norm_eps=self.layer_norm_eps)
        self.build_item_tables(config, dataset)
        strategies = config["input_mask_strategies"]
        self.masking = MaskMixture(strategies, config["mask_options"]) if strategies else None
        self.mask_embedding = nn.Parameter(torch.zeros(self.hidden_size)) if strategies else None
        self.apply(self._init_weights)
        self.reset_item_biases()
        if self.mask_embedding is not None:
            nn.init.normal_(self.mask_embedding, std=self.initializer_range)
        # (heads, L): bias of a key d items before its query, zero at the start (the plain model)
        self.recency_bias = (nn.Parameter(torch.zeros(self.n_heads, self.max_seq_length))
                             if config["attention_recency_bias"] else None)
        self.train_negatives = config["train_negatives"]
        self.future_targets, self.future_target_decay = config["future_targets"], config["future_target_decay"]
        if self.future_targets > 1 and self.train_negatives:
            raise QBertError("QSASRec: future_targets > 1 needs the full softmax (train_negatives: 0)")
        # draws masks and sampled negatives
        self.generator = mask_generator(config, self.device)
        load_pretrained_from_config(self, config)

    def _encode_bucket(self, items: torch.Tensor, lengths: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        """Causal encoding of ``items`` ``(B, T)`` (left-aligned, 0 after ``lengths``), with the positions
        of an optional ``mask`` ``(B, T)`` replaced by the mask token -> ``(B, T, H)``."""
        attention = self.get_attention_mask(items)  # (B, 1, T, T)
        if self.recency_bias is not None:
            positions = torch.arange(items.shape[1], device=items.device)
            distance = (positions.unsqueeze(1) - positions.unsqueeze(0)).clamp(min=0)  # (T, T); later keys are masked
            attention = attention + self.recency_bias[:, distance].unsqueeze(0)  # (B, heads, T, T)
        return self.transform(items, attention, *mask)

    def encode(self, items: torch.Tensor, lengths: torch.Tensor, *mask: torch.Tensor) -> torch.Tensor:
        """Hidden states ``(B, T, H)`` of every position, each seeing only itself and earlier items."""
        return encode_by_length(self._encode_bucket, items, lengths, self.hidden_size, *mask)

    def forward(self, item_seq: torch.Tensor, item_seq_len: torch.Tensor) -> torch.Tensor:
        """The state after each user's last item ``(B, H)``, from which the next item is scored."""
        hidden = self.encode(item_seq, item_seq_len)
        return hidden[torch.arange(len(hidden), device=hidden.device), item_seq_len - 1]

    def calculate_loss(self, interaction):
        items = interaction[self.ITEM_SEQ]  # (B, L)
        lengths = interaction[self.ITEM_SEQ_LEN]  # (B,)
        # the next future_targets items at every position: (B, L, K)
        targets = future_targets(items, lengths, interaction[self.POS_ITEM_ID], self.future_targets)
        real = torch.arange(items.shape[1], device=items.device).unsqueeze(0) < lengths.unsqueeze(1)
        mask = () if self.masking is None else (self.masking(lengths, items.shape[1], self.generator),)
        hidden = self.encode(items, lengths, *mask)[real]  # (N, H), N real positions
        seen = self.seen_items(self.prefixes(items)[real]) if self.seen_bias_raw is not None else None
        if self.train_negatives:
            return self.sampled_softmax_loss(hidden, targets[real][:, 0], self.train_negatives, self.generator, seen)
        return future_target_loss(self.catalogue_scores(hidden, seen), targets[real], self.future_target_decay)

    def full_sort_predict(self, interaction):
        items = interaction[self.ITEM_SEQ]
        hidden = self.forward(items, interaction[self.ITEM_SEQ_LEN])
        return self.catalogue_scores(hidden, self.seen_items(items))  # (B, n_items)

    def predict(self, interaction):
        scores = self.full_sort_predict(interaction)
        return scores.gather(1, interaction[self.ITEM_ID].unsqueeze(1)).squeeze(1)
