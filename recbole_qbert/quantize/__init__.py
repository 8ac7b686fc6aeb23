"""Stage 2: residual quantization of item features into semantic IDs.

* :mod:`.kmeans`: deterministic k-means used to initialise codebooks;
* :mod:`.residual`: :class:`ResidualQuantizer` (codes per level, straight-through, commitment loss,
  dead-code reset);
* :mod:`.rqvae`: :class:`RQVAE` (encoder, quantizer, decoder);
* :mod:`.train`: training loop, code assignment, quality figures;
* :mod:`.collisions`: unique tuples (extra level or reassignment) and collision/prefix statistics;
* :mod:`.checkpoint`: the trained quantizer as safetensors, for codes of new items;
* :mod:`.dataset_items`: the item tokens and item table of a converted dataset, as the stage reads them;
* :mod:`.settings`: the stage's settings (``properties/quantize.yaml``);
* :mod:`.stage`: the whole stage (files and report); :mod:`.explain`: what the codes mean.
"""
from recbole_qbert.quantize.residual import ResidualQuantizer
from recbole_qbert.quantize.rqvae import RQVAE

__all__ = ["ResidualQuantizer", "RQVAE"]
