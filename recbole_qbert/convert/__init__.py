"""Converters from raw Amazon review data (S3Rec/P5, UniSRec, McAuley JSON) to RecBole atomic files.

Each converter returns a :class:`~recbole_qbert.convert.dataset.ConvertedDataset`;
:func:`~recbole_qbert.convert.atomic_writer.write_dataset` checks it and writes
``<out>/<name>/<name>.inter``, ``<name>.item``, ``<name>.yaml`` (RecBole's settings for them) and
``<name>.meta.json``.
"""
