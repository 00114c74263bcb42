"""Moved to `relcollab.retrieval.bm25`; this module keeps the old import path working."""
from .retrieval.bm25 import *  # noqa: F401,F403
from .retrieval.bm25 import __all__  # noqa: F401
