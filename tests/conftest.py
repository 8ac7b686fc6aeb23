"""Shared fixtures. Real-data smoke runs use ml-100k from the recbole wheel and ../shared/data."""
from pathlib import Path

import pytest
import torch

import recbole_qbert  # noqa: F401  (compatibility layer before any RecBole import)
from fixtures.scientific_clip import SCIENTIFIC
from fixtures.tiny import write_tiny_dataset, write_tiny_semantic_ids


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``data_path`` holding the ``tiny`` dataset."""
    root = tmp_path_factory.mktemp("atomic")
    write_tiny_dataset(root)
    return root


@pytest.fixture(scope="session")
def sid_file(tmp_path_factory) -> Path:
    """Semantic IDs of the ``tiny`` dataset's items (two levels, unique per item)."""
    return write_tiny_semantic_ids(tmp_path_factory.mktemp("sid") / "tiny.sid")


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder so nothing RecBole writes lands in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.fixture(scope="module")
def one_torch_thread():
    """Tiny models train faster on one thread, above all on a machine whose cores are shared."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def scientific_data(tmp_path_factory) -> Path:
    """``data_path`` holding the real ``amazon-scientific`` dataset, converted from ../shared/data."""
    from recbole_qbert.convert.atomic_writer import write_dataset
    from recbole_qbert.convert.unisrec import convert_unisrec

    root = tmp_path_factory.mktemp("scientific")
    write_dataset(convert_unisrec(SCIENTIFIC, "amazon-scientific"), root)
    return root


@pytest.fixture
def content_file(tmp_path):
    """A 6-d content table for the tiny items ``i0``..``i29``: item ``i3`` has none, and the rows are not
    unit length."""
    import numpy as np

    from recbole_qbert.features.table import FeatureTable

    rng = np.random.default_rng(0)
    present = np.ones(30, dtype=bool)
    present[3] = False
    table = FeatureTable([f"i{i}" for i in range(30)], 5 * rng.normal(size=(30, 6)), present, {"view": "toy"})
    table.save(tmp_path / "toy.npz")
    return tmp_path / "toy.npz", table
