"""Moved to `relcollab.retrieval.index`; this module keeps the old import path working."""
from .retrieval.index import *  # noqa: F401,F403  (DocIndex, learn.index, learn.search)
from .retrieval.index import __all__  # noqa: F401
from .retrieval.index import (BACKENDS, CHUNK_CELLS, IDS_FILE, LEXICAL_FILE, META_FILE, VECTORS_FILE, index,  # noqa: F401
                              search)
