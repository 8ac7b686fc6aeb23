"""Write one converted dataset as RecBole atomic files plus a metadata record, atomically.

Layout: ``<out>/<name>/<name>.inter`` (``user_id:token  item_id:token  timestamp:float``, rows sorted
by user then time), ``<name>.item`` (``item_id:token`` plus the converter's item fields, exactly the
items of ``.inter``), ``<name>.yaml`` (the RecBole settings that read these files: field names and
``load_col`` for every column written; ``run_recbole.py`` layers it under ``properties/dataset/<name>.yaml``)
and ``<name>.meta.json`` (sources with sha256, converter and arguments, statistics, data notes, sha256 of
the files above).

Files are tab-separated with CSV double-quote quoting (a value holding ``"`` is written quoted, with
the quote doubled), which is how RecBole's ``pandas.read_csv`` reads them back; the converters strip
tabs and newlines from values, so every row is one line. Everything is checked (including the
published statistics) before the first file is written, and each file appears by an atomic rename;
the metadata file is written last, so its presence marks a complete dataset.
"""
import csv
from pathlib import Path
from typing import Dict, List, Tuple

import pandas as pd
import yaml

from recbole_qbert import __version__
from recbole_qbert.convert.dataset import ITEM_FIELD_TYPES, ConvertedDataset
from recbole_qbert.convert.stats import dataset_stats, published_check, verify_published
from recbole_qbert.errors import QBertError
from recbole_qbert.safe_io import PathLike, atomic_open, sha256_file, write_json, write_text

INTER_FIELDS = {"user_id": "token", "item_id": "token", "timestamp": "float"}


def _check(ds: ConvertedDataset) -> Tuple[pd.DataFrame, pd.DataFrame]:
    """The interactions sorted by user then time, and the item table restricted to their items."""
    if not ds.name or "/" in ds.name or ds.name.startswith("."):
        raise QBertError(f"dataset name {ds.name!r} is not a plain folder name")
    if len(ds.inter) == 0:
        raise QBertError(f"{ds.name}: no interactions left to write")
    for column in ("user_id", "item_id"):
        tokens = ds.inter[column].astype(str)
        unfit = tokens.str.strip().eq("") | tokens.str.contains(r"[\t\r\n]", regex=True)
        if unfit.any():
            source = ", ".join(str(p) for p in ds.sources)
            raise QBertError(f"{source}: {column.split('_')[0]} token {tokens[unfit].iloc[0]!r} is blank or holds a "
                             "tab or line break, which a RecBole token cannot")
    bad = {c: t for c, t in ds.item_fields.items() if t not in ITEM_FIELD_TYPES or c in INTER_FIELDS}
    if bad:
        raise QBertError(f"{ds.name}: unsupported item fields {bad}")
    # stable: ties in time keep the converter's (source) order
    inter = ds.inter[list(INTER_FIELDS)].sort_values(["user_id", "timestamp"], kind="stable")
    items = ds.items.drop_duplicates("item_id").set_index("item_id")
    # the item file holds exactly the interacted items; ones without metadata get empty fields
    items = items.reindex(sorted(inter["item_id"].unique()))[list(ds.item_fields)]
    return inter, items.rename_axis("item_id").reset_index()


def _header(fields: Dict[str, str]) -> List[str]:
    return [f"{column}:{ftype}" for column, ftype in fields.items()]


def _write_table(path: Path, frame: pd.DataFrame, fields: Dict[str, str]) -> None:
    with atomic_open(path, "w", encoding="utf-8", newline="") as f:
        frame.to_csv(f, sep="\t", index=False, header=_header(fields),
                     columns=list(fields), lineterminator="\n", quoting=csv.QUOTE_MINIMAL, na_rep="")


def _flow(values: List[str]) -> str:
    return yaml.safe_dump(values, default_flow_style=True, width=10**6).strip()


def _write_config(path: Path, ds: ConvertedDataset, fields: Dict[str, Dict[str, str]]) -> None:
    """RecBole's settings for the files just written. Without ``load_col`` RecBole loads only user and
    item ids, and the time-ordered split fails on the missing timestamp."""
    width = 32  # comments aligned as in properties/
    user, item, time = INTER_FIELDS
    lines = [
        f"# RecBole settings of the atomic files beside this one, written with them by dataset_prep.convert "
        f"({ds.converter}).",
        "# run_recbole.py loads it after properties/overall.yaml; properties/dataset/<name>.yaml, "
        "--config_files and --key=value win.",
        *(f"{key}: {column}".ljust(width) + f"# (str) Field name of {what}."
          for key, column, what in (("USER_ID_FIELD", user, "user ID feature"),
                                    ("ITEM_ID_FIELD", item, "item ID feature"),
                                    ("TIME_FIELD", time, "timestamp feature"))),
        "load_col:".ljust(width) + "# (dict) Columns to load per atomic file: every column written.",
        *(f"  {kind}: {_flow(list(columns))}" for kind, columns in fields.items()),
    ]
    write_text(path, "\n".join(lines) + "\n")


def write_dataset(ds: ConvertedDataset, out_root: PathLike, check: bool = True) -> Dict[str, object]:
    """Check ``ds``, write its files under ``out_root/ds.name/`` and return its metadata record.

    With ``check``, statistics that differ from the published ones (:data:`stats.EXPECTED`) raise
    :class:`QBertError` before anything is written; without it they are only reported.
    """
    inter, items = _check(ds)
    stats = dataset_stats(inter, ds.real_timestamps)
    published = verify_published(ds.name, stats) if check else published_check(ds.name, stats)

    folder = Path(out_root) / ds.name
    files = {"inter": folder / f"{ds.name}.inter", "item": folder / f"{ds.name}.item",
             "config": folder / f"{ds.name}.yaml"}
    item_fields = {"item_id": "token", **ds.item_fields}
    _write_table(files["inter"], inter, INTER_FIELDS)
    _write_table(files["item"], items, item_fields)
    _write_config(files["config"], ds, {"inter": INTER_FIELDS, "item": item_fields})
    meta = {
        "name": ds.name,
        "converter": ds.converter,
        "arguments": ds.arguments,
        "package_version": __version__,
        "sources": [{"path": str(p), "sha256": sha256_file(p)} for p in ds.sources],
        "files": {k: {"path": p.name, "sha256": sha256_file(p)} for k, p in files.items()},
        # lists keep the column order (the JSON writer sorts object keys)
        "fields": {"inter": _header(INTER_FIELDS), "item": _header(item_fields)},
        "format": "tab-separated, CSV double-quote quoting, token_seq values space-separated",
        "statistics": stats,
        "published": published,
        "notes": ds.notes,
    }
    write_json(folder / f"{ds.name}.meta.json", meta)
    return meta
