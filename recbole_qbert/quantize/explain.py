"""What the codes mean: the items under a code prefix, and per level the dominant category of each
prefix group.

Titles and categories come from the dataset's ``.item`` file, whichever fields it has:

* title: ``title`` (Amazon Beauty), ``movie_title`` (ml-100k), or the part of ``text`` before its
  categories (UniSRec "title. categories. brand." text, the Scientific subset); else the item token;
* category: the leaf of ``categories`` (Beauty), every genre of ``class`` (ml-100k), the category path
  of ``text`` without its common root (Scientific), or every ``attributes`` token (Sports, opaque ids).

Category values that more than half of all items carry are ignored (they describe the catalogue, not
a code). Level ``l`` groups items by their first ``l`` codes (a level-2 code means something only under its
level-1 code: it quantizes that code's residual). ``purity`` is the mean, over groups of at least two
items weighted by size, of the share of the group's items carrying its most frequent category;
``purity_shuffled`` is the same with categories shuffled across items (what chance gives).
"""
from collections import Counter
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

from recbole_qbert.errors import QBertError
from recbole_qbert.quantize.dataset_items import item_table
from recbole_qbert.semantic_ids import SemanticIDs

TITLE_FIELDS = ("title", "movie_title", "text")
CATEGORY_FIELDS = ("categories", "class", "text", "attributes")


@dataclass
class ItemInfo:
    titles: Dict[str, str]
    categories: Dict[str, List[str]]
    title_field: Optional[str]
    category_field: Optional[str]

    def title(self, token: str) -> str:
        return self.titles.get(token) or token


def _split_text(text: str) -> List[str]:
    """UniSRec text "title. categories. brand." -> [title, categories, brand] (best effort)."""
    parts = text.strip().rstrip(".").rsplit(". ", 2)
    return parts if len(parts) == 3 else [text.strip(), "", ""]


def _categories(field: str, value: str) -> List[str]:
    if not value:
        return []
    if field == "categories":
        return [value.split(" ")[-1].replace("_", " ")]
    return [v.replace("_", " ") for v in value.split(" ") if v]


def load_item_info(dataset: str, data_path: Optional[str] = None, *, title_field: Optional[str] = None,
                   category_field: Optional[str] = None) -> ItemInfo:
    table = item_table(dataset, data_path)
    if table is None:
        return ItemInfo({}, {}, None, None)
    for name, wanted in (("title", title_field), ("category", category_field)):
        if wanted is not None and wanted not in table.columns:
            raise QBertError(f"{dataset}.item has no {name} field '{wanted}' (fields: {list(table.columns)})")
    tfield = title_field or next((f for f in TITLE_FIELDS if f in table.columns), None)
    cfield = category_field or next((f for f in CATEGORY_FIELDS if f in table.columns), None)
    titles, cats = {}, {}
    text_titles, text_cats = _text_fields(table["text"].to_dict()) if "text" in (tfield, cfield) else ({}, {})
    if tfield:
        titles = text_titles if tfield == "text" else table[tfield].to_dict()
    if cfield:
        cats = text_cats if cfield == "text" else {t: _categories(cfield, v) for t, v in table[cfield].items()}
        cats = _drop_ubiquitous(cats)
    return ItemInfo(titles, cats, tfield, cfield)


def _drop_ubiquitous(cats: Dict[str, List[str]], share: float = 0.5) -> Dict[str, List[str]]:
    """Drop category values that more than ``share`` of all items carry (a root such as "Sports &
    Outdoors" among attribute tokens): every group would "share" them, which says nothing about a code."""
    counts = Counter(c for values in cats.values() for c in set(values))
    common = {c for c, n in counts.items() if n > share * len(cats)}
    return {t: [c for c in values if c not in common] for t, values in cats.items()} if common else cats


def _text_fields(texts: Dict[str, str]):
    """Titles and category paths from UniSRec text "title. categories. brand.".

    A title or brand may itself hold ". ", so the category path is located by its root: the words that
    most parsed paths start with ("Industrial & Scientific"), which are then dropped as they say nothing
    about a code."""
    parsed = {t: _split_text(v) for t, v in texts.items()}
    firsts = Counter(p[1].split(" ")[0] for p in parsed.values() if p[1])
    if not firsts:
        return {t: p[0] for t, p in parsed.items()}, {}
    first = firsts.most_common(1)[0][0]
    paths = [p[1].split(" ") for p in parsed.values() if p[1].split(" ")[0] == first]
    common = 1
    while all(len(p) > common + 1 and p[common] == paths[0][common] for p in paths):
        common += 1
    root = " ".join(paths[0][:common])
    titles, cats = {}, {}
    for token, text in texts.items():
        at = text.find(". " + root + " ")
        if at < 0:  # no category path (or another root): best-effort split
            titles[token], cat = parsed[token][0], parsed[token][1]
            cats[token] = [cat] if cat else []
            continue
        start = at + 2 + len(root) + 1
        end = text.find(". ", start)
        titles[token] = text[:at]
        cats[token] = [text[start:end if end >= 0 else len(text)].strip()]
    return titles, cats


