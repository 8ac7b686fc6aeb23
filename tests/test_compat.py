"""The compatibility layer lets RecBole 1.2.1 run on numpy 2 and current torch without edits."""
import subprocess
import sys

import numpy as np
import torch

from recbole_qbert.model_registry import resolve_model


def test_numpy_aliases_restored():
    # RecBole's Config later rebinds np.float to np.float_, which must therefore exist too
    assert np.float_ is np.float64 and np.float in (float, np.float64) and np.int in (int, np.int_)


def test_recbole_metrics_run_on_numpy2():
    from recbole.evaluator.metrics import NDCG

    ndcg = NDCG.__new__(NDCG)
    ndcg.topk = [2]
    # user 1 hits at rank 1, user 2 at rank 2
    result = ndcg.metric_info(np.array([[True, False], [False, True]]), np.array([1, 1]))
    assert np.allclose(result[:, 1], [1.0, 1 / np.log2(3)])


def test_anomaly_detection_stays_off_after_importing_the_model_zoo():
    resolve_model("SINE")  # sine.py switches anomaly detection on for the whole process at import
    assert not torch.is_anomaly_enabled()


def test_ray_is_never_imported_not_even_by_recbole_quick_start():
    """recbole.quick_start imports (ray's pinned version needs the gone pkg_resources) with a stand-in for
    ray that does not outlive the import, and its load_data_and_model is ours."""
    code = ("import sys, recbole_qbert, recbole_qbert.runner, recbole_qbert.leaderboard; "
            "from recbole_qbert.model_registry import resolve_model; resolve_model('BERT4Rec'); "
            "from recbole.quick_start import load_data_and_model; "
            "print('ray' in sys.modules, 'recbole.quick_start' in sys.modules, load_data_and_model.__module__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "True", "recbole_qbert.compat"]
