"""Ablation: random unjudged negatives vs negatives judged for other queries (Cranfield, fold 0).

Trains the demo's recipe (small LM 3 epochs, relevance 3 epochs) on the 180 training queries with each
negative pool, then ranks all 1400 documents for the 45 held-out test queries and prints nDCG@10, MAP,
R@100, MRR@10 and how many distinct documents come first (a low count means one "hub" document wins for
every query).    python bench/negative_pool_ablation.py [all|judged ...]   (about 4 minutes per pool)
"""
import os
import sys
import tempfile
import time
import warnings
from pathlib import Path

from relcollab.datasets.cranfield import cranfield_split, cranfield_triples, load_cranfield
from relcollab.retrieval.evaluate import evaluate_run
from relcollab.training.recipe import train_relevance_model
from relcollab.retrieval.trec import run_frame

DATA = os.environ.get('RELCOLLAB_CRANFIELD', str(Path(__file__).resolve().parents[2]/'shared'/'data'/'cranfield'))


def run_pool(data, pool: str, workdir: Path) -> dict:
    train_ids, test_ids = cranfield_split(data.queries, fold=0)
    triples = cranfield_triples(data, query_ids=train_ids, negatives=1, seed=0, negative_pool=pool)
    triples['is_valid'] = triples['query_id'].isin(train_ids[::8])  # model selection on training queries only
    start = time.time()
    learn = train_relevance_model(triples, corpus=data.docs['text'].tolist(), size='small', lm_epochs=3, epochs=3,
                                  valid_col='is_valid', score_range=(0, 4), path=workdir/pool)
    queries = data.queries[data.queries['query_id'].isin(test_ids)]
    with learn.no_bar():
        index = learn.index(data.docs, id_col='doc_id', text_col='text')
        results = learn.search(queries['text'].tolist(), index, k=100)
    run = run_frame([str(i) for i in queries['query_id']], results)
    qrels = data.qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'})[['qid', 'docid', 'gain']]
    metrics = evaluate_run(run, qrels.astype({'qid': str, 'docid': str}))
    return {**metrics, 'distinct_top1': len(set(results.ids[:, 0])), 'seconds': round(time.time() - start)}


def main(pools):
    warnings.simplefilter('ignore')
    data = load_cranfield(DATA)
    with tempfile.TemporaryDirectory() as workdir:
        rows = {pool: run_pool(data, pool, Path(workdir)) for pool in pools}
    print('| negatives | ndcg@10 | map | recall@100 | mrr@10 | distinct top-1 (of 45) | seconds |')
    print('|---|---|---|---|---|---|---|')
    for pool, r in rows.items():
        print(f"| {pool} | {r['ndcg@10']:.3f} | {r['map']:.3f} | {r['recall@100']:.3f} | {r['mrr@10']:.3f} | "
              f"{r['distinct_top1']} | {r['seconds']} |")


if __name__ == '__main__':
    main(sys.argv[1:] or ['all', 'judged'])
