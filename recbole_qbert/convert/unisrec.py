"""The UniSRec format: ``<P>.{train,valid,test}.inter``, ``<P>.item2index``, ``<P>.user2index``, ``<P>.text``.

The split files hold ``user index, item_id_list, item index`` rows: ``test`` one row per user whose
list plus target is the user's whole chronological sequence, ``valid`` that sequence without its last
item, ``train`` every prefix ending before the last two items. Histories may be cut to their last items
(UniSRec keeps 50): a long sequence is then rebuilt from the rows that overlap. Users and items are
written under their original reviewerID / ASIN, with ordinal timestamps. The item field ``text``
(token_seq) comes from ``<P>.text``.
"""
from collections import defaultdict
from pathlib import Path
from typing import Dict, Iterator, List, Tuple

import pandas as pd

from recbole_qbert.convert.dataset import ConvertedDataset, ordinal_inter
from recbole_qbert.convert.inputs import parse_int, read_tsv, require_file
from recbole_qbert.convert.text import clean_text
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike

_SPLIT_HEADER = ["user_id:token", "item_id_list:token_seq", "item_id:token"]
_TEXT_HEADER = ["item_id:token", "text:token_seq"]


def _prefix(src: Path) -> str:
    if not src.is_dir():
        raise QBertError(f"{src}: folder not found")
    found = sorted(p.name[: -len(".item2index")] for p in src.glob("*.item2index"))
    if len(found) != 1:
        raise QBertError(f"{src}: expected exactly one '*.item2index', found {len(found)}")
    return found[0]


def _read_index(path: Path) -> List[str]:
    """Tokens by index from ``token<TAB>index`` lines; the indices must be 0..n-1, each once."""
    tokens: Dict[int, str] = {}
    for lineno, (token, value) in read_tsv(path, 2):
        index = parse_int(value, path, lineno, "index")
        if index in tokens:
            raise QBertError(f"{path}: line {lineno}: index {index} appears twice")
        tokens[index] = token
    if sorted(tokens) != list(range(len(tokens))):
        raise QBertError(f"{path}: indices are not 0..{len(tokens) - 1}")
    if len(set(tokens.values())) != len(tokens):
        raise QBertError(f"{path}: a token appears under two indices")
    return [tokens[i] for i in range(len(tokens))]


def _read_split(path: Path, n_users: int, n_items: int) -> Iterator[Tuple[int, int, List[int]]]:
    """``(line number, user index, item list + [target])`` per row, indices range-checked."""
    for lineno, (user, history, target) in read_tsv(path, 3, header=_SPLIT_HEADER):
        user_index = parse_int(user, path, lineno, "user index")
        items = [parse_int(i, path, lineno, "item index") for i in history.split(" ") if i] + \
                [parse_int(target, path, lineno, "item index")]
        if user_index >= n_users or max(items) >= n_items:
            raise QBertError(f"{path}: line {lineno}: user or item index out of range "
                             f"({n_users} users, {n_items} items)")
        yield lineno, user_index, items


def _history(seq: List[int], k: int, cap: int) -> List[int]:
    """The history a row predicting ``seq[k]`` holds: the items before it, the last ``cap`` of them."""
    return seq[max(0, k - cap):k]


def _rebuild(user: int, rows: List[Tuple[Path, int, List[int]]], cap: int) -> List[int]:
    """A user's whole sequence from its rows ``(file, line, history + [target])``, the test row last.

    UniSRec cuts ``item_id_list`` to the last ``cap`` items, so a long history is not whole in any one
    row: the untruncated rows give its start, and each row whose history is a full window of ``cap``
    items adds the item after that window."""
    path, lineno, test = rows[-1]
    if len(test) - 1 < cap:
        return test
    whole = [items for _, _, items in rows if len(items) - 1 < cap]
    if not whole:
        raise QBertError(f"{path}: line {lineno}: user {user}: no row holds the start of its sequence")
    seq = list(max(whole, key=len))
    after: Dict[Tuple[int, ...], set] = defaultdict(set)
    for _, _, items in rows:
        if len(items) - 1 == cap:
            after[tuple(items[:-1])].add(items[-1])
    while True:
        nxt = after.get(tuple(seq[-cap:]))
        if not nxt:
            return seq
        if len(nxt) > 1 or len(seq) > len(rows) + cap:
            raise QBertError(f"{path}: line {lineno}: user {user}: its truncated rows do not chain into one "
                             "sequence")
        seq.append(next(iter(nxt)))


