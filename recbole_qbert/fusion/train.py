"""Stage-1 training: fit :class:`DynamicCrossModalFusion` on a dataset's views and write the fused matrix.

1. A slice of the items that have content (``holdout_fraction``) is held out: their views and their
   edges in the collaborative graph are never trained on. Each epoch trains on the rest with the
   multi-view contrastive loss (:mod:`recbole_qbert.fusion.losses`) and measures the same loss on the
   held-out items; training stops after ``patience`` epochs without improvement.
2. The held-out items still have their initial ID vectors. ``refit: ids`` (default) then fits only
   those vectors, everything else frozen, on the held-out items' own views and training neighbours
   (as one infers a vector for a new document); ``refit: full`` instead trains a fresh model (same
   seed) on every item for the best epoch count; ``refit: none`` keeps them as they are.
3. Every item's fused vector is computed in eval mode (no dropout, every view) and returned as a
   :class:`FeatureTable` with its metadata, together with the run report (loss curves, alignment
   accuracy per view, gate depth, co-purchase AUC, nearest neighbours).

Everything random (initialisation, held-out slice, batch order, neighbour draws, view and attention
dropout) follows ``seed``: two runs with the same inputs, config and thread count give the same matrix.
"""
import copy
import math
import time
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from recbole_qbert import __version__
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.run_record import peak_memory_mb
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.fusion import evaluate
from recbole_qbert.fusion.data import FusionData, build_fusion_data, sample_neighbours
from recbole_qbert.fusion.losses import multi_view_loss
from recbole_qbert.fusion.model import DynamicCrossModalFusion
from recbole_qbert.safe_io import sha256_json

Log = Callable[[str], None]


def make_model(data: FusionData, cfg: dict) -> DynamicCrossModalFusion:
    try:
        return DynamicCrossModalFusion(
            num_items=data.num_items, view_dims=[f.shape[1] for f in data.features], shared_dim=cfg["shared_dim"],
            num_layers=cfg["num_layers"], num_heads=cfg["num_heads"], ffn_dim=cfg["ffn_dim"],
            dropout=cfg["dropout"], align_temperature=cfg["align_temperature"], gate_hidden=cfg["gate_hidden"],
            gate_bias_init=cfg["gate_bias_init"], fixed_depth=cfg["fixed_depth"], id_init_std=cfg["id_init_std"])
    except ValueError as e:
        raise QBertError(f"fusion config: {e}") from None


def hide_views(mask: torch.Tensor, rate: float, generator: torch.Generator) -> torch.Tensor:
    """``mask`` (B, M) with each present view hidden with probability ``rate``, keeping one per item."""
    if rate <= 0:
        return mask
    drop = torch.rand(mask.shape, generator=generator) < rate
    kept = mask & ~drop
    lost_all = mask.any(dim=1) & ~kept.any(dim=1)
    if lost_all.any():
        # give back one present view, chosen at random among the item's views
        scores = torch.rand(mask.shape, generator=generator).masked_fill(~mask, -1.0)
        pick = scores.argmax(dim=1)
        restore = torch.zeros_like(mask)
        restore[torch.arange(mask.shape[0]), pick] = True
        kept = kept | (restore & lost_all.unsqueeze(1))
    return kept


def _gather(data: FusionData, rows: torch.Tensor, device: str):
    return [f[rows].to(device) for f in data.features], data.mask[rows].to(device)


