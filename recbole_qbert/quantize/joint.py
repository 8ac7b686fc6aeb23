"""Joint quantization: one RQ-VAE over the items of several datasets, one semantic-ID file per dataset.

Cross-domain pretraining (e.g. pretrain on Sports, fine-tune on Beauty) transfers the code embeddings
only if code ``c`` of level ``l`` is the same code in both datasets, so the datasets must share one
codebook and the same codebook sizes. Here the items of all datasets are stacked, one quantizer is
trained on them, and collisions are resolved *within* each dataset (an item only has to be unique in its
own catalogue). The disambiguation level is sized to the largest group of any dataset, so every file
has identical ``codebook_sizes`` and a model trained on one loads the other's vocabulary.

Outputs, for each dataset ``D``, at ``sid_file`` with ``{dataset}`` = ``D`` (default
``build/sid/joint-<D1>+<D2>/<D>.sid``): the ``.sid`` pair and a copy of the shared quantizer
checkpoint beside it (so ``quantize assign`` works per dataset), plus one ``joint.report.json`` with
per-dataset figures and how many codes the datasets share.
"""
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from recbole_qbert.config import PROJECT_ROOT, shown_path
from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.checkpoint import save_quantizer
from recbole_qbert.quantize.collisions import collision_stats, prefix_stats, resolve
from recbole_qbert.quantize.dataset_items import item_tokens
from recbole_qbert.quantize.stage import features_paths, load_features, sid_meta, train_outputs
from recbole_qbert.quantize.train import assign_codes, level_stats, reconstruction_stats, train_rqvae
from recbole_qbert.safe_io import sha256_file, write_json
from recbole_qbert.semantic_ids import SemanticIDs, resolve_sid_path, write_semantic_ids

Log = Callable[[str], None]


def joint_sid_path(settings: Dict, datasets: Sequence[str], dataset: str) -> Path:
    """Where ``dataset``'s file of a joint run goes: ``sid_file`` with ``{dataset}`` replaced, or
    ``build/sid/joint-<D1>+<D2>/<dataset>.sid``."""
    value = settings.get("sid_file")
    if value in (None, "", "None", "~"):
        return PROJECT_ROOT / "build" / "sid" / ("joint-" + "+".join(datasets)) / f"{dataset}.sid"
    if "{dataset}" not in str(value):
        raise QBertError(f"sid_file {value!r}: a joint quantization writes one file per dataset, so the path "
                         "must contain '{dataset}'")
    return resolve_sid_path(value, dataset)


def joint_report_path(settings: Dict, datasets: Sequence[str]) -> Path:
    """``joint.report.json``, beside the first dataset's file."""
    return joint_sid_path(settings, datasets, datasets[0]).with_name("joint.report.json")


def code_overlap(codes: Dict[str, np.ndarray], n_levels: int) -> List[Dict]:
    """Per level: codes used by each dataset and by all of them (the vocabulary a transfer can reuse)."""
    out = []
    for level in range(n_levels):
        used = {ds: set(np.unique(c[:, level]).tolist()) for ds, c in codes.items()}
        shared = set.intersection(*used.values())
        out.append({"level": level + 1, "used": {ds: len(u) for ds, u in used.items()},
                    "shared_by_all": len(shared)})
    return out


