"""Shared fixtures: a tiny synthetic dataset in RecBole atomic format, and a scratch working folder.

The tiny dataset is for logic tests (seconds per run); real-data smoke runs use ml-100k from the
recbole wheel and ../shared/data.
"""
import os
from pathlib import Path

import pytest

import recbole_qbert  # noqa: F401  (compatibility layer before any RecBole import)

REPO = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO.parent / "shared" / "data"

TINY_CONFIG = {
    "load_col": {"inter": ["user_id", "item_id", "timestamp"]},
    "hidden_size": 8, "inner_size": 16, "n_layers": 1, "n_heads": 1,
    "embedding_size": 8, "train_batch_size": 64, "eval_batch_size": 64,
    "show_progress": False, "state": "WARNING", "use_gpu": False,
}


def write_tiny_dataset(root: Path, name: str = "tiny", n_users: int = 60, n_items: int = 30) -> Path:
    """Users walk the item catalogue in steps of one from a user-specific start, so the next item is
    predictable from the last one and a model that learns anything beats chance."""
    folder = root / name
    folder.mkdir(parents=True, exist_ok=True)
    lines = ["user_id:token\titem_id:token\ttimestamp:float"]
    for u in range(n_users):
        length = 6 + u % 7
        for t in range(length):
            lines.append(f"u{u}\ti{(u * 7 + t) % n_items}\t{t}")
    (folder / f"{name}.inter").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def tiny_data(tmp_path_factory) -> Path:
    """``data_path`` holding the ``tiny`` dataset."""
    root = tmp_path_factory.mktemp("atomic")
    write_tiny_dataset(root)
    return root


@pytest.fixture
def in_tmp(tmp_path, monkeypatch):
    """Run in an empty folder so nothing RecBole writes lands in the repository."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def tiny_overrides(data_path: Path, **extra) -> dict:
    return {**TINY_CONFIG, "data_path": str(data_path), **extra}
