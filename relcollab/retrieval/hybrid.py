"""Hybrid search: a relcollab model and BM25 ranking together in one call, from the index and the texts.

Two steps (measured in `bench/cranfield_fusion.py`, README "Hybrid search"):
1. feedback: BM25's `feedback_depth` best documents for each query pull the query's dense vector toward the mean of
   their dense vectors (Rocchio pseudo-relevance feedback, q + feedback_weight * mean; a lexical model's term weights
   stay the query's own);
2. fusion: the model's scores of every document and BM25's are z-scored per query (mean 0, deviation 1 over the
   collection) and summed, `weight` on the model's and 1 - weight on BM25's.

    bm25 = BM25Baseline().index(docs['id'], docs['text'])
    hybrid = HybridSearch(learn, learn.index(docs), bm25)
    hybrid.tune(valid_queries, qrels)              # optional: weight and feedback chosen on judged queries
    hybrid.search(['heat transfer in slabs'], k=10).ids
    hybrid.save('cran_hybrid'); hybrid = HybridSearch.load(learn, 'cran_hybrid')   # index, BM25 and settings

On disk (`save(dir)`): the `DocIndex` files, BM25's in `dir/bm25/` and `hybrid.json` (the weight and feedback
settings, so a tuned search is reloaded as tuned). `relcollab index --bm25` writes the same folder with the defaults.
"""
import json
import shutil
from itertools import product
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.atomic import atomic_write, read_json
from .bm25 import BM25_FILE, BM25Baseline
from .encode import ENCODE_BS, as_text_list
from .evaluate import evaluate_run
from .index import CHUNK_CELLS, DocIndex, IndexFileError, SearchResults, check_fingerprint, check_k, top_k
from .trec import run_frame

__all__ = ['HybridSearch', 'hybrid_scores', 'tune_hybrid', 'check_hybrid_setting', 'rocchio', 'zscore_per_query',
           'save_hybrid_parts', 'load_hybrid_parts', 'HYBRID_WEIGHT', 'FEEDBACK_DEPTH', 'FEEDBACK_WEIGHT']

HYBRID_WEIGHT = 0.7    # the model's share of the fused z-scores
FEEDBACK_DEPTH = 3     # BM25's top documents that move each query vector (0: no feedback)
FEEDBACK_WEIGHT = 1.0  # how far they move it
QUERY_CHUNK = 256      # queries scored at once, at most (fewer for large collections: see _chunk)
TUNE_WEIGHTS = tuple(float(w) for w in np.round(np.arange(0.05, 1.0, 0.05), 2))
TUNE_DEPTHS = (0, 3, 5, 10)
TUNE_FEEDBACK_WEIGHTS = (0.25, 0.5, 1.0, 2.0)
BM25_DIR, SETTINGS_FILE = 'bm25', 'hybrid.json'
SETTING_NAMES = ('weight', 'feedback_depth', 'feedback_weight')  # HybridSearch's settings, as hybrid.json keeps them


def rocchio(query_vectors: np.ndarray, doc_vectors: np.ndarray, positions: np.ndarray, weight: float = FEEDBACK_WEIGHT,
            mask=None):
    """Each query vector plus `weight` times the mean of its documents' vectors (`positions`, (n_queries, m) rows of
    `doc_vectors`). `mask` ((n_queries, m) booleans) keeps only some of them; a query with none (or m = 0) stays as it is.

    >>> rocchio(np.array([[1., 0.]]), np.array([[0., 1.], [0., 3.]]), np.array([[0, 1]]), weight=0.5).tolist()
    [[1.0, 1.0]]
    >>> rocchio(np.array([[1., 0.]]), np.array([[0., 1.], [0., 3.]]), np.array([[0, 1]]), mask=np.array([[False, True]])).tolist()
    [[1.0, 3.0]]
    """
    query_vectors = np.asarray(query_vectors, dtype=np.float32)
    positions = np.asarray(positions, dtype=np.int64).reshape(len(query_vectors), -1)
    mask = np.ones(positions.shape, dtype=bool) if mask is None else np.asarray(mask, dtype=bool).reshape(positions.shape)
    counts = mask.sum(1, keepdims=True)
    if positions.shape[1] == 0 or not counts.any(): return query_vectors.copy()
    picked = np.asarray(doc_vectors, dtype=np.float32)[positions] * mask[..., None]
    return query_vectors + np.float32(weight) * picked.sum(1) / np.maximum(counts, 1)


