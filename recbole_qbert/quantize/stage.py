"""Stage 2 end to end: features -> RQ-VAE -> unique codes -> semantic-ID file, checkpoint and report.

Outputs, beside ``sid_file`` (default ``build/sid/<dataset>/<dataset>.sid``):

* ``<name>.sid`` + ``<name>.sid.json``: the semantic IDs (:mod:`recbole_qbert.semantic_ids`);
* ``<name>.rqvae.safetensors``: the trained quantizer, to give NEW items codes without retraining
  (:func:`assign_new_items`);
* ``<name>.report.json``: reconstruction error, per-level utilisation and perplexity, collision rate
  before and after resolution, items per shared prefix, timings, the settings and the command.
"""
import hashlib
import os
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Sequence

import numpy as np

from recbole_qbert import __version__
from recbole_qbert.config import PROJECT_ROOT, project_path, shown_path
from recbole_qbert.errors import QBertError
from recbole_qbert.features import FeatureTable
from recbole_qbert.quantize.checkpoint import load_quantizer, save_quantizer
from recbole_qbert.quantize.collisions import collision_stats, prefix_stats, resolve
from recbole_qbert.quantize.dataset_items import item_tokens
from recbole_qbert.quantize.train import (assign_codes, level_stats, reconstruction_stats, train_rqvae)
from recbole_qbert.safe_io import sha256_file, sha256_json, write_json
from recbole_qbert.semantic_ids import (SemanticIDs, meta_path, read_semantic_ids, resolve_sid_path,
                                        write_semantic_ids)

Log = Callable[[str], None]


def features_paths(settings: Dict, dataset: str) -> List[Path]:
    """The feature tables to quantize: the ``features`` setting (one path or a list, concatenated in
    that order), else stage 1's fused table."""
    value = settings.get("features")
    if value:
        values = value if isinstance(value, (list, tuple)) else [value]
        return [project_path(str(v).replace("{dataset}", dataset)) for v in values]
    path = PROJECT_ROOT / "build" / "fused" / dataset / "fused.npz"
    if not path.is_file():
        raise QBertError(f"{path}: no fused features for '{dataset}' (run stage 1), or quantize another "
                         f"feature table with --features, e.g. build/features/{dataset}/text.npz")
    return [path]


def load_features(paths: Sequence[Path], tokens: Optional[Sequence[str]] = None,
                  absent_items: str = "error") -> FeatureTable:
    """The rows for exactly ``tokens`` (default: the first table's items), the tables' columns side by
    side. A table with items beyond ``tokens`` is refused (features of another item set); an item is
    absent when any table lacks its content."""
    tables = [FeatureTable.load(p) for p in paths]
    if not tables:
        raise QBertError("no feature table given")
    tokens = tables[0].tokens.tolist() if tokens is None else list(tokens)
    aligned = [t.align(tokens) for t in tables]
    present = np.logical_and.reduce([a.present for a in aligned])
    hashes = [t.content_hash() for t in tables]
    meta = {
        "content_hash": hashes[0] if len(hashes) == 1 else sha256_json(hashes)[:16],
        "tables": [{"path": shown_path(p), "content_hash": h, "dim": t.dim, "meta": t.meta}
                   for p, h, t in zip(paths, hashes, tables)],
    }
    table = FeatureTable(tokens, np.concatenate([a.matrix for a in aligned], axis=1), present, meta,
                         source=", ".join(str(p) for p in paths))
    absent = ~table.present
    if absent.any() and absent_items == "error":
        raise QBertError(f"{table.source}: {int(absent.sum())} items have no content (e.g. {table.tokens[absent][0]}); "
                         "use a fused table, or set absent_items: zeros")
    return table


def quantize(matrix: np.ndarray, settings: Dict, *, log: Optional[Log] = None,
             held_out: Optional[np.ndarray] = None) -> Dict:
    """Train, assign and resolve; returns the model, codes and figures (no files written).

    ``held_out`` ``(n,)`` bool: rows the quantizer does not train on; they are coded afterwards and their
    collisions resolved around the trained rows' tuples, exactly as new items would be."""
    held_out = np.zeros(len(matrix), dtype=bool) if held_out is None else held_out
    trained = train_rqvae(matrix[~held_out], settings, log=log)
    model = trained.model
    start = time.perf_counter()
    assignment = assign_codes(model, matrix)
    sizes = [settings["codebook_size"]] * settings["n_levels"]
    before = collision_stats(assignment.codes)
    strategy = settings["collision_strategy"]
    resolved = np.zeros((len(matrix), settings["n_levels"] + (strategy == "extra_level")), dtype=np.int64)
    extra = None
    taken = []
    for rows in (~held_out, held_out):
        if rows.any():
            resolved[rows], size = resolve(assignment.codes[rows], strategy, priority=assignment.priority[rows],
                                           candidates=assignment.candidates[rows], taken=taken)
            taken = resolved[rows].tolist()
            extra = size if extra is None or size is None else max(extra, size)
    if extra is not None:
        sizes = sizes + [extra]
    return {
        "model": model,
        "codes": assignment.codes,
        "resolved": resolved,
        "codebook_sizes": sizes,
        "train": trained,
        "assign_s": time.perf_counter() - start,
        "before": before,
    }


