"""Retrieval: from texts to vectors, ranked documents, TREC runs and their metrics.

    encode    `learn.encode` / `encode_to_file` (texts -> the unit vectors the model dot-products),
              `learn.score_vectors` / `score_dots` (vectors or dot products -> scores in the user's units)
    index     `DocIndex` (exact search, save/load), `top_k`, `model_fingerprint`, `learn.index` / `search` / `rank`
    bm25      `BM25Baseline`, the lexical baseline
    fusion    reciprocal rank fusion and min-max weighted sum of runs
    hybrid    `HybridSearch`: the model and BM25 together (BM25 feedback on the query vectors, z-score fusion)
    trec      TREC qrels and runs as DataFrames
    evaluate  ranking metrics (ranx) (and the pair correlations of `relcollab.core.metrics`)
    pretrained  `learn.save_pretrained`, `load_pretrained`, `load_model`: models saved and loaded for inference

Importing any of these attaches the learner methods to `RelevanceLearner` (`import relcollab` does it too).
"""
from . import bm25, encode, evaluate, fusion, hybrid, index, pretrained, trec
from .bm25 import *  # noqa: F401,F403
from .encode import *  # noqa: F401,F403
from .evaluate import *  # noqa: F401,F403
from .fusion import *  # noqa: F401,F403
from .hybrid import *  # noqa: F401,F403
from .index import *  # noqa: F401,F403
from .pretrained import *  # noqa: F401,F403
from .trec import *  # noqa: F401,F403

__all__ = sorted({*bm25.__all__, *encode.__all__, *evaluate.__all__, *fusion.__all__, *hybrid.__all__, *index.__all__,
                 *pretrained.__all__, *trec.__all__})
