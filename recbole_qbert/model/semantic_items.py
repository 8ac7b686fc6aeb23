"""Items composed from their semantic IDs: the item representation shared by QBERT4Rec and QSASRec.

An item enters a model as the sum of one embedding per semantic-ID level (its code tuple from stage 2),
optionally plus a free ID embedding and a learned linear map of the item's stage-1 content vectors
(``content_features``), and the whole catalogue is scored by dot product with the same
composed embeddings plus a score bias. Without the ID embedding nothing is indexed by item id (the bias
is per code too), so an item is its codes alone and an item never trained on can still be recommended.

With ``seen_item_bias`` one learned scalar is added to the score of every item already in the history
the prediction is made from: the model learns how likely a user is to pick an item again (on catalogues
without repeats it turns strongly negative, so the ranking stops spending top slots on items the user
has), which an embedding dot product can only approximate.

Config keys: ``hidden_size``, ``use_id_embedding`` (bool), ``use_semantic_ids`` (bool; False is the
ID-only control, which needs ``use_id_embedding``), ``content_features`` (list of feature tables, read by
the dataset), ``seen_item_bias`` (bool), ``score_temperature`` (float or None: cosine scores over a
temperature instead of dot products), ``initializer_range``.
"""
import torch
from torch import nn

from recbole_qbert.errors import QBertError

SEEN_BIAS_SCALE = 100.0  # see SemanticItemsMixin.seen_bias