def train_outputs(sid_path: Path) -> Dict[str, Path]:
    """The files a training run writes for ``sid_path``: the semantic IDs, their metadata, the quantizer
    and the report (the module docstring lists them)."""
    return {"sid": sid_path, "meta": meta_path(sid_path),
            "checkpoint": sid_path.with_name(sid_path.stem + ".rqvae.safetensors"),
            "report": sid_path.with_name(sid_path.stem + ".report.json")}


def sid_meta(dataset: str, table: FeatureTable, settings: Dict) -> Dict:
    return {
        "dataset": dataset,
        "kind": "dataset",
        "collision_strategy": settings["collision_strategy"],
        "n_quantized_levels": settings["n_levels"],
        "extra_level": settings["collision_strategy"] == "extra_level",
        "features": {"content_hash": table.meta["content_hash"], "dim": table.dim, "n_items": len(table),
                     "absent_items": int((~table.present).sum()), "tables": table.meta["tables"]},
        "config": settings,
        "package_version": __version__,
    }


def run_train(dataset: str, settings: Dict, *, data_path: Optional[str] = None,
              report_path: Optional[Path] = None, check_determinism: bool = False,
              examples: Optional[Callable[[SemanticIDs], Dict]] = None, command: str = "",
              log: Log = print) -> Dict:
    """Quantize ``dataset``'s items and write the semantic IDs, checkpoint and report."""
    from recbole_qbert.run_record import git_commit, machine_info

    t0 = time.perf_counter()
    tokens = item_tokens(dataset, data_path)
    fpaths = features_paths(settings, dataset)
    table = load_features(fpaths, tokens, settings["absent_items"])
    shown = [shown_path(p) for p in fpaths]
    settings = {**settings, "features": shown[0] if len(shown) == 1 else shown}
    sid_path = resolve_sid_path(settings["sid_file"], dataset)
    log(f"{dataset}: {len(tokens)} items, features {' + '.join(shown)} ({table.dim}-d, hash "
        f"{table.meta['content_hash']})")
    load_s = time.perf_counter() - t0

    held_out = None
    if settings.get("holdout_items"):
        from recbole_qbert.data.cold_start import read_item_list

        holdout = set(read_item_list(settings["holdout_items"]))
        unknown = sorted(holdout - set(table.tokens.tolist()))
        if unknown:
            raise QBertError(f"{settings['holdout_items']}: {len(unknown)} items are not in '{dataset}' (e.g. {unknown[0]})")
        held_out = np.isin(table.tokens, sorted(holdout))
        log(f"holding out {int(held_out.sum())} items from the quantizer's training")
    result = quantize(table.matrix, settings, log=log, held_out=held_out)
    sizes = result["codebook_sizes"]
    meta = sid_meta(dataset, table, settings)
    sid = SemanticIDs(table.tokens, result["resolved"], sizes, source=str(sid_path))

    t1 = time.perf_counter()
    ckpt = train_outputs(sid_path)["checkpoint"]
    save_quantizer(ckpt, result["model"], {"dataset": dataset, "collision_strategy": settings["collision_strategy"],
                                           "features_hash": table.meta["content_hash"], "settings": settings})
    meta["quantizer"] = {"file": ckpt.name, "sha256": sha256_file(ckpt)}
    written = write_semantic_ids(sid_path, sid, meta)
    sid.meta = written
    write_s = time.perf_counter() - t1

    quantized_levels = result["codes"]
    report = {
        "dataset": dataset,
        "command": command,
        "items": len(tokens),
        "features": meta["features"],
        "settings": settings,
        "reconstruction": reconstruction_stats(result["model"], table.matrix, quantized_levels),
        "levels": level_stats(quantized_levels, [settings["codebook_size"]] * settings["n_levels"]),
        "collisions": {
            "strategy": settings["collision_strategy"],
            "before": result["before"],
            "after": collision_stats(result["resolved"]),
            "codebook_sizes_after": sizes,
        },
        "prefixes": prefix_stats(quantized_levels),
        "training": {"epochs": settings["epochs"], "dead_codes_reset_per_level": result["train"].resets_per_level,
                     "history": result["train"].history},
        "time_s": {"load": round(load_s, 2), "train": round(result["train"].seconds, 2),
                   "assign_and_resolve": round(result["assign_s"], 2), "write": round(write_s, 2)},
        "outputs": {"sid": shown_path(sid_path), "sid_sha256": written["sid_sha256"],
                    "checkpoint": shown_path(ckpt), "checkpoint_sha256": meta["quantizer"]["sha256"]},
    }
    if report["collisions"]["after"]["colliding_items"]:
        raise QBertError("internal error: collisions left after resolution")  # SemanticIDs checks it too
    report["time_s"]["total"] = round(time.perf_counter() - t0, 2)  # without the determinism re-run
    if check_determinism:
        t2 = time.perf_counter()
        again = quantize(table.matrix, settings, held_out=held_out)
        sid2 = SemanticIDs(table.tokens, again["resolved"], again["codebook_sizes"])
        digest = hashlib.sha256(sid2.render()).hexdigest()
        report["determinism"] = {
            "check": "trained a second time in the same process with the same seed and compared the .sid bytes",
            "sid_sha256": [written["sid_sha256"], digest],
            "identical": digest == written["sid_sha256"],
            "seconds": round(time.perf_counter() - t2, 2),
        }
        log(f"determinism: second run {'identical' if report['determinism']['identical'] else 'DIFFERS'}")
    if examples is not None:
        report["examples"] = examples(sid)
    report["machine"] = {**machine_info(), "note": "shared machine; timings are indicative",
                         "cpu_threads_env": os.environ.get("OMP_NUM_THREADS")}
    report["git_commit"] = git_commit()
    write_json(train_outputs(sid_path)["report"], report)
    if report_path is not None:
        write_json(report_path, report)
    return report


