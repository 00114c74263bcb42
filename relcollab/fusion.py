"""Moved to `relcollab.retrieval.fusion`; this module keeps the old import path working."""
from .retrieval.fusion import *  # noqa: F401,F403
from .retrieval.fusion import __all__  # noqa: F401