def run_train_joint(datasets: Sequence[str], settings: Dict, *, data_path: Optional[str] = None,
                    report_path: Optional[Path] = None, command: str = "", log: Log = print) -> Dict:
    """Quantize the items of ``datasets`` with one RQ-VAE; write one semantic-ID file per dataset."""
    from recbole_qbert.run_record import git_commit, machine_info

    datasets = list(datasets)
    if len(set(datasets)) != len(datasets) or len(datasets) < 2:
        raise QBertError(f"joint quantization needs at least two different datasets, got {datasets}")
    t0 = time.perf_counter()
    tables, shown = {}, {}
    for ds in datasets:
        paths = features_paths(settings, ds)
        tables[ds] = load_features(paths, item_tokens(ds, data_path), settings["absent_items"])
        shown[ds] = [shown_path(p) for p in paths]
        log(f"{ds}: {len(tables[ds])} items, features {' + '.join(shown[ds])} ({tables[ds].dim}-d)")
    dims = {ds: t.dim for ds, t in tables.items()}
    if len(set(dims.values())) != 1:
        raise QBertError(f"joint quantization needs features of one dimension, got {dims}")
    bounds = np.cumsum([0] + [len(tables[ds]) for ds in datasets])
    matrix = np.concatenate([tables[ds].matrix for ds in datasets])

    trained = train_rqvae(matrix, settings, log=log)
    model = trained.model
    assignment = assign_codes(model, matrix)
    rows = {ds: slice(int(bounds[i]), int(bounds[i + 1])) for i, ds in enumerate(datasets)}
    resolved, extras = {}, {}
    for ds, sl in rows.items():
        resolved[ds], extras[ds] = resolve(assignment.codes[sl], settings["collision_strategy"],
                                           priority=assignment.priority[sl], candidates=assignment.candidates[sl])
    sizes = [settings["codebook_size"]] * settings["n_levels"]
    if settings["collision_strategy"] == "extra_level":
        sizes.append(max(extras.values()))  # one size for all, so the vocabularies match

    ckpt_meta = {"dataset": "+".join(datasets), "joint_datasets": datasets,
                 "collision_strategy": settings["collision_strategy"],
                 "features_hash": {ds: tables[ds].meta["content_hash"] for ds in datasets},
                 "settings": {**settings, "features": {ds: shown[ds] for ds in datasets}}}
    per_dataset = {}
    for ds, sl in rows.items():
        sid_path = joint_sid_path(settings, datasets, ds)
        ds_settings = {**settings, "features": shown[ds][0] if len(shown[ds]) == 1 else shown[ds]}
        meta = sid_meta(ds, tables[ds], ds_settings)
        meta["kind"] = "joint"
        meta["joint"] = {"datasets": datasets, "items": {d: len(tables[d]) for d in datasets}}
        ckpt = train_outputs(sid_path)["checkpoint"]
        save_quantizer(ckpt, model, ckpt_meta)  # the same bytes beside every dataset's file
        meta["quantizer"] = {"file": ckpt.name, "sha256": sha256_file(ckpt)}
        written = write_semantic_ids(sid_path, SemanticIDs(tables[ds].tokens, resolved[ds], sizes,
                                                           source=str(sid_path)), meta)
        codes = assignment.codes[sl]
        per_dataset[ds] = {
            "items": len(tables[ds]),
            "features": meta["features"],
            "reconstruction": reconstruction_stats(model, tables[ds].matrix, codes),
            "levels": level_stats(codes, [settings["codebook_size"]] * settings["n_levels"]),
            "collisions": {"before": collision_stats(codes), "after": collision_stats(resolved[ds])},
            "prefixes": prefix_stats(codes),
            "outputs": {"sid": shown_path(sid_path), "sid_sha256": written["sid_sha256"],
                        "checkpoint": shown_path(ckpt)},
        }
        log(f"{ds}: wrote {shown_path(sid_path)}")
    report = {
        "datasets": datasets,
        "command": command,
        "settings": settings,
        "codebook_sizes": sizes,
        "per_dataset": per_dataset,
        "shared_codes": code_overlap({ds: assignment.codes[sl] for ds, sl in rows.items()}, settings["n_levels"]),
        "training": {"epochs": settings["epochs"], "history": trained.history,
                     "dead_codes_reset_per_level": trained.resets_per_level},
        "time_s": {"train": round(trained.seconds, 2), "total": round(time.perf_counter() - t0, 2)},
        "machine": {**machine_info(), "note": "shared machine; timings are indicative"},
        "git_commit": git_commit(),
    }
    write_json(joint_report_path(settings, datasets), report)
    if report_path is not None:
        write_json(report_path, report)
    return report