def assign_new_items(checkpoint: Path, features: Sequence[Path], out: Path, *, base_sid: Optional[Path] = None,
                     absent_items: str = "error", log: Log = print) -> Dict:
    """Codes for items the quantizer never saw, from their features alone (no retraining).

    With ``base_sid`` (the dataset's semantic-ID file made by the same checkpoint), new tuples avoid the
    existing ones: the extra level continues each group's numbering (and may grow), ``reassign`` takes
    free last-level codes. ``out`` receives the new items only, as a semantic-ID file of kind
    ``cold_start``."""
    model, ckpt_meta = load_quantizer(checkpoint)
    features = [features] if isinstance(features, (str, Path)) else list(features)
    table = load_features(features, None, absent_items)
    if table.dim != model.init_args["in_dim"]:
        raise QBertError(f"{table.source}: {table.dim}-d features, but quantizer {checkpoint} was trained on "
                         f"{model.init_args['in_dim']}-d ones; give the features of the same encoder and fusion")
    strategy = ckpt_meta["collision_strategy"]
    n_levels, k = model.n_levels, model.codebook_size
    taken, sizes = [], [k] * n_levels
    base_meta = {}
    if base_sid is not None:
        base = read_semantic_ids(base_sid)
        base_meta = base.meta
        quantizer = base.meta.get("quantizer", {})
        if quantizer.get("sha256") != sha256_file(checkpoint):
            raise QBertError(f"{base_sid}: was made with another quantizer than {checkpoint}")
        overlap = sorted(set(base.tokens.tolist()) & set(table.tokens.tolist()))
        if overlap:
            raise QBertError(f"{table.source}: {len(overlap)} items already have semantic IDs in {base_sid} "
                             f"(e.g. {overlap[0]})")
        taken, sizes = base.codes.tolist(), list(base.codebook_sizes)
    assignment = assign_codes(model, table.matrix)
    resolved, extra = resolve(assignment.codes, strategy, priority=assignment.priority,
                              candidates=assignment.candidates, taken=taken)
    grown = None
    if extra is not None:
        if base_sid is None:
            sizes = sizes + [extra]
        elif extra > sizes[-1]:
            grown = {"from": sizes[-1], "to": extra}
            sizes = sizes[:-1] + [extra]
    sid = SemanticIDs(table.tokens, resolved, sizes, source=str(out))
    meta = {"dataset": ckpt_meta.get("dataset"), "kind": "cold_start", "collision_strategy": strategy,
            "n_quantized_levels": n_levels, "quantizer": {"file": shown_path(checkpoint),
                                                         "sha256": sha256_file(checkpoint)},
            "features": {"content_hash": table.meta["content_hash"], "tables": table.meta["tables"]},
            "base_sid": {"path": shown_path(base_sid), "sid_sha256": base_meta.get("sid_sha256")} if base_sid else None,
            "extra_level_grew": grown, "package_version": __version__}
    write_semantic_ids(out, sid, meta)
    base_prefixes = {}
    for row in taken:
        for length in range(1, n_levels + 1):
            base_prefixes.setdefault(length, set()).add(tuple(row[:length]))
    items = []
    for token, codes in zip(sid.tokens.tolist(), sid.codes.tolist()):
        shared = max([0] + [length for length in range(1, n_levels + 1)
                            if tuple(codes[:length]) in base_prefixes.get(length, ())])
        items.append({"item": token, "codes": codes, "prefix_levels_shared_with_known_items": shared})
    report = {"items": items, "collisions_before": collision_stats(assignment.codes),
              "codebook_sizes": sizes, "extra_level_grew": grown, "out": shown_path(out)}
    if grown:
        log(f"warning: the extra level grew from {grown['from']} to {grown['to']} codes; a model trained on "
            "the base file needs a larger table for that level")
    return report
