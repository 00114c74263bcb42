"""A trained model against BM25 and their fusions on a collection's judged queries: one table, four runs.

    collection = load_collection('beir/scifact', split='test')
    result = benchmark_collection(learn, collection, split='test', k=100)
    result.table                      # rows bm25, relcollab, rrf, hybrid; columns ndcg@10, map, recall@100, mrr@10
    write_runs(result.runs, 'runs')   # runs/bm25.trec, runs/relcollab.trec, runs/rrf.trec, runs/hybrid.trec

`relcollab` ranks every document of the collection with the model (`learn.index`, `learn.search`), `bm25` with
`BM25Baseline`, `rrf` is their reciprocal rank fusion (`relcollab.retrieval.fusion`), cut to `k` per query, and
`hybrid` is `HybridSearch` with its defaults (BM25 feedback on the query vectors, z-score fusion;
`relcollab.retrieval.hybrid`).
Metrics are `relcollab.retrieval.evaluate.evaluate_run`'s (ranx), averaged over the split's queries that have a
relevant judgment.
"""
from pathlib import Path
from typing import NamedTuple

import pandas as pd

from ..datasets.collection import Collection, _split_qrels
from ..retrieval.encode import ENCODE_BS
from ..retrieval.bm25 import BM25Baseline  # (importing relcollab.retrieval patches learn.index and learn.search)
from ..retrieval.evaluate import DEFAULT_METRICS, evaluate_run
from ..retrieval.fusion import reciprocal_rank_fusion
from ..retrieval.hybrid import HybridSearch
from ..retrieval.trec import run_frame, write_run
from ..core.validation import RelevanceDataError

__all__ = ['BenchmarkResult', 'benchmark_collection', 'write_runs']


class BenchmarkResult(NamedTuple):
    "`table`: one row per run (bm25, relcollab, rrf, hybrid), one column per metric; `runs`: {name: run DataFrame}."
    table: pd.DataFrame
    runs: dict


def _judged_queries(collection: Collection, qrels: pd.DataFrame) -> pd.DataFrame:
    "The queries (query_id, text) with at least one relevant judgment (gain >= 1) in `qrels`, in collection order."
    relevant = set(qrels.loc[qrels['gain'] >= 1, 'query_id'])
    if not relevant:
        raise RelevanceDataError("No query of this split has a relevant judgment (gain >= 1): nothing to evaluate.")
    return collection.queries[collection.queries['query_id'].isin(relevant)]


def benchmark_collection(learn, collection: Collection, split='test', k=100, metrics=DEFAULT_METRICS, bs=ENCODE_BS,
                         rrf_k=60, bf16=False) -> BenchmarkResult:
    """The model, BM25, their reciprocal rank fusion (constant `rrf_k`) and `HybridSearch` on `split`'s judged
    queries (see the module docstring). `split=None` uses every loaded judgment (a TREC-style collection has no splits). `bs` and
    `bf16` are `learn.encode`'s.

    >>> result = benchmark_collection(learn, load_collection('beir/scifact', split='test'))  # doctest: +SKIP
    >>> result.table.index.tolist(), result.table.columns.tolist()  # doctest: +SKIP
    (['bm25', 'relcollab', 'rrf', 'hybrid'], ['ndcg@10', 'map', 'recall@100', 'mrr@10'])
    """
    qrels = _split_qrels(collection, split)
    queries = _judged_queries(collection, qrels)
    ids, texts = collection.docs['doc_id'].tolist(), collection.docs['text'].tolist()
    query_ids, query_texts = queries['query_id'].tolist(), queries['text'].tolist()
    index = learn.index(collection.docs, id_col='doc_id', text_col='text', bs=bs, bf16=bf16)
    model_run = run_frame(query_ids, learn.search(query_texts, index, k=k, bs=bs, bf16=bf16))
    bm25 = BM25Baseline().index(ids, texts)
    bm25_run = run_frame(query_ids, bm25.search(query_texts, k=k))
    fused = reciprocal_rank_fusion([bm25_run, model_run], k=rrf_k)
    hybrid_run = run_frame(query_ids, HybridSearch(learn, index, bm25, bs=bs, bf16=bf16).search(query_texts, k=k))
    runs = {'bm25': bm25_run, 'relcollab': model_run, 'rrf': fused[fused['rank'] <= k].reset_index(drop=True),
            'hybrid': hybrid_run}
    judged = qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'})[['qid', 'docid', 'gain']]
    table = pd.DataFrame.from_dict({name: evaluate_run(run, judged, metrics=metrics) for name, run in runs.items()},
                                   orient='index')
    return BenchmarkResult(table.rename_axis('run'), runs)


def write_runs(runs: dict, folder) -> list:
    """Writes each run of `runs` ({name: run}) as the TREC run `folder/<name>.trec`, tagged `name`; returns the paths.

    >>> write_runs(benchmark_collection(learn, collection).runs, 'runs')  # doctest: +SKIP
    [PosixPath('runs/bm25.trec'), PosixPath('runs/relcollab.trec'), PosixPath('runs/rrf.trec'), PosixPath('runs/hybrid.trec')]
    """
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    return [write_run(run, folder/f'{name}.trec', tag=name) for name, run in runs.items()]
