"""A cold-start variant of a dataset: some items are held out of training entirely.

Held-out items are drawn among the items that end at least one user's history, and every interaction
with them is removed except when it is the user's last one. Under the protocol's leave-one-out split
(:mod:`recbole_qbert.data.split`: last item = test, the one before = validation, the rest = training) a
held-out item therefore never appears in training or validation, in any position, but is the test
target of some users. Every item and user stays in the dataset, so item ids, features and the
evaluation over the whole catalogue are unchanged.

Models that represent items by content (QBERT4Rec on codes only, with the held-out items' codes given
by a quantizer that never saw them: ``holdout_items`` in properties/quantize.yaml) can rank them; ID
models hold an untrained vector for them. ``test_subset_items`` (properties/overall.yaml) reports the
test metrics over the events whose target is held out.
"""
import shutil
from pathlib import Path
from typing import Dict, List

import numpy as np

from recbole_qbert.data.atomic_files import read_interactions
from recbole_qbert.data.split import rows_by_user
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import atomic_open, write_json

COLD_ITEMS_FILE = "cold_items.txt"


def read_item_list(path) -> List[str]:
    """One item token per line (blank lines ignored); a missing or empty file is an error."""
    path = Path(path)
    if not path.is_file():
        raise QBertError(f"{path}: item list not found")
    tokens = [line.strip() for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    if not tokens:
        raise QBertError(f"{path}: item list is empty")
    return tokens


def make_cold_split(src: Path, out: Path, name: str, *, share: float, seed: int) -> Dict:
    """Write ``out/<name>/`` (the .inter without the held-out items' training interactions, the other
    atomic files and the converter's YAML copied, ``cold_items.txt``) and return its statistics."""
    if not 0 < share < 1:
        raise QBertError(f"share of held-out items must be in (0, 1), got {share}")
    stem = src.name
    inter_path = src / f"{stem}.inter"
    if not inter_path.is_file():
        raise QBertError(f"{inter_path}: not found")
    inter = read_interactions(inter_path, require_time=True)
    users, groups = rows_by_user(inter.users, inter.times)
    # by user token, each user's rows in the split's time order (ties keep the file order)
    order = np.concatenate([groups[k] for k in np.argsort(users, kind="stable")])
    frame = inter.frame.iloc[order].reset_index(drop=True)
    last = ~frame["user_id"].duplicated(keep="last").to_numpy()
    items = np.unique(frame["item_id"].to_numpy())
    candidates = np.unique(frame["item_id"].to_numpy()[last])
    n_cold = int(round(share * len(items)))
    if n_cold < 1 or n_cold > len(candidates):
        raise QBertError(f"{inter_path}: cannot hold out {n_cold} items ({share:.0%}); {len(candidates)} items end a "
                         "user's history")
    cold = np.sort(np.random.default_rng(seed).choice(candidates, n_cold, replace=False))
    is_cold = np.isin(frame["item_id"].to_numpy(), cold)
    kept = frame[~is_cold | last]

    folder = out / name
    folder.mkdir(parents=True, exist_ok=True)
    for path in sorted(src.iterdir()):
        if path.is_file() and path.suffix in (".item", ".user", ".yaml"):
            shutil.copyfile(path, folder / f"{name}{path.suffix}")
    with atomic_open(folder / COLD_ITEMS_FILE, "w", encoding="utf-8") as f:
        f.write("\n".join(cold.tolist()) + "\n")
    with atomic_open(folder / f"{name}.inter", "w", encoding="utf-8") as f:
        f.write("\t".join(f"{k}:{v}" for k, v in inter.header.items()) + "\n")
        kept.to_csv(f, sep="\t", header=False, index=False)
    lengths = kept.groupby("user_id").size()
    stats = {"source": str(src), "share": share, "seed": seed, "items": int(len(items)), "cold_items": n_cold,
             "interactions_before": int(len(frame)), "interactions_after": int(len(kept)),
             "test_events_with_cold_target": int((is_cold & last).sum()),
             "users": int(len(lengths)), "users_left_with_fewer_than_3": int((lengths < 3).sum())}
    write_json(folder / f"{name}.cold.json", stats)
    return stats
