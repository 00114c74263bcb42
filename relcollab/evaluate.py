"""Moved to `relcollab.retrieval.evaluate`; this module keeps the old import path working."""
from .retrieval.evaluate import *  # noqa: F401,F403
from .retrieval.evaluate import __all__  # noqa: F401
