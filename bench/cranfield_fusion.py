"""Fusion and feedback on saved Cranfield vectors: which way of combining relcollab's vectors with BM25 ranks best.

    python bench/cranfield.py --quick --variants default dense-only --word-vectors corpus --only-word-vectors \\
        --teacher all-MiniLM-L6-v2 --save-vectors runs/f0
    python bench/cranfield_fusion.py runs/f0

For every saved model (and the teacher, as a reference) it scores all 1400 documents per query and compares:
- the bench's fusion (`best_fusion`: min-max over each run's top 100, weight chosen on validation);
- score fusion over the whole collection, min-max or z-score per query (weight chosen on validation);
- reciprocal rank fusion with its k chosen on validation;
- Rocchio pseudo-relevance feedback on the query's dense vector (q + beta * mean of the top m documents' dense vectors,
  the top m from the model itself, from BM25 or from their equal z-score fusion; m and beta chosen on validation; a
  lexical model's term weights stay the query's own), alone and fused with BM25.
Every choice is made on the fold's validation queries; the test queries are only reported. Prints a markdown table
(nDCG@10 test, with validation in brackets); seconds, not minutes.
"""
import argparse
import json
import warnings
from itertools import product
from pathlib import Path

import numpy as np
from scipy import sparse

from cranfield import K, best_fusion, evaluate, load_fold, results_from_scores
from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.retrieval.hybrid import hybrid_scores, rocchio, tune_hybrid, zscore_per_query
from relcollab.retrieval.index import DocIndex, top_k

WEIGHTS = np.round(np.arange(0.05, 1.0, 0.05), 2)
RRF_KS = (5, 10, 20, 40, 60, 100)
FEEDBACK_DEPTHS = (3, 5, 10)
FEEDBACK_BETAS = (0.25, 0.5, 1.0, 2.0)


def normalized(scores: np.ndarray, kind: str) -> np.ndarray:
    "Each query's scores over all documents, min-max to [0, 1] or z-scored (mean 0, deviation 1)."
    if kind == 'min-max':
        low, high = scores.min(1, keepdims=True), scores.max(1, keepdims=True)
        return (scores - low) / np.maximum(high - low, 1e-9)
    return zscore_per_query(scores)


def reciprocal_ranks(scores: np.ndarray, k: int) -> np.ndarray:
    "1 / (k + rank) of every document per query (rank 1 = best; only the top K count, as in the runs)."
    ranks = np.empty_like(scores, dtype=np.int64)
    order = np.argsort(-scores, axis=1, kind='stable')
    np.put_along_axis(ranks, order, np.arange(1, scores.shape[1] + 1)[None].repeat(len(scores), 0), axis=1)
    return np.where(ranks <= K, 1.0 / (k + ranks), 0.0)


def feedback(queries: np.ndarray, docs: np.ndarray, ranking_scores: np.ndarray, depth: int, beta: float,
             dense: int | None = None) -> np.ndarray:
    """Rocchio: each query vector plus `beta` times the mean vector of its `depth` best documents under `ranking_scores`
    (with `dense`, only the first `dense` dimensions move: the lexical term weights stay the query's own)."""
    top, _ = top_k(ranking_scores, depth)
    cols = slice(None, dense)
    moved = queries.copy()
    moved[:, cols] = rocchio(queries[:, cols], docs[:, cols], top, beta)
    return moved