def train_epoch(model, optimizer, data: FusionData, rows: np.ndarray, adjacency, cfg: dict,
                generator: torch.Generator, rng: np.random.Generator) -> Dict[str, float]:
    model.train()
    device = cfg["device"]
    order = rows[torch.randperm(len(rows), generator=generator).numpy()]
    neighbours = sample_neighbours(adjacency, rng)
    sums: Dict[str, float] = {}
    steps = 0
    for s in range(0, len(order), cfg["batch_size"]):
        batch = order[s:s + cfg["batch_size"]]
        if len(batch) < 2:
            continue
        nb = neighbours[batch]
        has_nb = np.flatnonzero(nb >= 0) if cfg["collab_weight"] > 0 else np.zeros(0, dtype=np.int64)
        items = torch.from_numpy(np.concatenate([batch, nb[has_nb]]))
        feats, mask = _gather(data, items, device)
        shown = hide_views(mask.cpu(), cfg["view_dropout"], generator).to(device)
        out = model(items.to(device), feats, shown)
        b = len(batch)
        targets = F.normalize(model.project_views([f[:b] for f in feats], mask[:b]), dim=-1)
        loss, parts = multi_view_loss(
            out.fused[:b], targets, mask[:b], data.groups[items[:b]].to(device), temperature=cfg["loss_temperature"],
            neighbour_fused=out.fused[b:] if len(has_nb) else None,
            neighbour_rows=torch.from_numpy(has_nb).to(device) if len(has_nb) else None,
            collab_weight=cfg["collab_weight"], expected_depth=out.expected_depth[:b],
            num_layers=cfg["num_layers"], depth_cost=0.0 if cfg["fixed_depth"] is not None else cfg["depth_cost"])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 5.0)
        optimizer.step()
        parts["loss"] = float(loss.detach())
        parts["expected_depth"] = float(out.expected_depth[:b].mean().detach())
        for k, v in parts.items():
            sums[k] = sums.get(k, 0.0) + v
        steps += 1
    return {k: v / max(steps, 1) for k, v in sums.items()}


@torch.no_grad()
def embed(model, data: FusionData, cfg: dict, rows: Optional[np.ndarray] = None) -> Dict[str, np.ndarray]:
    """Eval-mode outputs for ``rows`` (default every item): fused (n, d), views (n, M, d), gate values."""
    model.eval()
    rows = np.arange(data.num_items) if rows is None else rows
    parts: Dict[str, List[np.ndarray]] = {"fused": [], "views": [], "probs": [], "expected": [], "used": []}
    for s in range(0, len(rows), cfg["batch_size"]):
        items = torch.from_numpy(rows[s:s + cfg["batch_size"]])
        feats, mask = _gather(data, items, cfg["device"])
        out = model(items.to(cfg["device"]), feats, mask)
        for key, value in (("fused", out.fused), ("views", out.views), ("probs", out.continue_probs),
                           ("expected", out.expected_depth), ("used", out.used_depth)):
            parts[key].append(value.float().cpu().numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}


@torch.no_grad()
def heldout_metrics(model, data: FusionData, rows: np.ndarray, cfg: dict) -> Dict[str, float]:
    """Mean view InfoNCE over fixed batches of the held-out ``rows``, and their alignment accuracy among themselves."""
    out = embed(model, data, cfg, rows)
    mask, groups = data.mask[rows], data.groups[rows]
    losses = []
    for s in range(0, len(rows), cfg["batch_size"]):
        sl = slice(s, s + cfg["batch_size"])
        if s + 1 >= len(rows):
            continue
        loss, _ = multi_view_loss(torch.from_numpy(out["fused"][sl]), torch.from_numpy(out["views"][sl]), mask[sl],
                                  groups[sl], temperature=cfg["loss_temperature"])
        losses.append(float(loss))
    acc = evaluate.alignment_accuracy(out["fused"], out["views"], mask.numpy(), groups.numpy(), data.view_names)
    return {"loss": float(np.mean(losses)) if losses else float("nan"),
            "mean_accuracy": float(np.nanmean(list(acc.values()))), **{f"acc_{k}": v for k, v in acc.items()}}


@dataclass
class Phase:
    model: DynamicCrossModalFusion
    history: List[dict] = field(default_factory=list)
    best_epoch: int = 0
    stopped_early: bool = False
    seconds: float = 0.0