def parse_prefix(values: Sequence[str]) -> List[int]:
    """``["12", "40"]``, ``["12 40"]`` or ``["12,40"]`` -> ``[12, 40]``."""
    out = []
    for v in values:
        for part in str(v).replace(",", " ").split():
            try:
                out.append(int(part))
            except ValueError:
                raise QBertError(f"prefix: {part!r} is not an integer code") from None
    if not out:
        raise QBertError("prefix: give at least one code")
    return out


def describe_prefix(sid: SemanticIDs, prefix: Sequence[int], info: ItemInfo, limit: int = 20) -> Dict:
    prefix = list(prefix)
    if len(prefix) > sid.n_levels:
        raise QBertError(f"prefix {prefix} is longer than the {sid.n_levels} levels of the semantic IDs")
    for level, (c, k) in enumerate(zip(prefix, sid.codebook_sizes)):
        if not 0 <= c < k:
            raise QBertError(f"prefix {prefix}: code {c} at level {level + 1} is outside 0..{k - 1}")
    mask = (sid.codes[:, :len(prefix)] == np.asarray(prefix)[None, :]).all(1)
    rows = np.flatnonzero(mask)
    rows = rows[np.lexsort(sid.codes[rows].T[::-1])] if len(rows) else rows
    cats = Counter(c for i in rows for c in set(info.categories.get(sid.tokens[i], [])))
    return {
        "prefix": prefix,
        "n_items": int(len(rows)),
        "top_categories": [[c, n] for c, n in cats.most_common(3)],
        "items": [{"item": str(sid.tokens[i]), "codes": sid.codes[i].tolist(), "title": info.title(str(sid.tokens[i]))}
                  for i in rows[:limit]],
    }


def _groups(codes: np.ndarray, length: int):
    _, inverse = np.unique(codes[:, :length], axis=0, return_inverse=True)
    inverse = inverse.reshape(-1)
    order = np.argsort(inverse, kind="stable")
    bounds = np.flatnonzero(np.diff(inverse[order])) + 1
    return np.split(order, bounds)


def _purity(groups, cats: List[List[str]]) -> Optional[float]:
    hit = total = 0
    for g in groups:
        if len(g) < 2:
            continue
        counts = Counter(c for i in g for c in set(cats[i]))
        hit += counts.most_common(1)[0][1] if counts else 0
        total += len(g)
    return round(hit / total, 4) if total else None


def level_summary(sid: SemanticIDs, info: ItemInfo, *, top: int = 10, levels: Optional[Sequence[int]] = None,
                  examples: int = 3, seed: int = 0) -> List[Dict]:
    """Per level: the ``top`` largest prefix groups with their most frequent category, plus purity."""
    tokens = sid.tokens.tolist()
    cats = [info.categories.get(t, []) for t in tokens]
    shuffled = [cats[i] for i in np.random.default_rng(seed).permutation(len(cats))]
    out = []
    quantized = int(sid.meta.get("n_quantized_levels") or sid.n_levels)
    for level in levels or range(1, quantized + 1):
        if not 1 <= level <= sid.n_levels:
            raise QBertError(f"level {level} outside 1..{sid.n_levels}")
        groups = _groups(sid.codes, level)
        biggest = sorted(groups, key=lambda g: (-len(g), sid.codes[g[0], :level].tolist()))[:top]
        rows = []
        for g in biggest:
            counts = Counter(c for i in g for c in set(cats[i]))
            best = counts.most_common(1)[0] if counts else (None, 0)
            rows.append({"prefix": sid.codes[g[0], :level].tolist(), "n_items": int(len(g)),
                         "top_category": best[0], "share": round(best[1] / len(g), 3),
                         "examples": [info.title(tokens[i]) for i in g[:examples]]})
        out.append({"level": level, "groups": len(groups), "purity": _purity(groups, cats),
                    "purity_shuffled": _purity(groups, shuffled), "largest_groups": rows})
    return out


def examples_for_report(sid: SemanticIDs, info: ItemInfo, *, n_prefixes: int = 4, limit: int = 6) -> Dict:
    """A few level-1 and level-2 prefixes (the largest groups) with their items' titles, and the per-level
    summary, for the stage report."""
    summary = level_summary(sid, info, top=5)
    prefixes = []
    for level in (1, 2):
        if level > sid.n_levels:
            break
        for row in summary[level - 1]["largest_groups"][:n_prefixes // 2]:
            prefixes.append(describe_prefix(sid, row["prefix"], info, limit=limit))
    return {"title_field": info.title_field, "category_field": info.category_field,
            "prefixes": prefixes, "level_summary": summary}