class SemanticItemsMixin:
    """Item tables and scoring for a RecBole sequential model whose dataset is a ``SemanticIDDataset``.

    Parameters (names kept stable for checkpoints and :mod:`recbole_qbert.model.pretrained`):
    ``code_embeddings`` (one ``(codebook_size + 1, H)`` table per level, row 0 padding),
    ``id_embedding`` (``(n_items, H)`` or None), ``output_bias`` (``(n_items,)``, with the ID embedding)
    or ``code_biases`` (one ``(codebook_size + 1, 1)`` table per level, without it),
    ``content_projection`` (``Linear(D, H)`` over the dataset's ``item_content``, or None),
    ``seen_bias_raw`` (scalar, or None; the offset is :attr:`seen_bias`). :meth:`transform` also reads the
    model's ``position_embedding``, ``mask_embedding``, ``dropout``, ``trm_encoder``, ``pre_norm`` and (post-norm
    only) ``LayerNorm``.
    """

    def build_item_tables(self, config, dataset) -> None:
        hidden = config["hidden_size"]
        use_codes = config["use_semantic_ids"] is not False
        use_id = bool(config["use_id_embedding"])
        content = getattr(dataset, "item_content", None)
        if not (use_codes or use_id or content is not None):
            raise QBertError("use_semantic_ids: False needs use_id_embedding: True or content_features "
                             "(an item must be something)")
        # (n_items, n_levels) codes shifted by one, 0 = padding; a buffer so it moves with the model
        self.register_buffer("item_codes", dataset.item_codes.clone(), persistent=False)
        self.codebook_sizes = list(dataset.sid_codebook_sizes) if use_codes else []
        self.code_embeddings = nn.ModuleList(
            nn.Embedding(size + 1, hidden, padding_idx=0) for size in self.codebook_sizes)
        self.id_embedding = nn.Embedding(self.n_items, hidden, padding_idx=0) if use_id else None
        # (n_items, D) content vectors, row 0 zeros; a buffer, like the codes, rebuilt from the dataset
        self.register_buffer("item_content", content, persistent=False)
        self.content_projection = None if content is None else nn.Linear(content.shape[1], hidden, bias=False)
        # score bias: per item next to an ID embedding; otherwise per code, summed over levels, so that an
        # item is its codes alone (a per-item bias of an item never seen as a target is only ever pushed
        # down, which would bury exactly the cold items the codes are meant to reach)
        self.output_bias = nn.Parameter(torch.zeros(self.n_items)) if use_id else None
        self.code_biases = None if use_id else nn.ModuleList(
            nn.Embedding(size + 1, 1, padding_idx=0) for size in self.codebook_sizes)
        # starts at 0 (no prior on repeats); a plain parameter, so _init_weights leaves it alone
        self.seen_bias_raw = nn.Parameter(torch.zeros(())) if config["seen_item_bias"] else None
        self.score_temperature = config["score_temperature"]

    def reset_item_biases(self) -> None:
        """Biases start at zero (after ``apply(_init_weights)``, which draws every embedding)."""
        for table in self.code_biases or ():
            nn.init.zeros_(table.weight)

    def _init_weights(self, module):
        if isinstance(module, (nn.Linear, nn.Embedding)):
            module.weight.data.normal_(mean=0.0, std=self.initializer_range)
            if isinstance(module, nn.Embedding) and module.padding_idx is not None:
                module.weight.data[module.padding_idx].zero_()
        elif isinstance(module, nn.LayerNorm):
            module.bias.data.zero_()
            module.weight.data.fill_(1.0)
        if isinstance(module, nn.Linear) and module.bias is not None:
            module.bias.data.zero_()

    def item_embeddings(self, items: torch.Tensor) -> torch.Tensor:
        """Composed embeddings of item ids ``(...)`` -> ``(..., H)``: the sum of the items' code
        embeddings over all levels, plus the ID embedding and the projected content when enabled. Padding
        (0) maps to zeros."""
        codes = self.item_codes[items]  # (..., n_levels)
        emb = sum(table(codes[..., level]) for level, table in enumerate(self.code_embeddings))
        if self.id_embedding is not None:
            emb = emb + self.id_embedding(items)
        if self.content_projection is not None:
            emb = emb + self.content_projection(self.item_content[items])
        return emb

    def transform(self, items: torch.Tensor, attention: torch.Tensor, mask: torch.Tensor = None) -> torch.Tensor:
        """Hidden states ``(B, T, H)`` of ``items`` ``(B, T)``: composed embeddings (the positions in ``mask``
        ``(B, T)``, when given, replaced by ``mask_embedding``) plus ``position_embedding``, through
        ``trm_encoder`` under the additive ``attention`` mask (broadcast to ``(B, heads, T, T)``).
        Pre-norm layers (``pre_norm``) end with their own LayerNorm; RecBole's post-norm ones take a
        normalised input instead."""
        emb = self.item_embeddings(items)
        if mask is not None:
            emb = torch.where(mask.unsqueeze(-1), self.mask_embedding.expand_as(emb), emb)
        positions = torch.arange(items.shape[1], device=items.device)
        x = emb + self.position_embedding(positions).unsqueeze(0)
        if self.pre_norm:
            return self.trm_encoder(self.dropout(x), attention)
        return self.trm_encoder(self.dropout(self.LayerNorm(x)), attention, output_all_encoded_layers=False)[-1]

    def all_item_embeddings(self) -> torch.Tensor:
        """``(n_items, H)``, row 0 the padding item."""
        return self.item_embeddings(torch.arange(self.n_items, device=self.item_codes.device))

    def item_biases(self, items: torch.Tensor) -> torch.Tensor:
        """Score bias of item ids ``(...)`` -> ``(...)``: the item's own, or the sum of its codes' biases."""
        if self.output_bias is not None:
            return self.output_bias[items]
        codes = self.item_codes[items]  # (..., n_levels)
        return sum(table(codes[..., level]).squeeze(-1) for level, table in enumerate(self.code_biases))

    def all_item_biases(self) -> torch.Tensor:
        """``(n_items,)``, row 0 the padding item."""
        return self.item_biases(torch.arange(self.n_items, device=self.item_codes.device))

    @property
    def seen_bias(self):
        """The learned seen-item offset (a scalar tensor), or None. Adam moves a parameter by about the
        learning rate per step, far too slowly for an offset that must reach the scale of the scores
        (~10): the parameter is scaled so that it gets there within an epoch or two."""
        return None if self.seen_bias_raw is None else SEEN_BIAS_SCALE * self.seen_bias_raw

    @staticmethod
    def prefixes(items: torch.Tensor) -> torch.Tensor:
        """``(B, L)`` histories -> ``(B, L, L)``: row t holds the items up to position t, 0 after it (the
        items a user has when a next-item prediction is made at t; a masked input item is still one of them)."""
        later = torch.ones(items.shape[1], items.shape[1], dtype=torch.bool, device=items.device).triu(1)
        return items.unsqueeze(1).expand(-1, items.shape[1], -1).masked_fill(later, 0)

    def seen_items(self, histories: torch.Tensor):
        """Histories ``(N, T)`` of item ids (0 = padding) -> ``(N, T)`` the distinct items of each row, a
        repeat replaced by 0 so that an item gets the offset once; None without ``seen_item_bias``. Item ids,
        not an ``(N, n_items)`` mask: adding the offset then costs O(N T), not another pass over the scores."""
        if self.seen_bias_raw is None:
            return None
        items = histories.sort(dim=1).values
        repeat = torch.zeros_like(items, dtype=torch.bool)
        repeat[:, 1:] = items[:, 1:] == items[:, :-1]
        return items.masked_fill(repeat, 0)

    def sampled_softmax_loss(self, hidden: torch.Tensor, targets: torch.Tensor, n_negatives: int,
                             generator: torch.Generator, seen=None) -> torch.Tensor:
        """Cross-entropy of hidden states ``(N, H)`` over their targets ``(N,)`` and ``n_negatives`` items
        drawn uniformly from the catalogue, shared by all N rows: ``(N, 1 + n_negatives)`` scores instead of
        ``(N, n_items)``. A negative equal to a row's target is left out of that row. Uniform draws need
        no log-probability correction (it is the same constant for every candidate). ``seen``: as for
        :meth:`catalogue_scores`."""
        negatives = torch.randint(1, self.n_items, (n_negatives,), generator=generator, device=hidden.device)
        hidden, target_emb, negative_emb = self._scored(hidden, self.item_embeddings(targets),
                                                        self.item_embeddings(negatives))
        positive = ((hidden * target_emb).sum(-1) + self.item_biases(targets)).unsqueeze(1)
        negative = hidden @ negative_emb.T + self.item_biases(negatives)  # (N, n_negatives)
        if seen is not None:
            positive = positive + self.seen_bias * (seen == targets.unsqueeze(1)).any(1, keepdim=True)
            negative = negative + self.seen_bias * self._seen_among(seen, negatives)
        negative = negative.masked_fill(negatives.unsqueeze(0) == targets.unsqueeze(1), float("-inf"))
        scores = torch.cat([positive, negative], dim=1)
        return nn.functional.cross_entropy(scores, torch.zeros_like(targets))

    def _scored(self, hidden: torch.Tensor, *item_embeddings: torch.Tensor) -> tuple:
        """Hidden states ``(N, H)`` and item embeddings ``(..., H)`` as they enter the dot product: as they are,
        or with ``score_temperature`` L2-normalised, the hidden states divided by the temperature."""
        if self.score_temperature is None:
            return (hidden, *item_embeddings)
        return (nn.functional.normalize(hidden, dim=-1) / self.score_temperature,
                *(nn.functional.normalize(e, dim=-1) for e in item_embeddings))

    @staticmethod
    def _seen_among(seen: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        """``(N, C)`` bool: whether candidate ``candidates[c]`` ``(C,)`` is one of row n's ``seen`` ``(N, T)``
        items. Matched through the candidates' distinct ids, so memory is O(N (T + C)), never
        ``(N, n_items)``, which would undo what sampling saves."""
        distinct, column = candidates.unique(return_inverse=True)  # sorted (D,), and (C,) into it
        at = torch.searchsorted(distinct, seen).clamp_(max=len(distinct) - 1)  # (N, T)
        # a seen item that is no candidate (padding included) goes to a spare last column
        at = torch.where(distinct[at] == seen, at, len(distinct))
        hits = torch.zeros(len(seen), len(distinct) + 1, dtype=torch.bool, device=seen.device).scatter_(1, at, True)
        return hits[:, column]

    def catalogue_scores(self, hidden: torch.Tensor, seen=None) -> torch.Tensor:
        """Hidden states ``(N, H)`` -> scores over the catalogue ``(N, n_items)``; the padding item never wins.
        ``seen`` ``(N, T)`` (from :meth:`seen_items`) adds the seen-item bias to each row's history items."""
        hidden, items = self._scored(hidden, self.all_item_embeddings())
        scores = hidden @ items.T + self.all_item_biases()
        if seen is not None:  # padding entries add to item 0, overwritten below
            scores = scores.scatter_add(1, seen, self.seen_bias.expand(seen.shape))
        scores[:, 0] = float("-inf")
        return scores