def run_phase(data: FusionData, cfg: dict, train_rows: np.ndarray, val_rows: np.ndarray, adjacency,
              epochs: int, log: Log, label: str) -> Phase:
    torch.manual_seed(cfg["seed"])
    model = make_model(data, cfg).to(cfg["device"])
    ids = model.id_embedding.weight
    optimizer = torch.optim.AdamW([
        {"params": [p for p in model.parameters() if p is not ids]},
        {"params": [ids], "lr": cfg["id_learning_rate"], "weight_decay": 0.0},
    ], lr=cfg["learning_rate"], weight_decay=cfg["weight_decay"])
    generator = torch.Generator().manual_seed(cfg["seed"])
    rng = np.random.default_rng(cfg["seed"])
    phase = Phase(model=model)
    best, best_state, waited = math.inf, None, 0
    start = time.perf_counter()
    for epoch in range(1, epochs + 1):
        t0 = time.perf_counter()
        record = {"epoch": epoch, **{f"train_{k}": round(v, 4)
                                     for k, v in train_epoch(model, optimizer, data, train_rows, adjacency, cfg,
                                                             generator, rng).items()}}
        if len(val_rows):
            val = heldout_metrics(model, data, val_rows, cfg)
            record.update({f"heldout_{k}": round(v, 4) for k, v in val.items()})
        record["seconds"] = round(time.perf_counter() - t0, 2)
        phase.history.append(record)
        msg = f"  [{label}] epoch {epoch:3d}  loss {record['train_loss']:.4f}  depth {record['train_expected_depth']:.2f}"
        if len(val_rows):
            msg += f"  held-out loss {record['heldout_loss']:.4f}  acc {record['heldout_mean_accuracy']:.3f}"
        log(msg + f"  ({record['seconds']:.1f} s)")
        if not len(val_rows):
            phase.best_epoch = epoch
            continue
        if record["heldout_loss"] < best - 1e-4:
            best, best_state, waited, phase.best_epoch = record["heldout_loss"], copy.deepcopy(model.state_dict()), 0, epoch
        else:
            waited += 1
            if epoch >= cfg["min_epochs"] and waited >= cfg["patience"]:
                phase.stopped_early = True
                break
    if best_state is not None:
        model.load_state_dict(best_state)
    phase.seconds = time.perf_counter() - start
    return phase


def fit_id_vectors(model, data: FusionData, cfg: dict, rows: np.ndarray, log: Log) -> dict:
    """Fit the ID vectors of ``rows`` with every other weight frozen (the other items' vectors unchanged)."""
    weight = model.id_embedding.weight
    before = weight.detach().clone()
    frozen = [p for p in model.parameters() if p is not weight and p.requires_grad]
    for p in frozen:
        p.requires_grad_(False)
    only_rows = torch.zeros(weight.shape[0], 1)
    only_rows[torch.from_numpy(rows)] = 1.0
    hook = weight.register_hook(lambda grad: grad * only_rows.to(grad.device))  # neighbours' vectors stay put
    optimizer = torch.optim.Adam([weight], lr=cfg["id_learning_rate"])
    generator = torch.Generator().manual_seed(cfg["seed"] + 1)
    rng = np.random.default_rng(cfg["seed"] + 1)
    start, curve = time.perf_counter(), []
    try:
        for epoch in range(1, cfg["refit_id_epochs"] + 1):
            parts = train_epoch(model, optimizer, data, rows, data.adjacency, cfg, generator, rng)
            curve.append({"epoch": epoch, **{f"train_{k}": round(v, 4) for k, v in parts.items()}})
    finally:
        hook.remove()
        for p in frozen:
            p.requires_grad_(True)
    keep = torch.ones(weight.shape[0], dtype=torch.bool)
    keep[torch.from_numpy(rows)] = False
    with torch.no_grad():
        weight[keep] = before[keep]
    seconds = time.perf_counter() - start
    if curve:
        log(f"  fitted the ID vectors of {len(rows)} held-out items: {len(curve)} epochs, "
            f"loss {curve[0]['train_loss']:.4f} -> {curve[-1]['train_loss']:.4f} ({seconds:.1f} s)")
    return {"items": int(len(rows)), "epochs": len(curve), "seconds": round(seconds, 1), "loss_curve": curve}


