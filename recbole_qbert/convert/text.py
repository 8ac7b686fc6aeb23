"""Clean-up of text and attribute values into RecBole ``token`` / ``token_seq`` fields.

RecBole splits a ``token_seq`` value on single spaces, so text keeps its words separated by one space,
and a category becomes one token with its inner spaces replaced by ``_``
(``'Creams, Gels & Lotions'`` -> ``Creams,_Gels_&_Lotions``).
"""
import ast
import html
import math
import re
from typing import Iterable, List, Optional

_WHITESPACE = re.compile(r"\s+")
# "$12.99", "$1,299.00", "$10.99 - $15.99" (the first number is taken)
_PRICE = re.compile(r"\d[\d,]*(?:\.\d+)?")


def clean_text(value) -> str:
    """One line of plain text: HTML entities decoded once, each run of whitespace (tabs, newlines) one space."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return _WHITESPACE.sub(" ", html.unescape(str(value))).strip()


def category_tokens(names: Iterable[str]) -> str:
    """A ``token_seq`` value: one token per distinct non-empty name, in first-seen order."""
    tokens = (clean_text(name).replace(" ", "_") for name in names)
    return " ".join(dict.fromkeys(t for t in tokens if t))


def parse_quoted_list(text: str) -> List[str]:
    """Names from a Python list literal without its brackets: ``'Beauty', "Women's", 'Eau de Parfum'``.

    This is how ``Amazon_Beauty.item`` stores categories: Python's repr picks double quotes for a name
    holding an apostrophe, which a CSV reader with quotechar ``'`` would split wrongly, and a name may
    hold commas; ``ast.literal_eval`` is the exact inverse of that repr (and evaluates literals only).
    Raises ``ValueError`` when ``text`` is not such a list.
    """
    if not text.strip():
        return []
    try:
        names = ast.literal_eval(f"({text},)")
    except (SyntaxError, ValueError, MemoryError, RecursionError):
        raise ValueError(f"not a quoted list of names: {text[:80]!r}") from None
    if not all(isinstance(name, str) for name in names):
        raise ValueError(f"not a quoted list of names: {text[:80]!r}")
    return list(names)


def flatten_names(value) -> List[str]:
    """Strings from a string, a list of strings or a list of lists (2014 metadata nests categories)."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [name for part in value for name in flatten_names(part)]
    return []


def parse_price(value) -> Optional[float]:
    """A price from a number or a string such as ``"$12.99"``; ``None`` when there is none."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, str):
        match = _PRICE.search(value)
        if match:
            return float(match.group().replace(",", ""))
    return None
