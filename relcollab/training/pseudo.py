"""Weak supervision from the documents themselves: spans of a document as pseudo-queries for it."""
import re

import numpy as np
import pandas as pd

__all__ = ['sentences', 'pseudo_queries']

_SENTENCE_END = re.compile(r'(?<=[.!?;])\s+')


def sentences(text: str) -> list:
    """The sentences of `text` (split after . ! ? ;), stripped, empty ones dropped.

    >>> sentences('a wing in a slipstream . the lift rises .  ')
    ['a wing in a slipstream .', 'the lift rises .']
    """
    return [s.strip() for s in _SENTENCE_END.split(text) if s.strip()]


def _span(words: list, rng, min_words: int, max_words: int) -> tuple:
    "A random window of min_words..max_words words: (start, end)."
    n = int(rng.integers(min_words, max_words + 1))
    if len(words) <= n: return 0, len(words)
    start = int(rng.integers(0, len(words) - n + 1))
    return start, start + n


def pseudo_queries(docs, n_per_doc: int = 4, min_words: int = 3, max_words: int = 12, remove: float = 0.5,
                   score: float = 1., seed: int = 0, query_col='query', doc_col='doc', score_col='score') -> pd.DataFrame:
    """(pseudo-query, document, score) rows: short spans of each document as queries for it (inverse cloze).

    Each document gives up to `n_per_doc` spans of `min_words`..`max_words` words, each from a different
    sentence when it has enough. With probability `remove` the span is cut out of the document, so the
    towers must match a query to the rest of its document (context, not just copied words); otherwise the
    document is left whole (exact term matching). `score` is the pair's target, normally the top of the range.
    Documents with fewer than `min_words + 1` words give none.

    >>> pseudo_queries(['the lift of a wing rises with the angle of attack .'], n_per_doc=1, seed=0).columns.tolist()
    ['query', 'doc', 'score']
    """
    rng = np.random.default_rng(seed)
    rows = []
    for doc in docs:
        if not isinstance(doc, str) or len(doc.split()) < min_words + 1: continue
        parts = [s.split() for s in sentences(doc)]
        parts = [p for p in parts if len(p) >= min_words] or [doc.split()]
        for k in rng.permutation(len(parts))[:n_per_doc] if len(parts) >= n_per_doc else rng.integers(0, len(parts), n_per_doc):
            words = parts[k]
            start, end = _span(words, rng, min_words, max_words)
            query = ' '.join(words[start:end])
            if rng.random() < remove:
                rest = [' '.join(p) for p in parts[:k]] + [' '.join(words[:start] + words[end:])] + [' '.join(p) for p in parts[k + 1:]]
                context = ' '.join(r for r in rest if r)
                if context: rows.append((query, context, score)); continue
            rows.append((query, doc, score))
    return pd.DataFrame(rows, columns=[query_col, doc_col, score_col])