def split_items(data: FusionData, fraction: float, seed: int):
    """``(train rows, held-out rows)``: the held-out slice is drawn among items with at least one view."""
    n = data.num_items
    with_content = np.flatnonzero(data.mask.any(dim=1).numpy())
    k = int(round(fraction * len(with_content)))
    if fraction > 0 and len(with_content) >= 10:
        k = max(k, 2)
    else:
        k = 0
    held = np.sort(np.random.default_rng(seed).permutation(with_content)[:k])
    train = np.setdiff1d(np.arange(n), held)
    return train, held


def check_config(cfg: dict) -> None:
    positive = ("shared_dim", "num_layers", "num_heads", "ffn_dim", "batch_size", "max_epochs", "gate_hidden")
    for key in positive:
        if cfg[key] < 1:
            raise QBertError(f"fusion config: {key} must be at least 1, got {cfg[key]}")
    for key in ("align_temperature", "loss_temperature", "learning_rate", "id_learning_rate"):
        if cfg[key] <= 0:
            raise QBertError(f"fusion config: {key} must be positive, got {cfg[key]}")
    for key in ("holdout_fraction", "view_dropout", "dropout"):
        if not 0 <= cfg[key] < 1:
            raise QBertError(f"fusion config: {key} must be in [0, 1), got {cfg[key]}")
    if cfg["fixed_depth"] is not None and not 0 <= cfg["fixed_depth"] <= cfg["num_layers"]:
        raise QBertError(f"fusion config: fixed_depth must be in 0..num_layers ({cfg['num_layers']}), "
                         f"got {cfg['fixed_depth']}")
    if cfg["refit"] not in ("ids", "full", "none"):
        raise QBertError(f"fusion config: refit must be ids, full or none, got {cfg['refit']!r}")
    if cfg["batch_size"] < 2:
        raise QBertError("fusion config: batch_size must be at least 2 (in-batch negatives)")


