"""Moved to `relcollab.retrieval.encode`; this module keeps the old import path working."""
from .retrieval.encode import *  # noqa: F401,F403  (learn.encode, learn.score_vectors, ...)
from .retrieval.encode import __all__  # noqa: F401
from .retrieval.encode import (AUTO_PROGRESS_MIN, CHUNK_BYTES, CHUNK_ROWS, CONVERSIONS, encode,  # noqa: F401
                               encode_to_file, score_dots, score_vectors)
from .retrieval.encode import _batches, _numericalizer, _token_ids  # noqa: F401  (bench/speed.py)
