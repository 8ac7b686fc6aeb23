"""Every stage's command line, one module per command, each a thin front end over :mod:`recbole_qbert`:

* :mod:`.convert` (``qbert-convert``): raw data to RecBole atomic files;
* :mod:`.cold_start`: a cold-start variant of a converted dataset;
* :mod:`.extract_features` (``qbert-features``): stage 1a, item features;
* :mod:`.fuse` (``qbert-fuse``): stage 1b, one fused vector per item;
* :mod:`.quantize` (``qbert-quantize``): stage 2, semantic IDs;
* :mod:`.explain_codes` (``qbert-explain-codes``): what the semantic IDs mean.

Training runs, leaderboards, pipelines and recommendations have theirs in :mod:`recbole_qbert.cli`.
"""