def train_fusion(catalog: ItemCatalog, tables: Dict[str, FeatureTable], cfg: dict,
                 log: Log = print) -> Tuple[FeatureTable, dict]:
    """Train on ``tables`` (aligned to ``catalog``) and return ``(fused table, report)``."""
    check_config(cfg)
    if cfg["threads"]:
        torch.set_num_threads(cfg["threads"])
    start = time.perf_counter()
    data = build_fusion_data(catalog, tables)
    train_rows, held_rows = split_items(data, cfg["holdout_fraction"], cfg["seed"])
    allowed = np.ones(data.num_items, dtype=bool)
    allowed[held_rows] = False
    log(f"{catalog.name}: {data.num_items} items, views {', '.join(data.view_names)}; "
        f"{len(held_rows)} items held out for early stopping")

    first = run_phase(data, cfg, train_rows, held_rows, data.restrict_adjacency(allowed), cfg["max_epochs"],
                      log, "fit")
    held_eval = embed(first.model, data, cfg)
    mask_np, groups_np = data.mask.numpy(), data.groups.numpy()
    heldout_acc = evaluate.alignment_accuracy(held_eval["fused"], held_eval["views"], mask_np, groups_np,
                                              data.view_names, rows=held_rows) if len(held_rows) else {}
    final, id_fit = first, None
    if cfg["refit"] == "full" and len(held_rows):
        log(f"  refit on all {data.num_items} items for {first.best_epoch} epochs")
        final = run_phase(data, cfg, np.arange(data.num_items), np.zeros(0, dtype=np.int64), data.adjacency,
                          first.best_epoch, log, "refit")
    elif cfg["refit"] == "ids" and len(held_rows):
        id_fit = fit_id_vectors(first.model, data, cfg, held_rows, log)
    out = embed(final.model, data, cfg)
    train_seconds = time.perf_counter() - start

    # ---- report
    rng = np.random.default_rng(cfg["seed"])
    pairs = evaluate.evaluation_pairs(catalog, rng, cfg["report_max_train_pairs"])
    auc = {"fused": {k: evaluate.pair_auc(out["fused"], p, np.random.default_rng(cfg["seed"]))
                     for k, p in pairs.items()}}
    for m, name in enumerate(data.view_names):
        raw = data.features[m].numpy()
        auc[f"input:{name}"] = {k: evaluate.pair_auc(raw, p, np.random.default_rng(cfg["seed"]), mask_np[:, m])
                                for k, p in pairs.items()}
    auc["random_vectors"] = {k: evaluate.pair_auc(np.random.default_rng(cfg["seed"]).standard_normal(
        (data.num_items, 16)), p, np.random.default_rng(cfg["seed"])) for k, p in pairs.items()}
    counts = catalog.train_counts()
    popular = np.argsort(-counts, kind="stable")[: max(cfg["report_neighbour_items"] // 2, 1)].tolist()
    others = [int(r) for r in rng.permutation(data.num_items) if r not in popular]
    chosen = popular + others[: cfg["report_neighbour_items"] - len(popular)]
    has_nb = np.asarray(data.adjacency.getnnz(axis=1)) > 0
    no_signal = int((~data.mask.numpy().any(axis=1) & ~has_nb).sum())
    report = {
        "items": data.num_items,
        "views": {n: {"dim": int(data.features[m].shape[1]), "present": int(mask_np[:, m].sum()),
                      "distinct_contents": int(len(np.unique(groups_np[mask_np[:, m], m])))}
                  for m, n in enumerate(data.view_names)},
        "items_without_any_view": int((~mask_np.any(axis=1)).sum()),
        "items_without_any_signal": no_signal,
        "held_out_items": int(len(held_rows)),
        "fit": {"epochs_run": len(first.history), "best_epoch": first.best_epoch,
                "stopped_early": first.stopped_early, "seconds": round(first.seconds, 1),
                "loss_curve": first.history},
        "refit": ({"mode": "full", "epochs": len(final.history), "seconds": round(final.seconds, 1),
                   "loss_curve": final.history} if final is not first else
                  {"mode": "ids", **id_fit} if id_fit else {"mode": cfg["refit"]}),
        "alignment_accuracy": {
            "all_items_final_model": evaluate.alignment_accuracy(out["fused"], out["views"], mask_np, groups_np,
                                                                 data.view_names),
            "held_out_items_early_stopped_model": heldout_acc,
            "chance": evaluate.chance_accuracy(mask_np, groups_np, data.view_names),
            "definition": "top-1 retrieval of the item's own projected view vector among all items having that "
                          "view, by cosine with its fused vector (identical contents count as its own)",
        },
        "gate": evaluate.depth_stats(out["probs"], out["expected"], out["used"], mask_np, cfg["num_layers"]),
        "auc": auc,
        "auc_definition": "P(cos(a,b) > cos(a,c)) for co-purchase pairs (a,b) and a uniformly random item c. "
                          "valid: each user's last training item -> validation item (never seen by stage 1); "
                          "valid_unseen: those pairs never together in any training sequence; "
                          "train_adjacent: adjacent items of training sequences (seen by the collaborative view).",
        "nearest_neighbours": evaluate.nearest_neighbours(catalog, out["fused"], chosen),
        "fusion_seconds": round(train_seconds, 1),
        "fusion_peak_rss_mb": peak_memory_mb()["rss_mb"],
    }
    meta = {
        "modality": "fused", "view": "fused", "dim": int(out["fused"].shape[1]), "normalised": "l2",
        "dataset": catalog.name, "dataset_files_hash": catalog.files_hash, "n_items": data.num_items,
        "encoder": "DynamicCrossModalFusion", "config": cfg, "package_version": __version__,
        "inputs": {n: {"content_hash": t.content_hash(), "meta_input_hash": t.meta.get("input_hash"),
                       "encoder": t.meta.get("encoder")} for n, t in tables.items()},
        "input_hash": sha256_json([catalog.files_hash, {n: t.content_hash() for n, t in tables.items()}, cfg])[:16],
        "epochs": {"fit": len(first.history), "best": first.best_epoch,
                   "refit": cfg["refit"]},
        "items_without_any_view": report["items_without_any_view"],
        "items_without_any_signal": no_signal,
        "mean_expected_depth": report["gate"]["mean_expected_depth"],
    }
    fused = FeatureTable(catalog.tokens, out["fused"], np.ones(data.num_items, dtype=bool), meta,
                         source=f"{catalog.name} fused")
    return fused, report
