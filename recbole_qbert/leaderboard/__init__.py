"""Leaderboards: several models x several seeds on one dataset, one split, one protocol.

A spec (``properties/leaderboard/*.yaml``) lists the dataset, models, seeds and the config every run
shares. A model entry is a model name, or ``{name: ROW, model: MODEL, config: {...}}`` for a variant
(an ablation row such as QBERT4Rec on random codes). Each (model, seed) runs in its own process through ``run_recbole.py`` (so its peak memory is its
own) and leaves a record in ``<out>/records/``. A run whose record matches the current config is not
redone; an interrupted run resumes from its ``last.pth``; a run whose config or input files (atomic files, semantic IDs) changed starts over.

``extends: OTHER.yaml`` takes the other spec's keys (not its name); ``config`` and ``model_config`` are
merged key by key, this spec's winning.

Modules: :mod:`.spec` (the spec), :mod:`.plan` (reuse, resume or start over), :mod:`.pool` (the child
processes), :mod:`.aggregate` (records to rows), :mod:`.output` (Markdown, CSV, plots).
"""
from recbole_qbert.leaderboard.aggregate import (COST_KEYS, METRICS, SUBSET_METRICS, collect, converged, read_record,
                                                 seen, summarise)
from recbole_qbert.leaderboard.output import (HEADLINE, render, render_csv, render_curves, render_markdown, render_plot,
                                              render_runs_csv)
from recbole_qbert.leaderboard.pool import run_all
from recbole_qbert.leaderboard.spec import SPEC_KEYS, Spec, load_spec

__all__ = ["COST_KEYS", "HEADLINE", "METRICS", "SPEC_KEYS", "SUBSET_METRICS", "Spec", "collect", "converged",
           "load_spec", "read_record", "render", "render_csv", "render_curves", "render_markdown", "render_plot",
           "render_runs_csv", "run_all", "seen", "summarise"]
