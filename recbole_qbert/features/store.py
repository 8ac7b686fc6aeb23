"""Where stage-1 feature tables live and how they are written and read back for one dataset.

Layout: ``<features root>/<dataset>/<view>.npz`` (``text.npz``, ``text_title.npz``, ``image.npz``,
``graph.npz``, ``attributes.npz`` ...). Every table records the dataset it was made from (name, item
count and a hash of its atomic files), so a table made from another dataset or from an older conversion
of this one is refused instead of silently used.
"""
import shlex
import sys
from pathlib import Path
from typing import Dict, List, Optional, Sequence

from recbole_qbert import __version__
from recbole_qbert.errors import QBertError
from recbole_qbert.features.catalog import ItemCatalog
from recbole_qbert.features.table import FeatureTable
from recbole_qbert.run_record import peak_memory_mb
from recbole_qbert.safe_io import PathLike


def command_line(module: str, argv: Optional[Sequence[str]] = None) -> str:
    """How the stage was run: ``python -m <module> <args>`` (``argv`` default: this process's arguments)."""
    return " ".join(["python -m", module, *(shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))])


def write_table(table: FeatureTable, folder: PathLike, catalog: ItemCatalog, *, seconds: float,
                command: str, notes: Sequence[str] = ()) -> Path:
    """Save ``table`` as ``<folder>/<view>.npz`` with the dataset's identity and run facts in its metadata."""
    view = table.meta["view"]
    table.meta.update({
        "dataset": catalog.name, "dataset_files_hash": catalog.files_hash, "n_items": len(catalog),
        "time_s": round(seconds, 2), "peak_rss_mb": peak_memory_mb()["rss_mb"], "command": command,
        "package_version": __version__, "notes": list(table.meta.get("notes", [])) + list(notes),
        "content_hash": table.content_hash(),
    })
    path = Path(folder) / f"{view}.npz"
    table.save(path)
    return path


def load_views(folder: PathLike, catalog: ItemCatalog, views: Optional[Sequence[str]] = None
               ) -> Dict[str, FeatureTable]:
    """The tables of ``folder`` (all ``*.npz``, or the named ``views``), aligned to ``catalog``'s items.

    A table of another dataset, of another conversion of it, or over another item set is an error.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise QBertError(f"{folder}: feature folder not found (run: python -m dataset_prep.extract_features "
                         f"all --dataset {catalog.name})")
    paths: List[Path] = ([folder / f"{v}.npz" for v in views] if views
                         else sorted(p for p in folder.glob("*.npz") if not p.name.startswith(".")))
    if not paths:
        raise QBertError(f"{folder}: no feature tables (*.npz)")
    tables = {}
    for path in paths:
        table = FeatureTable.load(path)
        meta = table.meta
        if meta.get("dataset", catalog.name) != catalog.name:
            raise QBertError(f"{path}: made for dataset '{meta['dataset']}', not '{catalog.name}'")
        if meta.get("dataset_files_hash", catalog.files_hash) != catalog.files_hash:
            raise QBertError(f"{path}: made from another version of {catalog.name}'s atomic files (stale); "
                             "extract the features again")
        tables[path.stem] = table.align(catalog.tokens)
        if not tables[path.stem].present.any():
            raise QBertError(f"{path}: no item has this feature")
    return tables
