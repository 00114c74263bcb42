"""Moved to `relcollab.retrieval.index` (beside `learn.search`, which it calls); `import relcollab.rank` still
attaches `learn.rank` (with `learn.encode`, `.index` and `.search`)."""
from .retrieval.index import rank  # noqa: F401

__all__ = []  # everything here is a Learner method
