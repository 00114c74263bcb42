"""Ranking metrics with ranx, on run and qrels DataFrames (see `relcollab.retrieval.trec`); the pair correlations
(`pair_metrics`, `pair_rmse`, `pair_spearman`) live in `relcollab.core.metrics` and are re-exported here.

    evaluate_run(read_run('model.trec'), read_qrels('qrels.trec'))
    # {'ndcg@10': 0.41, 'map': 0.33, 'recall@100': 0.72, 'mrr@10': 0.58}

What the metric names mean (ranx's definitions, averaged over queries):

- `ndcg@k` uses the graded gains of the qrels linearly (Jarvelin & Kekalainen): DCG = sum over ranks
  i <= k of gain_i / log2(i + 1), divided by the DCG of the ideal ordering. (`ndcg_burges@k` uses
  2**gain - 1.)
- `map`, `recall@k`, `mrr@k`, `precision@k` are binary: a document is relevant when its gain >= 1 (ranx's
  default relevance level; append `-l2` to a name, e.g. `map-l2`, to require gain >= 2).

Each query's documents are ranked by score; equal scores keep the run's `rank` order (ranx itself would
order ties arbitrarily). Queries are matched by id:

- a judged query (one with a gain >= 1) missing from the run is not evaluated, as in trec_eval (with a
  warning); `all_judged=True` scores it 0 on every metric instead (trec_eval -c);
- run queries without any relevant judgment are left out (with a warning), as trec_eval does;
- no query in common raises `RelevanceDataError` (the ids are probably of different kinds);
- with `doc_ids` (the collection), relevant judged documents outside it are reported (recall cannot reach 1).

ranx is imported on first use (it takes a few seconds and compiles with numba the first time).
"""
import warnings

import numpy as np
import pandas as pd

from .trec import ranked, read_qrels, read_run, write_qrels, write_run  # noqa: F401  (re-exported)
from ..core.metrics import pair_metrics, pair_rmse, pair_spearman  # noqa: F401  (re-exported, their old home)
from ..core.validation import RelevanceDataError

__all__ = ['DEFAULT_METRICS', 'evaluate_run', 'to_ranx_run', 'to_ranx_qrels', 'pair_metrics', 'pair_rmse',
           'pair_spearman', 'read_qrels', 'write_qrels', 'read_run', 'write_run']

DEFAULT_METRICS = ('ndcg@10', 'map', 'recall@100', 'mrr@10')


def _check_qrels(qrels: pd.DataFrame) -> pd.DataFrame:
    missing = [col for col in ('qid', 'docid', 'gain') if col not in qrels.columns]
    if missing: raise RelevanceDataError(f"qrels: missing column(s) {missing}; qrels have qid, docid, gain.")
    return qrels.assign(qid=qrels['qid'].astype(str), docid=qrels['docid'].astype(str),
                        gain=pd.to_numeric(qrels['gain']).astype(np.int64))


def to_ranx_qrels(qrels: pd.DataFrame):
    """A `ranx.Qrels` from a qrels DataFrame (qid, docid, gain).

    >>> to_ranx_qrels(pd.DataFrame({'qid': ['1'], 'docid': ['a'], 'gain': [2]})).to_dict()  # doctest: +SKIP
    {'1': {'a': 2}}
    """
    from ranx import Qrels
    qrels = _check_qrels(qrels)
    judged = {qid: dict(zip(group['docid'], group['gain'].tolist())) for qid, group in qrels.groupby('qid', sort=False)}
    return Qrels(judged)


def to_ranx_run(run: pd.DataFrame, query_ids=(), name: str = 'run'):
    """A `ranx.Run` with the run's order: scores become n, n-1, ... 1 per query, after sorting like `ranked`.

    ranx orders a query's documents by score and breaks ties arbitrarily; ranking metrics only need the
    order, so order-only scores make its results independent of its tie-breaking. `query_ids` missing
    from the run get an empty result list.
    """
    from ranx import Run
    run = ranked(run)
    order_scores = run.groupby('qid', sort=False)['rank'].transform('max') - run['rank'] + 1
    run = run.assign(score=order_scores.astype(np.float64))
    results = {str(qid): {} for qid in query_ids}
    results.update({qid: dict(zip(group['docid'], group['score'].tolist()))
                    for qid, group in run.groupby('qid', sort=False)})
    return Run(results, name=name)


def _comparable(run: pd.DataFrame, qrels: pd.DataFrame, doc_ids=None, all_judged=False) -> tuple:
    """(run, qrels) restricted to the queries both have (trec_eval's default), or to every judged query with
    `all_judged=True` (trec_eval -c: a judged query missing from the run scores 0)."""
    qrels = _check_qrels(qrels)
    relevant = qrels[qrels['gain'] >= 1]
    judged, in_run = set(relevant['qid']), set(run['qid'].astype(str))
    if not judged & in_run:
        raise RelevanceDataError(f"No query id of the run ({_sample(in_run)}) has relevant judgments in the qrels "
                                 f"({_sample(judged)}). Use the same query ids in both (Cranfield: positions 1..225).")
    _warn_if(judged - in_run, "judged queries have no results in the run; they " +
             ("score 0" if all_judged else "are not evaluated (all_judged=True scores them 0)"))
    _warn_if(in_run - judged, "run queries have no relevant judgments and are not evaluated")
    if doc_ids is not None:
        outside = set(relevant['docid']) - {str(d) for d in doc_ids}
        _warn_if(outside, "relevant judged documents are not in the collection; recall cannot reach 1")
    evaluated = judged if all_judged else judged & in_run
    return run[run['qid'].astype(str).isin(evaluated)], qrels[qrels['qid'].isin(evaluated)]


def _sample(ids, n=5) -> str:
    ids = sorted(ids, key=lambda i: (len(i), i))
    return ', '.join(ids[:n]) + (f' ... ({len(ids)} in all)' if len(ids) > n else '') if ids else 'none'


def _warn_if(ids, message):
    if ids: warnings.warn(f"{len(ids)} {message}: {_sample(ids)}.", stacklevel=3)


def evaluate_run(run: pd.DataFrame, qrels: pd.DataFrame, metrics=DEFAULT_METRICS, doc_ids=None,
                 all_judged=False) -> dict:
    """Mean of each ranx metric over the judged queries of the run: `{metric: value}` (see the module docstring).

    >>> evaluate_run(read_run('bm25.trec'), read_qrels('qrels.trec'), metrics=['ndcg@10'])  # doctest: +SKIP
    {'ndcg@10': 0.43}
    """
    from ranx import evaluate
    metrics = [metrics] if isinstance(metrics, str) else list(metrics)
    run, qrels = _comparable(run, qrels, doc_ids, all_judged)
    ranx_qrels, ranx_run = to_ranx_qrels(qrels), to_ranx_run(run, query_ids=qrels['qid'].unique())
    try:
        scores = evaluate(ranx_qrels, ranx_run, metrics, save_results_in_run=False)
    except (ValueError, KeyError) as error:
        raise ValueError(f"Unknown metric in {metrics}: {error}. Use ranx names such as ndcg@10, map, "
                         "recall@100, mrr@10, precision@5.") from None
    if len(metrics) == 1: scores = {metrics[0]: scores}
    return {metric: float(value) for metric, value in scores.items()}
