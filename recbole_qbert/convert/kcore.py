"""Iterative k-core filtering of (user, item) interactions."""
import pandas as pd


def kcore_filter(inter: pd.DataFrame, k: int, user_col: str = "user_id", item_col: str = "item_id"
                 ) -> pd.DataFrame:
    """Rows of ``inter`` left once every user and every item has at least ``k`` interactions.

    Dropping a sparse item can push a user below ``k`` and vice versa, so the filter repeats until
    nothing changes. Row order is kept; ``k <= 1`` keeps everything.
    """
    while len(inter):
        user_counts = inter.groupby(user_col, sort=False)[user_col].transform("size")
        item_counts = inter.groupby(item_col, sort=False)[item_col].transform("size")
        keep = ((user_counts >= k) & (item_counts >= k)).to_numpy()
        if keep.all():
            break
        inter = inter[keep]
    return inter
