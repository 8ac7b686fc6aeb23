"""Make RecBole 1.2.1 run on current numpy, torch and pandas without editing RecBole.

Importing :mod:`recbole_qbert` applies :func:`apply` once, before any RecBole module runs:

* numpy 2 removed ``np.float_``/``np.complex_``/``np.unicode_`` (which RecBole's ``Config`` reads to
  re-create ``np.float`` and friends) and ``np.float``/``np.int``/``np.object``/``np.str`` (which its
  metrics and data code use). They are restored as the builtin or scalar types they always aliased.
* ``recbole.model.sequential_recommender.sine`` turns on autograd anomaly detection for the whole
  process at import time, slowing every model 1.5-2.3x; :func:`import_recbole_models` imports the
  model zoo and switches it off again.
* RecBole's trainer opens a TensorBoard writer in ``./log_tensorboard`` for every run; it is replaced by
  a writer that does nothing (each run's per-epoch figures are in its result record instead).
* ``recbole.quick_start`` imports ``ray`` (whose pinned version needs ``pkg_resources``, gone from
  current setuptools) for its ray-tune objective only, and its ``load_data_and_model`` unpickles a
  ``Config`` from the checkpoint. It is imported with a stand-in for ``ray.tune`` that says ray is not
  supported when used, and its ``load_data_and_model`` is replaced by
  :func:`recbole_qbert.recommend.load_data_and_model`, which reads this project's safe checkpoints.
* RecBole 1.2.1 calls APIs that current torch and pandas deprecate (``torch.cuda.amp.GradScaler``,
  in-place ``fillna``) on every run; those FutureWarnings, raised from RecBole's own modules, are hidden.
"""
import sys
import types
import warnings

import numpy as np
import torch

# name -> value the alias had before numpy removed it
_NUMPY_ALIASES = {
    "float_": np.float64,
    "complex_": np.complex128,
    "unicode_": np.str_,
    "float": float,
    "int": int,
    "bool": bool,
    "object": object,
    "str": str,
    "complex": complex,
    "long": int,
}


def _restore_numpy_aliases() -> None:
    with warnings.catch_warnings():
        # numpy warns when a removed alias is merely looked up; we only look to decide whether to set
        warnings.simplefilter("ignore")
        for name, value in _NUMPY_ALIASES.items():
            try:
                getattr(np, name)
            except AttributeError:
                setattr(np, name, value)


def import_recbole_models():
    """Import ``recbole.model.sequential_recommender`` and undo the anomaly detection it enables."""
    import recbole.model.sequential_recommender as seq  # noqa: F401  (side effect: sine.py)

    torch.autograd.set_detect_anomaly(False)
    return seq


class _RayTuneStandIn:
    def __getattr__(self, name):
        from recbole_qbert.errors import QBertError

        raise QBertError(f"ray.tune.{name}: hyperparameter search through ray is not supported by recbole-qbert")


def _load_data_and_model(model_file):
    """RecBole's ``load_data_and_model`` for this project's checkpoints (recbole_qbert.recommend)."""
    from recbole_qbert.recommend import load_data_and_model  # imported when called: it imports this package

    return load_data_and_model(model_file)


def import_quick_start():
    """Import ``recbole.quick_start`` without ``ray`` (a stand-in is in ``sys.modules`` only meanwhile,
    unless ray is already imported) and point its ``load_data_and_model`` at ours."""
    imported = sys.modules.get("ray")
    if imported is None:
        sys.modules["ray"] = types.ModuleType("ray")
        sys.modules["ray"].tune = _RayTuneStandIn()
    try:
        import recbole.quick_start as quick_start
    finally:
        if imported is None:
            del sys.modules["ray"]
    quick_start.load_data_and_model = quick_start.quick_start.load_data_and_model = _load_data_and_model
    return quick_start


class _NullSummaryWriter:
    def __getattr__(self, name):
        return lambda *args, **kwargs: None


def _no_tensorboard(logger):
    return _NullSummaryWriter()


def apply() -> None:
    warnings.filterwarnings("ignore", category=FutureWarning, module=r"recbole\.")
    _restore_numpy_aliases()
    import_recbole_models()
    import recbole.trainer.trainer as recbole_trainer

    recbole_trainer.get_tensorboard = _no_tensorboard
    import_quick_start()
