"""`learn.rank(query, docs, k)`: the best documents for one query, as a DataFrame (id, score, rank[, text])."""
import numpy as np
import pandas as pd
from fastcore.basics import patch

from .index import DocIndex, docs_frame, model_fingerprint
from .learner import RelevanceLearner

__all__ = []  # everything here is a Learner method


@patch
def rank(self: RelevanceLearner, query: str, docs, k=10, id_col='id', text_col='text', bs=256) -> pd.DataFrame:
    """The `k` documents of `docs` that best answer `query`, best first.

    `docs` is a DataFrame with `id_col` and `text_col`, a list of texts (ids are their positions 0..n-1) or a
    `DocIndex` (from `learn.index`). Columns: `id_col`, `score` (the user's units), `rank` (1..k), and
    `text_col` when the texts were given. `k` above the number of documents warns and returns all of them.

    >>> learn.rank('heat transfer in slabs', docs_df, k=3)  # doctest: +SKIP
         id     score  rank                                   text
    0   399  2.710000     1  heat transfer in a slab with ...
    """
    if not isinstance(query, str): raise TypeError(f"query must be a string, got {type(query).__name__}.")
    if isinstance(docs, DocIndex):
        results = self.search([query], docs, k=k, bs=bs)
        return _ranked_frame({id_col: results.ids[0]}, results.scores[0])
    frame = docs_frame(docs, id_col, text_col)
    dense, lexical = self.encode(frame[text_col].tolist(), side='doc', bs=bs, output='both')
    by_position = DocIndex(range(len(frame)), dense, fingerprint=model_fingerprint(self), lexical=lexical)
    results = self.search([query], by_position, k=k, bs=bs)
    hits = frame.iloc[results.ids[0].astype(int)]
    return _ranked_frame({id_col: hits[id_col].to_numpy(), text_col: hits[text_col].to_numpy()}, results.scores[0])


def _ranked_frame(columns: dict, scores) -> pd.DataFrame:
    "id, score, rank (1..k) and any other columns, in the order given (already best first)."
    id_col, *others = columns
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    frame = pd.DataFrame({id_col: columns[id_col], 'score': scores, 'rank': np.arange(1, len(scores) + 1)})
    for col in others: frame[col] = columns[col]
    return frame