def _sequences(src: Path, prefix: str, n_users: int, n_items: int) -> Dict[int, List[int]]:
    """user index -> whole item-index sequence, rebuilt from the three splits and checked against them:
    ``test`` ends it, ``valid`` is it without the last item, ``train`` holds every prefix ending before
    the last two items, each row's history cut to the same longest length (UniSRec uses 50)."""
    test, valid, train = (require_file(src / f"{prefix}.{split}.inter") for split in ("test", "valid", "train"))
    rows = {path: list(_read_split(path, n_users, n_items)) for path in (test, valid, train)}
    cap = max(len(items) - 1 for split in rows.values() for _, _, items in split)
    by_user: Dict[int, List[Tuple[Path, int, List[int]]]] = defaultdict(list)
    for path in (train, valid, test):
        for lineno, user, items in rows[path]:
            by_user[user].append((path, lineno, items))

    full: Dict[int, List[int]] = {}
    for lineno, user, items in rows[test]:
        if user in full:
            raise QBertError(f"{test}: line {lineno}: user {user} has two rows")
        full[user] = items
    full = {user: _rebuild(user, by_user[user], cap) for user in full}

    seen_valid = set()
    for lineno, user, items in rows[valid]:
        seq = full.get(user)
        if seq is None or items != _history(seq, len(seq) - 2, cap) + [seq[-2]] or user in seen_valid:
            raise QBertError(f"{valid}: line {lineno}: row of user {user} is not its test sequence "
                             "without the last item (or is repeated)")
        seen_valid.add(user)
    if seen_valid != set(full):
        raise QBertError(f"{valid}: {len(set(full) - seen_valid)} users of the test split have no row")

    prefixes: Dict[int, List[int]] = defaultdict(list)
    for lineno, user, items in rows[train]:
        seq = full.get(user)
        # the prefix a row is: by its length when whole, else the first unclaimed place its window fits
        fits = [] if seq is None else [k for k in range(1, len(seq) - 2)
                                       if items == _history(seq, k, cap) + [seq[k]] and k not in prefixes[user]]
        if not fits:
            raise QBertError(f"{train}: line {lineno}: row of user {user} is not a prefix of its test "
                             "sequence ending before the last two items")
        prefixes[user].append(fits[0])
    for user, seq in full.items():
        # every prefix of length 2..n-2 exactly once (a 1-item prefix has no history to train on)
        if sorted(prefixes.get(user, [])) != list(range(1, len(seq) - 2)):
            raise QBertError(f"{train}: user {user}: training rows are not exactly the prefixes of its "
                             f"test sequence of length 2..{len(seq) - 2}")
    return full


def _read_text(path: Path) -> Dict[str, str]:
    texts: Dict[str, str] = {}
    for lineno, (token, text) in read_tsv(path, 2, header=_TEXT_HEADER):
        if token in texts:
            raise QBertError(f"{path}: line {lineno}: item {token} appears twice")
        texts[token] = clean_text(text)
    return texts


def convert_unisrec(src: PathLike, name: str) -> ConvertedDataset:
    """Convert a UniSRec folder (``<P>.item2index`` names the prefix ``P``)."""
    src = Path(src)
    prefix = _prefix(src)
    item_path, user_path = src / f"{prefix}.item2index", require_file(src / f"{prefix}.user2index")
    text_path = require_file(src / f"{prefix}.text")
    item_tokens, user_tokens = _read_index(item_path), _read_index(user_path)
    full = _sequences(src, prefix, len(user_tokens), len(item_tokens))
    inter = ordinal_inter({user_tokens[u]: [item_tokens[i] for i in seq] for u, seq in full.items()})

    texts = _read_text(text_path)
    used = set(inter["item_id"])
    items = pd.DataFrame({"item_id": sorted(used), "text": [texts.get(i, "") for i in sorted(used)]})
    notes = {
        "items_without_text": int((items["text"] == "").sum()),
        "text_rows_not_in_dataset": len(set(texts) - used),
        "repeated_user_item_pairs": int(inter.duplicated(["user_id", "item_id"]).sum()),
    }
    splits = [src / f"{prefix}.{split}.inter" for split in ("train", "valid", "test")]
    return ConvertedDataset(
        name=name, inter=inter, items=items, item_fields={"text": "token_seq"},
        sources=[item_path, user_path, *splits, text_path], converter="unisrec",
        arguments={"src": str(src)}, real_timestamps=False, notes=notes)
