"""Fusing runs (DataFrames `qid, docid, score[, rank]`): reciprocal rank fusion and min-max weighted sum.

Both follow ranx's `fuse` (method='rrf' and method='wsum' with norm='min-max') and are cross-checked against
it in the tests; written as small pandas functions so that ties are ordered deterministically (fused
score, then the order documents first appear in the runs) and no numba compilation is needed.

    fused = reciprocal_rank_fusion([read_run('model.trec'), read_run('bm25.trec')])
    fused = normalized_fusion([model_run, bm25_run], weights=[0.3, 0.7])
"""
import numpy as np
import pandas as pd

from .trec import RUN_COLUMNS, ranked

__all__ = ['reciprocal_rank_fusion', 'normalized_fusion', 'min_max_per_query']


def _check_runs(runs) -> list:
    runs = list(runs)
    if len(runs) < 1: raise ValueError("Pass at least one run to fuse.")
    return [ranked(run) for run in runs]


def _fused(parts: list) -> pd.DataFrame:
    "Sums the `score` of each (qid, docid) over `parts`; ranks the sums (ties: first appearance)."
    summed = pd.concat(parts, ignore_index=True).groupby(['qid', 'docid'], sort=False)['score'].sum().reset_index()
    return ranked(summed[['qid', 'docid', 'score']])[RUN_COLUMNS]


def reciprocal_rank_fusion(runs, k: int = 60) -> pd.DataFrame:
    """score(d) = sum over runs of 1 / (k + rank of d in that run) (Cormack, Clarke & Buettcher, SIGIR 2009).

    A document missing from a run gets nothing from it.

    >>> a = pd.DataFrame({'qid': ['1', '1'], 'docid': ['x', 'y'], 'score': [2., 1.]})
    >>> b = pd.DataFrame({'qid': ['1', '1'], 'docid': ['y', 'z'], 'score': [5., 4.]})
    >>> reciprocal_rank_fusion([a, b])['docid'].tolist()
    ['y', 'x', 'z']
    """
    if k < 0: raise ValueError(f"k must be >= 0, got {k}.")
    parts = [run.assign(score=1.0 / (k + run['rank'])) for run in _check_runs(runs)]
    return _fused(parts)


def min_max_per_query(run: pd.DataFrame) -> pd.DataFrame:
    """Scores mapped to [0, 1] within each query: (s - min) / (max - min), with max - min floored at 1e-9 as in ranx
    (a query whose scores are all equal gets 0 everywhere).

    >>> min_max_per_query(pd.DataFrame({'qid': ['1', '1'], 'docid': ['x', 'y'], 'score': [3., 1.]}))['score'].tolist()
    [1.0, 0.0]
    """
    scores = run.groupby('qid', sort=False)['score']
    low, high = scores.transform('min'), scores.transform('max')
    return run.assign(score=(run['score'] - low) / np.maximum(high - low, 1e-9))


def normalized_fusion(runs, weights=None) -> pd.DataFrame:
    """score(d) = sum over runs of weight * min-max normalized score of d (per query); missing documents add 0.

    `weights` default to equal (1 / number of runs).

    >>> a = pd.DataFrame({'qid': ['1', '1'], 'docid': ['x', 'y'], 'score': [2., 1.]})
    >>> b = pd.DataFrame({'qid': ['1', '1'], 'docid': ['y', 'x'], 'score': [9., 1.]})
    >>> normalized_fusion([a, b], weights=[0.3, 0.7])['docid'].tolist()
    ['y', 'x']
    """
    runs = _check_runs(runs)
    weights = [1.0 / len(runs)] * len(runs) if weights is None else [float(w) for w in weights]
    if len(weights) != len(runs): raise ValueError(f"{len(weights)} weights for {len(runs)} runs: one weight per run.")
    normalized = [min_max_per_query(run) for run in runs]
    return _fused([run.assign(score=weight * run['score']) for run, weight in zip(normalized, weights)])
