"""Stage-2 settings: defaults from ``properties/quantize.yaml``, then config files, then overrides.

Every key, its type and its range are declared in that file's ``# (type, range)`` comments and checked
by the project's one checker (:mod:`recbole_qbert.value_types`, through
:func:`recbole_qbert.stage_config.load_stage_config`); an unknown key is an error naming where it came
from.
"""
from typing import Dict, Optional, Sequence

from recbole_qbert.config import PROPERTIES
from recbole_qbert.stage_config import load_stage_config

DEFAULTS_FILE = PROPERTIES / "quantize.yaml"


def load_settings(config_files: Sequence = (), overrides: Optional[Dict] = None) -> Dict:
    """The full stage-2 settings; every key of ``properties/quantize.yaml`` is present."""
    return load_stage_config(DEFAULTS_FILE, config_files, overrides)