def zscore_per_query(scores: np.ndarray) -> np.ndarray:
    """Each row (a query's scores of every document) shifted to mean 0 and scaled to deviation 1 (a row of equal
    scores becomes zeros).

    >>> zscore_per_query(np.array([[1., 3.], [2., 2.]])).tolist()
    [[-1.0, 1.0], [0.0, 0.0]]
    """
    scores = np.asarray(scores, dtype=np.float64)
    deviation = scores.std(1, keepdims=True)
    return np.where(deviation > 1e-12, (scores - scores.mean(1, keepdims=True)) / np.maximum(deviation, 1e-12), 0.0)


def check_hybrid_setting(weight, feedback_depth, feedback_weight) -> tuple:
    """`(weight, feedback_depth, feedback_weight)` as float, int, float, or a ValueError that says what each must be.

    >>> check_hybrid_setting(0.7, 3, 1)
    (0.7, 3, 1.0)
    """
    if not 0 <= float(weight) <= 1: raise ValueError(f"weight is the model's share of the fusion, in [0, 1]; got {weight}.")
    if int(feedback_depth) != feedback_depth or feedback_depth < 0:
        raise ValueError(f"feedback_depth is a number of BM25's top documents (0: no feedback); got {feedback_depth}.")
    if not np.isfinite(float(feedback_weight)) or float(feedback_weight) < 0:
        raise ValueError(f"feedback_weight must be a finite number >= 0, got {feedback_weight}.")
    return float(weight), int(feedback_depth), float(feedback_weight)


def _checked_inputs(query_vectors, index: DocIndex, bm25_scores, query_lexical) -> tuple:
    "(dense queries, lexical queries or None, BM25 scores), checked against the index."
    if not isinstance(index, DocIndex): raise TypeError(f"index must be a DocIndex (learn.index(docs)), got {type(index).__name__}.")
    dense, lexical = index._query_parts(query_vectors, query_lexical)  # whole vectors, dense + CSR, or SplitVectors
    bm25_scores = np.atleast_2d(np.asarray(bm25_scores, dtype=np.float32))
    if bm25_scores.shape != (len(dense), len(index)):
        raise ValueError(f"bm25_scores must be shaped (queries, documents) = ({len(dense)}, {len(index)}), got {bm25_scores.shape}.")
    return dense, lexical, bm25_scores


def _model_scores(dense, lexical, index: DocIndex, bm25_scores, feedback_depth: int, feedback_weight: float) -> np.ndarray:
    "The model's scores of every document after BM25 feedback (only documents BM25 scores above 0 give feedback)."
    if feedback_depth:
        depth = min(feedback_depth, len(index))
        top, top_scores = top_k(bm25_scores, depth)
        dense = rocchio(dense, index.vectors, top, feedback_weight, mask=top_scores > 0)
    scores = dense @ index.vectors.T
    if lexical is not None:
        if index._postings is None: index._postings = index.lexical.T.tocsr()
        scores = scores + (lexical @ index._postings).toarray()
    return scores