class Study:
    "Scores on both query sets; `ndcg(scores)` evaluates a (valid, test) pair of score matrices."
    def __init__(self, fold: int):
        self.fold = fold
        self.data, (_, self.valid_ids, self.test_ids), self.qrels = load_fold(fold)
        self.doc_ids = self.data.docs['doc_id'].tolist()
        text_of = self.data.queries.set_index('query_id')['text']
        bm25 = BM25Baseline().index(self.doc_ids, self.data.docs['text'].tolist())
        self.bm25 = {split: bm25.scores([text_of[q] for q in ids]) for split, ids in self.splits()}

    def splits(self): return (('valid', self.valid_ids), ('test', self.test_ids))

    def runs(self, scores: dict) -> dict:
        return {split: evaluate(results_from_scores(scores[split], self.doc_ids), ids, self.qrels) for split, ids in self.splits()}

    def ndcg(self, scores: dict) -> tuple:
        "(test, valid) nDCG@10."
        runs = self.runs(scores)
        return runs['test'][0]['ndcg@10'], runs['valid'][0]['ndcg@10']

    def best(self, candidates: dict) -> tuple:
        "The candidate (name -> score pair) best on validation: (name, test, valid)."
        scored = {name: self.ndcg(scores) for name, scores in candidates.items()}
        name = max(scored, key=lambda n: scored[n][1])
        return name, *scored[name]

    def fusions(self, scores: dict) -> dict:
        "label -> (test, valid, choice) for each way of fusing `scores` with BM25."
        rows = {}
        runs, bm25_runs = self.runs(scores), self.runs(self.bm25)
        bench_rows, weight = best_fusion((runs['valid'][1], bm25_runs['valid'][1]), (runs['test'][1], bm25_runs['test'][1]),
                                         self.qrels)
        valid_rows, _ = best_fusion((runs['valid'][1], bm25_runs['valid'][1]), (runs['valid'][1], bm25_runs['valid'][1]),
                                    self.qrels)
        rows['fused, min-max over top 100 (the bench)'] = (next(iter(bench_rows.values()))['ndcg@10'],
                                                           next(iter(valid_rows.values()))['ndcg@10'], f'w {weight}')
        for kind in ('min-max', 'z-score'):
            model, lexical = ({split: normalized(s[split], kind) for split, _ in self.splits()} for s in (scores, self.bm25))
            name, test, valid = self.best({w: {split: w * model[split] + (1 - w) * lexical[split] for split, _ in self.splits()}
                                           for w in WEIGHTS})
            rows[f'fused, {kind} over all documents'] = (test, valid, f'w {name}')
        name, test, valid = self.best({k: {split: reciprocal_ranks(scores[split], k) + reciprocal_ranks(self.bm25[split], k)
                                           for split, _ in self.splits()} for k in RRF_KS})
        rows['fused, reciprocal rank'] = (test, valid, f'k {name}')
        return rows


def study_model(study: Study, vectors, dense: int | None) -> dict:
    "label -> (test, valid, choice): the model's ranking, its fusions, and Rocchio feedback on its vectors."
    docs = vectors['docs']
    parts = {'all': slice(None)} if dense is None else {'all': slice(None), 'dense part': slice(None, dense)}
    rows = {}
    for part, cols in parts.items():
        scores = {split: vectors[split][:, cols] @ docs[:, cols].T for split, _ in study.splits()}
        rows[part] = (*study.ndcg(scores), '')
        for label, row in study.fusions(scores).items(): rows[f'{part}: {label}'] = row
        for source in ('itself', 'bm25', 'their z-score fusion'):
            ranking = {'itself': scores, 'bm25': study.bm25,
                       'their z-score fusion': {split: normalized(scores[split], 'z-score') + normalized(study.bm25[split], 'z-score')
                                                for split, _ in study.splits()}}[source]
            candidates = {(m, b): {split: feedback(vectors[split][:, cols], docs[:, cols], ranking[split], m, b, dense) @ docs[:, cols].T
                                   for split, _ in study.splits()} for m, b in product(FEEDBACK_DEPTHS, FEEDBACK_BETAS)}
            (m, b), test, valid = study.best(candidates)
            rows[f'{part}: feedback from {source}'] = (test, valid, f'm {m}, beta {b}')
            fused = study.fusions(candidates[(m, b)])
            for label in ('fused, min-max over top 100 (the bench)', 'fused, z-score over all documents'):
                rows[f'{part}: feedback from {source}, {label}'] = fused[label]
        rows.update({f'{part}: {label}': row for label, row in study_hybrid(study, vectors, cols, dense).items()})
    return rows


