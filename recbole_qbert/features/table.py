"""Item feature matrices keyed by item token: the artifact every stage hands to the next.

A :class:`FeatureTable` is one ``.npz`` file with

* ``tokens`` ``(n,)`` str: the dataset's original item tokens (ASINs, MovieLens ids), never internal
  indices, so a table cannot be silently applied to a re-numbered item set;
* ``matrix`` ``(n, d)`` float32: one row per token;
* ``present`` ``(n,)`` bool: ``False`` where the item has no such content (no image, no title); those
  rows are zeros that carry no meaning and must be masked, not used as content;
* ``meta``: a JSON object (encoder, dimension, config, hash of the inputs, ...).

Files are written atomically and read with ``allow_pickle=False``.
"""
import json
import zipfile
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np

from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike, atomic_path, sha256_json


@dataclass
class FeatureTable:
    tokens: np.ndarray
    matrix: np.ndarray
    present: np.ndarray
    meta: dict = field(default_factory=dict)
    source: str = "feature table"  # where it came from, for error messages

    def __post_init__(self):
        self.tokens = np.asarray(self.tokens, dtype=str)
        with np.errstate(over="ignore"):  # a value beyond float32 becomes inf, refused below with its item
            self.matrix = np.asarray(self.matrix, dtype=np.float32)
        self.present = np.asarray(self.present, dtype=bool)
        if self.tokens.ndim != 1:
            raise QBertError(f"{self.source}: item tokens have shape {self.tokens.shape}, expected (n,)")
        empty = int((self.tokens == "").sum())
        if empty:
            raise QBertError(f"{self.source}: {empty} item tokens are empty")
        n = len(self.tokens)
        if self.matrix.ndim != 2 or self.matrix.shape[0] != n:
            raise QBertError(f"{self.source}: matrix has shape {self.matrix.shape}, expected ({n}, d) "
                             f"for {n} item tokens")
        if self.present.shape != (n,):
            raise QBertError(f"{self.source}: presence mask has shape {self.present.shape}, expected ({n},)")
        if len(set(self.tokens.tolist())) != n:
            raise QBertError(f"{self.source}: item tokens are not unique")
        bad = ~np.isfinite(self.matrix[self.present]).all(axis=1)
        if bad.any():
            first = self.tokens[self.present][bad][0]
            raise QBertError(f"{self.source}: {int(bad.sum())} rows hold NaN or inf (first: item {first})")
        self.matrix[~self.present] = 0.0

    @property
    def dim(self) -> int:
        return self.matrix.shape[1]

    def __len__(self) -> int:
        return len(self.tokens)

    def content_hash(self) -> str:
        """Hash of tokens, values and mask: the "input hash" later artifacts record."""
        return sha256_json([self.tokens.tolist(), self.present.tolist(),
                            np.round(self.matrix, 6).tobytes().hex()])[:16]

    def save(self, path: PathLike) -> None:
        with atomic_path(path) as tmp, open(tmp, "wb") as f:
            np.savez(f, tokens=self.tokens, matrix=self.matrix, present=self.present,
                     meta=np.array(json.dumps(self.meta, sort_keys=True, default=str)))

    @classmethod
    def load(cls, path: PathLike) -> "FeatureTable":
        """A table written by :meth:`save`; anything else (not an .npz, an array missing or of the wrong
        kind, ``meta`` not a JSON object, no items or no columns) is a one-line :class:`QBertError`."""
        path = Path(path)
        if not path.is_file():
            raise QBertError(f"{path}: feature file not found")
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: z[k] for k in ("tokens", "matrix", "present", "meta")}
        except KeyError as e:
            raise QBertError(f"{path}: not a feature table (missing {e})") from None
        except (ValueError, OSError, EOFError, zipfile.BadZipFile, zlib.error) as e:
            # np.load raises EOFError on an empty file, BadZipFile on a cut-short one, ValueError on others
            raise QBertError(f"{path}: not a readable feature table (empty, cut short or not an .npz file: "
                             f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else ''}); rerun the stage "
                             "that made it") from None
        try:
            meta = json.loads(str(arrays["meta"]))
        except ValueError as e:
            raise QBertError(f"{path}: meta is not readable JSON ({e}); rerun the stage that made it") from None
        if not isinstance(meta, dict):
            raise QBertError(f"{path}: meta is not a JSON object (a {type(meta).__name__}); rerun the stage that "
                             "made it")
        # asarray would turn strings into True (present) or fail with a bare ValueError (matrix)
        for key, kinds, what in (("matrix", "biuf", "numbers"), ("present", "biu", "booleans")):
            if arrays[key].dtype.kind not in kinds:
                raise QBertError(f"{path}: {key} holds {arrays[key].dtype} values, not {what}")
        table = cls(arrays["tokens"], arrays["matrix"], arrays["present"], meta, source=str(path))
        if not len(table) or not table.dim:
            # every consumer would treat such a table as all zeros (no content) instead of failing
            raise QBertError(f"{path}: empty feature table ({len(table)} items x {table.dim} columns)")
        return table

    def align(self, tokens: Sequence[str], *, allow_absent: bool = False) -> "FeatureTable":
        """The rows for ``tokens``, in that order.

        An item of ``tokens`` the table lacks is an error, or with ``allow_absent`` a row marked not
        present; an item the table has beyond ``tokens`` is always an error (features of another item set).
        """
        tokens = np.asarray(tokens, dtype=str)
        index = {t: i for i, t in enumerate(self.tokens.tolist())}
        extra = set(index) - set(tokens.tolist())
        if extra:
            raise QBertError(f"{self.source}: has {len(extra)} items the dataset does not "
                             f"(e.g. {sorted(extra)[0]}); it was made for another item set")
        rows = np.array([index.get(t, -1) for t in tokens.tolist()], dtype=np.int64)
        missing = rows < 0
        if missing.any() and not allow_absent:
            raise QBertError(f"{self.source}: lacks {int(missing.sum())} of the dataset's {len(tokens)} items "
                             f"(e.g. {tokens[missing][0]})")
        matrix = np.zeros((len(tokens), self.dim), dtype=np.float32)
        present = np.zeros(len(tokens), dtype=bool)
        matrix[~missing] = self.matrix[rows[~missing]]
        present[~missing] = self.present[rows[~missing]]
        return FeatureTable(tokens, matrix, present, dict(self.meta), source=self.source)