def _chunk(n_docs: int) -> int:
    "Queries scored at once: at most QUERY_CHUNK, and about CHUNK_CELLS (query, document) pairs."
    return max(1, min(QUERY_CHUNK, CHUNK_CELLS // max(n_docs, 1)))


def hybrid_scores(query_vectors, index: DocIndex, bm25_scores, weight: float = HYBRID_WEIGHT,
                  feedback_depth: int = FEEDBACK_DEPTH, feedback_weight: float = FEEDBACK_WEIGHT, query_lexical=None):
    """(n_queries, n_docs) hybrid scores from vectors already encoded and `bm25_scores` (n, n_docs) of the same
    documents (`BM25Baseline.scores`). The queries are what `DocIndex.search` takes: whole vectors
    (`learn.encode`), a `SplitVectors` (`output='both'`), or dense vectors with `query_lexical` (scipy sparse, for an
    index with a lexical part). A query BM25 scores 0 everywhere gets no feedback; one that matches fewer documents
    than `feedback_depth` gets feedback from those it matches. `HybridSearch` encodes and calls this.

    >>> index = DocIndex(['a', 'b', 'c'], np.eye(3, dtype=np.float32))
    >>> int(hybrid_scores(np.array([[1., 0., 0.]]), index, np.array([[0., 2., 1.]]), weight=0.7, feedback_depth=0).argmax())
    0
    """
    weight, feedback_depth, feedback_weight = check_hybrid_setting(weight, feedback_depth, feedback_weight)
    dense, lexical, bm25_scores = _checked_inputs(query_vectors, index, bm25_scores, query_lexical)
    fused, step = np.empty(bm25_scores.shape, dtype=np.float32), _chunk(len(index))
    for start in range(0, len(dense), step):
        rows = slice(start, start + step)
        model = _model_scores(dense[rows], None if lexical is None else lexical[rows], index, bm25_scores[rows],
                              feedback_depth, feedback_weight)
        fused[rows] = weight * zscore_per_query(model) + (1 - weight) * zscore_per_query(bm25_scores[rows])
    return fused


def tune_hybrid(query_ids, query_vectors, index: DocIndex, bm25_scores, qrels: pd.DataFrame, query_lexical=None,
                weights=TUNE_WEIGHTS, feedback_depths=TUNE_DEPTHS, feedback_weights=TUNE_FEEDBACK_WEIGHTS,
                metric: str = 'ndcg@10', k: int = 100) -> dict:
    """The `weight`, `feedback_depth` and `feedback_weight` of `hybrid_scores` best by `metric` on judged queries
    (`query_ids` in the order of the vectors; `qrels` with `qid, docid, gain`); ties go to the first tried (every
    weight without feedback first, in the order given). Returns them with their score.

    >>> tune_hybrid(['1'], q, index, bm25.scores(['slab heating']), qrels)  # doctest: +SKIP
    {'weight': 0.8, 'feedback_depth': 3, 'feedback_weight': 1.0, 'ndcg@10': 0.55}
    """
    query_ids = [str(q) for q in query_ids]
    if not set(qrels['qid'].astype(str)) & set(query_ids):
        raise ValueError(f"None of the {len(query_ids)} queries has a judgment in qrels (its qid column): nothing to tune on.")
    for w in weights: check_hybrid_setting(w, 0, 0)
    feedbacks = [(0, 0.0)] + [check_hybrid_setting(0, m, b)[1:] for m, b in product(feedback_depths, feedback_weights) if m]
    dense, lexical, bm25_scores = _checked_inputs(query_vectors, index, bm25_scores, query_lexical)
    if len(query_ids) != len(dense): raise ValueError(f"{len(query_ids)} query ids for {len(dense)} query vectors.")
    lexical_z = zscore_per_query(bm25_scores)
    best, best_score = None, -np.inf
    for depth, beta in feedbacks:  # the model's scores once per feedback setting, then every weight
        model_z = zscore_per_query(_model_scores(dense, lexical, index, bm25_scores, depth, beta))
        for weight in weights:
            positions, top_scores = top_k(weight * model_z + (1 - weight) * lexical_z, min(int(k), len(index)))
            run = run_frame(query_ids, SearchResults(index._id_array[positions], top_scores))
            score = evaluate_run(run, qrels, metrics=[metric])[metric]
            if score > best_score + 1e-12: best, best_score = (weight, depth, beta), score
    weight, feedback_depth, feedback_weight = check_hybrid_setting(*best)
    return {'weight': weight, 'feedback_depth': feedback_depth, 'feedback_weight': feedback_weight, metric: best_score}


def save_hybrid_parts(path, index: DocIndex, bm25: BM25Baseline, weight: float = HYBRID_WEIGHT,
                      feedback_depth: int = FEEDBACK_DEPTH, feedback_weight: float = FEEDBACK_WEIGHT) -> Path:
    """Writes `index`, `bm25` (in `path/bm25`) and the settings (`path/hybrid.json`) into directory `path`, first
    checking that both hold the same documents in the same order. Returns `path`.

    >>> save_hybrid_parts('cran_hybrid', learn.index(docs), BM25Baseline().index(docs['id'], docs['text']))  # doctest: +SKIP
    """
    setting = check_hybrid_setting(weight, feedback_depth, feedback_weight)
    _check_same_documents(index, bm25)
    path = Path(path)
    index.save(path)  # (drops the BM25 index and settings of an earlier folder)
    if (path/BM25_DIR).exists(): shutil.rmtree(path/BM25_DIR)  # (a half-written one)
    settings = json.dumps(dict(zip(SETTING_NAMES, setting)), indent=1)
    atomic_write(path/SETTINGS_FILE, lambda handle: handle.write(settings.encode('utf-8')))
    bm25.save(path/BM25_DIR)  # its bm25.json last: a folder killed before it has no BM25, never BM25 without its settings
    return path


def load_hybrid_parts(path, backend: str = 'numpy', index: DocIndex | None = None) -> tuple:
    """`(index, bm25, settings)` from a directory written by `save_hybrid_parts` / `HybridSearch.save` /
    `relcollab index --bm25` (`index`: the folder's `DocIndex`, already loaded); settings is {} without a
    hybrid.json. A missing or damaged part raises `IndexFileError` naming it.

    >>> index, bm25, settings = load_hybrid_parts('cran_hybrid')  # doctest: +SKIP
    """
    path = Path(path)
    if index is None: index = DocIndex.load(path, backend=backend)
    if not (path/BM25_DIR/BM25_FILE).is_file():
        raise IndexFileError(f"{path}: no BM25 index in it ({path/BM25_DIR/BM25_FILE} is missing): build the folder with "
                             "`relcollab index ... --bm25` or HybridSearch(...).save, or give the documents "
                             "(`relcollab search --hybrid DOCS`).")
    bm25 = BM25Baseline.load(path/BM25_DIR)
    settings = {}
    if (path/SETTINGS_FILE).is_file():
        settings = read_json(path/SETTINGS_FILE, IndexFileError, corrupt='. Delete it to use the defaults.')
        try: settings = dict(zip(SETTING_NAMES, check_hybrid_setting(*(settings[name] for name in SETTING_NAMES))))
        except (KeyError, TypeError, ValueError) as error:
            raise IndexFileError(f"{path/SETTINGS_FILE}: needs weight, feedback_depth and feedback_weight as numbers "
                                 f"({error}). Delete it to use the defaults.") from None
    try: _check_same_documents(index, bm25)
    except ValueError as error: raise IndexFileError(f"{path}: {error}") from None
    return index, bm25, settings


def first_difference(ids: list, other_ids: list) -> int | None:
    """The first position where two id lists differ (the shorter one's length when one continues the other), None
    when they are equal.

    >>> first_difference(['a', 'b'], ['a', 'c']), first_difference(['a'], ['a', 'b']), first_difference(['a'], ['a'])
    (1, 1, None)
    """
    ids, other_ids = list(ids), list(other_ids)
    if ids == other_ids: return None
    return next((i for i, (a, b) in enumerate(zip(ids, other_ids)) if a != b), min(len(ids), len(other_ids)))


def _check_same_documents(index: DocIndex, bm25: BM25Baseline):
    if getattr(bm25, 'ids', None) is None: raise ValueError("bm25 has no documents: call bm25.index(ids, texts) first.")
    differ = first_difference(bm25.ids, index.ids)
    if differ is not None:
        raise ValueError(f"bm25 and index hold different documents ({len(bm25.ids)} and {len(index)}; first "
                         f"difference at position {differ}): index both from the same documents, same ids in the same order.")


class HybridSearch:
    """Searches `index` (`learn.index`) with the model `learn` and `bm25` (a `BM25Baseline` indexed on the same
    documents, same ids in the same order) together: BM25 feedback on the query vectors, then z-score fusion.
    `bs` and `bf16` are `learn.encode`'s for the queries.

    The defaults (weight 0.7, BM25's top 3, feedback weight 1) were chosen on Cranfield fold 0's validation queries;
    on fold 1 they tie a plain fusion of the two runs (README, Hybrid search). `tune` chooses them on your judged
    queries (on 36 validation queries it overfitted). Scores in the results are the fused z-scores.

    >>> hybrid = HybridSearch(learn, learn.index(docs), BM25Baseline().index(docs['id'], docs['text']))  # doctest: +SKIP
    >>> hybrid.search(['heat transfer in slabs'], k=5).ids.shape  # doctest: +SKIP
    (1, 5)
    """
    def __init__(self, learn, index: DocIndex, bm25: BM25Baseline, weight: float = HYBRID_WEIGHT,
                 feedback_depth: int = FEEDBACK_DEPTH, feedback_weight: float = FEEDBACK_WEIGHT, bs: int = ENCODE_BS,
                 bf16: bool = False):
        self.weight, self.feedback_depth, self.feedback_weight = check_hybrid_setting(weight, feedback_depth, feedback_weight)
        if not isinstance(index, DocIndex): raise TypeError(f"index must be a DocIndex (learn.index(docs)), got {type(index).__name__}.")
        check_fingerprint(learn, index)
        _check_same_documents(index, bm25)
        if index.dim != learn.model.head.dense_features:
            raise ValueError(f"this index holds {index.dim}-dimensional vectors and the model's dense part has "
                             f"{learn.model.head.dense_features} (an index saved before the dense and lexical parts were "
                             "stored apart): rebuild it with learn.index(docs) or `relcollab index`.")
        if index.backend == 'faiss':
            raise ValueError("HybridSearch scores every document exactly; load the index with backend='numpy'.")
        self.learn, self.index, self.bm25, self.bs, self.bf16 = learn, index, bm25, bs, bf16

    def __repr__(self):
        return (f"HybridSearch({len(self.index)} docs, weight {self.weight}, feedback from BM25's top "
                f"{self.feedback_depth} with weight {self.feedback_weight})")

    def _parts(self, texts: list) -> tuple:
        "(dense query vectors, their lexical term weights or None, BM25 scores of every document)."
        dense, lexical = self.learn.encode(texts, side='query', bs=self.bs, output='both', bf16=self.bf16)
        return np.atleast_2d(dense), lexical, self.bm25.scores(texts)

    def _fused(self, parts: tuple, weight: float, feedback_depth: int, feedback_weight: float) -> np.ndarray:
        dense, lexical, bm25 = parts
        return hybrid_scores(dense, self.index, bm25, weight, feedback_depth, feedback_weight,
                             query_lexical=lexical if self.index.lexical is not None else None)

    def scores(self, queries) -> np.ndarray:
        "(n_queries, n_docs) fused scores of every document for each query (a string is one query)."
        texts = as_text_list(queries)[0]
        return self._fused(self._parts(texts), self.weight, self.feedback_depth, self.feedback_weight)

    def search(self, queries, k: int = 10) -> SearchResults:
        """The `k` best documents for each query (a string is one query): ids and fused scores shaped (n_queries, k).

        >>> hybrid.search(['heat transfer in slabs'], k=3).ids  # doctest: +SKIP
        array([['399', '485', '144']], dtype=object)
        """
        texts, k = as_text_list(queries)[0], check_k(k, len(self.index))
        step = _chunk(len(self.index))  # one chunk of queries scored, encoded and ranked at a time
        chunks = [top_k(self.scores(texts[start:start + step]), k) for start in range(0, len(texts), step)]
        positions = np.concatenate([p for p, _ in chunks]) if chunks else np.zeros((0, k), dtype=np.int64)
        scores = np.concatenate([v for _, v in chunks]) if chunks else np.zeros((0, k), dtype=np.float32)
        return SearchResults(self.index._id_array[positions], scores)

    def tune(self, queries, qrels: pd.DataFrame, weights=TUNE_WEIGHTS, feedback_depths=TUNE_DEPTHS,
             feedback_weights=TUNE_FEEDBACK_WEIGHTS, metric: str = 'ndcg@10', k: int = 100) -> dict:
        """Chooses `weight`, `feedback_depth` and `feedback_weight` by `metric` on judged `queries` ({query id: text}
        or a DataFrame with `qid` and `text` columns; `qrels` with `qid, docid, gain`, as `read_qrels` gives), keeps
        the best and returns them with their score (`tune_hybrid`). Use validation queries, not the ones you report on.

        >>> hybrid.tune({'1': 'heat transfer in slabs'}, read_qrels('qrels.trec'))  # doctest: +SKIP
        {'weight': 0.8, 'feedback_depth': 3, 'feedback_weight': 1.0, 'ndcg@10': 0.55}
        """
        if isinstance(queries, pd.DataFrame):
            missing = [c for c in ('qid', 'text') if c not in queries.columns]
            if missing: raise ValueError(f"queries needs columns 'qid' and 'text'; missing {missing}.")
            queries = dict(zip(queries['qid'].astype(str), queries['text']))
        if not isinstance(queries, dict) or not queries:
            raise ValueError("queries must be a non-empty {query id: text} dict or a DataFrame with 'qid' and 'text'.")
        qids = [str(q) for q in queries]
        if not set(qrels['qid'].astype(str)) & set(qids):
            raise ValueError(f"None of the {len(qids)} queries has a judgment in qrels (its qid column): nothing to tune on.")
        dense, lexical, bm25 = self._parts(list(queries.values()))
        chosen = tune_hybrid(qids, dense, self.index, bm25, qrels, query_lexical=lexical if self.index.lexical is not None else None,
                             weights=weights, feedback_depths=feedback_depths, feedback_weights=feedback_weights,
                             metric=metric, k=k)
        self.weight, self.feedback_depth, self.feedback_weight = chosen['weight'], chosen['feedback_depth'], chosen['feedback_weight']
        return chosen

    def save(self, path) -> Path:
        """Writes the index, BM25 and the current settings (tuned or given) into directory `path`; `HybridSearch.load`
        reads them back. Returns `path`.

        >>> hybrid.tune(valid_queries, qrels); hybrid.save('cran_hybrid')  # doctest: +SKIP
        """
        return save_hybrid_parts(path, self.index, self.bm25, self.weight, self.feedback_depth, self.feedback_weight)

    @classmethod
    def load(cls, learn, path, bs: int = ENCODE_BS, bf16: bool = False, **settings) -> 'HybridSearch':
        """The hybrid search of `learn` over a folder written by `save` or `relcollab index --bm25`, with its saved
        settings (the defaults where it has none); `settings` (weight, feedback_depth, feedback_weight) override them.

        >>> HybridSearch.load(learn, 'cran_hybrid').search('heat transfer in slabs', k=3).ids  # doctest: +SKIP
        array([['399', '485', '144']], dtype=object)
        """
        index, bm25, saved = load_hybrid_parts(path)
        return cls(learn, index, bm25, bs=bs, bf16=bf16, **{**saved, **settings})
