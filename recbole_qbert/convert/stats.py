"""Statistics of a converted dataset and the check against the published figures."""
from typing import Dict, Optional, Tuple

import pandas as pd

from recbole_qbert.errors import QBertError

# dataset name -> (users, items, interactions) reported by the papers that introduced the split
EXPECTED: Dict[str, Tuple[int, int, int]] = {
    "amazon-beauty": (22363, 12101, 198502),
    "amazon-sports": (35598, 18357, 296337),
    "amazon-scientific": (2928, 1585, 19712),
    "amazon-scientific-full": (8442, 4385, 59427),
}


def dataset_stats(inter: pd.DataFrame, real_timestamps: bool) -> Dict[str, object]:
    """Users, items, interactions, sequence lengths and density of ``user_id``/``item_id`` rows."""
    lengths = inter.groupby("user_id", sort=False).size()
    users, items, n = int(inter["user_id"].nunique()), int(inter["item_id"].nunique()), len(inter)
    return {
        "users": users,
        "items": items,
        "interactions": n,
        "avg_seq_len": round(float(lengths.mean()), 4) if n else 0.0,
        "median_seq_len": float(lengths.median()) if n else 0.0,
        "min_seq_len": int(lengths.min()) if n else 0,
        "max_seq_len": int(lengths.max()) if n else 0,
        "density": n / (users * items) if n else 0.0,
        "timestamps": "real" if real_timestamps else "ordinal",
    }


def published_check(name: str, stats: Dict[str, object]) -> Optional[Dict[str, object]]:
    """``{"expected": (users, items, interactions), "match": bool}``, or ``None`` for an unknown name."""
    expected = EXPECTED.get(name)
    if expected is None:
        return None
    got = (stats["users"], stats["items"], stats["interactions"])
    return {"expected": list(expected), "match": got == expected}


def verify_published(name: str, stats: Dict[str, object]) -> Optional[Dict[str, object]]:
    """:func:`published_check`, raising :class:`QBertError` (both sets of figures) on a mismatch."""
    check = published_check(name, stats)
    if check is not None and not check["match"]:
        users, items, n = check["expected"]
        raise QBertError(
            f"{name}: converted statistics {stats['users']} users / {stats['items']} items / "
            f"{stats['interactions']} interactions do not match the published {users} / {items} / {n}; "
            "nothing was written")
    return check


def format_stats(name: str, stats: Dict[str, object], check: Optional[Dict[str, object]]) -> str:
    """Two lines: the statistics, and how they compare with the published figures."""
    line = (f"{name}: {stats['users']} users, {stats['items']} items, {stats['interactions']} interactions, "
            f"avg length {stats['avg_seq_len']:.2f} (median {stats['median_seq_len']:g}, "
            f"{stats['min_seq_len']}-{stats['max_seq_len']}), density {100 * stats['density']:.4f}%, "
            f"{stats['timestamps']} timestamps")
    if check is None:
        verdict = "no published figures for this name (not checked)"
    else:
        verdict = (f"published {' / '.join(map(str, check['expected']))}: "
                   f"{'match' if check['match'] else 'MISMATCH'}")
    return f"{line}\n  {verdict}"
