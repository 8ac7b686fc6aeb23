"""A RecBole ``SequentialDataset`` that also loads each item's semantic ID (stage 2's output).

A model selects it with a class attribute, and ``recbole_qbert.runner`` builds it without glue::

    class QBERT4Rec(SequentialRecommender):
        dataset_class = SemanticIDDataset

Config key ``sid_file`` (str): the semantic-ID file; ``~`` (default) =
``build/sid/<dataset>/<dataset>.sid`` under the project root; relative paths are taken from the project
root and ``{dataset}`` is replaced by the dataset name.

After loading, the dataset checks that the file (and its metadata) was made for this dataset, is
intact, covers exactly the items RecBole loaded (none missing, none extra), and is not stale (the
feature tables it was made from, where they still exist, are unchanged), and exposes

* ``item_codes``: ``LongTensor (item_num, n_levels)`` aligned with RecBole's internal item ids. Codes
  are stored **shifted by one**: ``item_codes[i, l] = code + 1``, so ``0`` means padding at every level
  and row 0 (RecBole's padding item ``[PAD]``) is all zeros. A level's embedding table therefore needs
  ``sid_codebook_sizes[l] + 1`` rows, with ``padding_idx=0``;
* ``sid_codebook_sizes`` (list of int, the disambiguation level included), ``sid_n_levels``,
  ``sid_meta`` (the file's metadata) and ``sid_path``;
* ``item_content``: ``FloatTensor (item_num, D)`` or None, from config key ``content_features`` (list of
  stage-1 feature tables, ``.npz``, same path rules as ``sid_file``): each table's rows L2-normalised
  and concatenated, zeros for the padding item and where an item lacks that content.

Every failure is a :class:`~recbole_qbert.errors.QBertError` raised before any training starts.
"""
import numpy as np
import torch
from recbole.data.dataset import SequentialDataset

from recbole_qbert.errors import QBertError
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.semantic_ids import check_features_unchanged, dataset_file, read_semantic_ids, resolve_sid_path


class SemanticIDDataset(SequentialDataset):
    def __init__(self, config):
        super().__init__(config)
        self._load_semantic_ids()
        self._load_content_features()

    def _load_semantic_ids(self) -> None:
        self.sid_path = resolve_sid_path(self.config["sid_file"], self.dataset_name)
        tokens = self.field2id_token[self.iid_field]
        if len(tokens) < 2:
            raise QBertError(f"dataset '{self.dataset_name}': no items loaded")
        items = [str(t) for t in tokens[1:]]  # tokens[0] is RecBole's padding item '[PAD]'
        sid = read_semantic_ids(self.sid_path, dataset=self.dataset_name, tokens=items)
        check_features_unchanged(sid)
        by_token = sid.by_token()
        codes = np.zeros((len(tokens), sid.n_levels), dtype=np.int64)
        codes[1:] = np.stack([by_token[t] for t in items]) + 1
        self.item_codes = torch.from_numpy(codes)
        self.sid_codebook_sizes = list(sid.codebook_sizes)
        self.sid_n_levels = sid.n_levels
        self.sid_meta = sid.meta

    def _load_content_features(self) -> None:
        paths = self.config["content_features"] or []
        self.item_content = None
        if not paths:
            return
        items = [str(t) for t in self.field2id_token[self.iid_field][1:]]
        blocks = []
        for value in paths:
            table = FeatureTable.load(dataset_file(value, self.dataset_name))
            if table.meta.get("dataset", self.dataset_name) != self.dataset_name:
                raise QBertError(f"{table.source}: made for dataset '{table.meta['dataset']}', "
                                 f"not '{self.dataset_name}'")
            matrix = table.align(items, allow_absent=True).matrix  # (item_num - 1, d), zeros where absent
            # unit rows: views of different scale (CLIP text, image, fused) weigh alike at the start
            norms = np.linalg.norm(matrix, axis=1, keepdims=True)
            blocks.append(np.divide(matrix, norms, out=np.zeros_like(matrix), where=norms > 0))
        content = np.zeros((len(items) + 1, sum(b.shape[1] for b in blocks)), dtype=np.float32)
        content[1:] = np.concatenate(blocks, axis=1)
        self.item_content = torch.from_numpy(content)

    def __str__(self):
        info = super().__str__()
        if getattr(self, "item_codes", None) is None:
            return info
        return (f"{info}\nThe semantic IDs: {self.sid_path} ({self.sid_n_levels} levels, codebook sizes "
                f"{self.sid_codebook_sizes}, collisions: {self.sid_meta.get('collision_strategy')})")
