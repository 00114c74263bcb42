"""Moved to `relcollab.retrieval.index` (stored with every `DocIndex`); this module keeps the old import path working."""
from .retrieval.index import model_fingerprint  # noqa: F401

__all__ = ['model_fingerprint']
