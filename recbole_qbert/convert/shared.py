"""The Amazon datasets of the shared data folder, and how each is converted."""
from pathlib import Path
from typing import Callable, NamedTuple

from recbole_qbert.convert.dataset import ConvertedDataset
from recbole_qbert.convert.s3rec import convert_s3rec
from recbole_qbert.convert.unisrec import convert_unisrec


class SharedDataset(NamedTuple):
    name: str
    folder: str
    convert: Callable[[Path, str], ConvertedDataset]


SHARED_DATASETS = (
    SharedDataset("amazon-beauty", "amazon-beauty-2014-5core",
                  lambda src, name: convert_s3rec(src, name, item_file="Amazon_Beauty.item")),
    SharedDataset("amazon-sports", "amazon-sports-2014-5core", convert_s3rec),
    SharedDataset("amazon-scientific", "amazon-scientific-2018-mm-subset", convert_unisrec),
    SharedDataset("amazon-scientific-full", "amazon-scientific-2018-unisrec", convert_unisrec),
)