def saved_index(study: Study, vectors, cols: slice = slice(None), dense: int | None = None) -> tuple:
    """(a `DocIndex` of the saved document vectors' `cols`, {split: (dense, lexical or None) query parts}): the
    inputs of `hybrid_scores`; `dense` is how many leading columns are the dense part (None: all of them)."""
    dense = vectors['docs'][:, cols].shape[1] if dense is None else min(dense, vectors['docs'][:, cols].shape[1])
    def split_parts(matrix):
        matrix = matrix[:, cols]
        lexical = sparse.csr_matrix(matrix[:, dense:]) if matrix.shape[1] > dense else None
        return np.ascontiguousarray(matrix[:, :dense]), lexical
    doc_dense, doc_lexical = split_parts(vectors['docs'])
    return (DocIndex(study.doc_ids, doc_dense, lexical=doc_lexical),
            {split: split_parts(vectors[split]) for split, _ in study.splits()})


def saved_dense_size(vectors) -> int | None:
    "The dense part's size of a saved model with a lexical part; None for a model (or teacher) with only a dense part."
    if 'dense_size' in vectors and int(vectors['dense_size']) < vectors['docs'].shape[1]: return int(vectors['dense_size'])
    return None


def study_hybrid(study: Study, vectors, cols: slice, dense: int | None) -> dict:
    "`relcollab.retrieval.hybrid` on the saved vectors: with its defaults, and tuned on the validation queries."
    index, queries = saved_index(study, vectors, cols, dense)
    def scores(**setting):
        return {split: hybrid_scores(queries[split][0], index, study.bm25[split], query_lexical=queries[split][1], **setting)
                for split, _ in study.splits()}
    chosen = tune_hybrid(study.valid_ids, queries['valid'][0], index, study.bm25['valid'], study.qrels,
                         query_lexical=queries['valid'][1], k=K)
    setting = {key: chosen[key] for key in ('weight', 'feedback_depth', 'feedback_weight')}
    return {'hybrid (HybridSearch defaults)': (*study.ndcg(scores()), 'w 0.7, m 3, beta 1.0'),
            'hybrid (HybridSearch.tune on validation)': (*study.ndcg(scores(**setting)),
                                                         'w {weight}, m {feedback_depth}, beta {feedback_weight}'.format(**setting))}


def saved_study(folder: Path) -> Study:
    "The `Study` of the fold whose vectors `folder` holds (bench/cranfield.py --save-vectors), its ids checked."
    saved = json.loads((folder / 'ids.json').read_text())
    study = Study(saved['fold'])
    for name, ids in (('doc_ids', study.doc_ids), ('valid_ids', study.valid_ids), ('test_ids', study.test_ids)):
        if saved[name] != [str(i) for i in ids]:
            raise SystemExit(f"{folder / 'ids.json'}: its {name} are not this Cranfield's fold {saved['fold']} "
                             f"(another data set or split): save the vectors again with bench/cranfield.py.")
    return study


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('folder', type=Path, help="bench/cranfield.py --save-vectors's folder")
    parser.add_argument('--models', nargs='*', default=None, help='file stems in the folder (default: all)')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    study = saved_study(args.folder)
    bm25 = study.ndcg(study.bm25)
    print(f'Cranfield fold {study.fold}: BM25 {bm25[0]:.3f} ({bm25[1]:.3f}); nDCG@10 test (validation)\n')
    print('| model | ranking | nDCG@10 | chosen on validation |\n|---|---|---|---|')
    paths = sorted(args.folder.glob('*.npz')) if args.models is None else [args.folder / f'{m}.npz' for m in args.models]
    for path in paths:
        vectors = np.load(path)
        for label, (test, valid, choice) in study_model(study, vectors, saved_dense_size(vectors)).items():
            print(f'| {path.stem} | {label} | {test:.3f} ({valid:.3f}) | {choice} |', flush=True)


if __name__ == '__main__':
    main()
