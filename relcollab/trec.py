"""Moved to `relcollab.retrieval.trec`; this module keeps the old import path working."""
from .retrieval.trec import *  # noqa: F401,F403
from .retrieval.trec import __all__  # noqa: F401
