"""`BM25Baseline`: the lexical baseline every learned ranker must beat (bm25s, English stopwords, Snowball stems).

    bm25 = BM25Baseline().index(docs['id'], docs['text'])
    results = bm25.search(queries['text'].tolist(), k=100)     # SearchResults(ids, scores), (n_queries, k)
    bm25.save('cran_bm25'); bm25 = BM25Baseline.load('cran_bm25')

On disk: bm25s's own files (its term-score matrix as .npy arrays, vocabulary and parameters as JSON, no pickle)
and `bm25.json` (relcollab's: the document ids, the stemmer's language, a format version).
"""
import json
from pathlib import Path

import numpy as np

from ..core.atomic import atomic_write, read_json
from .encode import as_text_list
from .index import IndexFileError, SearchResults, check_doc_ids, check_k, top_k

__all__ = ['BM25Baseline', 'BM25_FILE', 'BM25_FORMAT_VERSION']

BM25_FILE = 'bm25.json'
BM25_FORMAT_VERSION = 1


class BM25Baseline:
    """Okapi BM25 over lower-cased words without English stopwords, stemmed by PyStemmer (`stemmer` language).

    `k1`, `b` and `method` ('lucene', 'robertson', 'atire', 'bm25l', 'bm25+') go to `bm25s.BM25`. Search scores
    every document and keeps the best `k`, equal scores in collection order (deterministic).

    >>> bm25 = BM25Baseline().index(['a', 'b'], ['heat transfer in slabs', 'wing flutter'])
    >>> bm25.search(['slab heating'], k=1).ids
    array([['a']], dtype=object)
    """
    def __init__(self, k1: float = 1.5, b: float = 0.75, method: str = 'lucene', stemmer: str = 'english'):
        import bm25s
        import Stemmer
        self.retriever = bm25s.BM25(k1=k1, b=b, method=method)
        self.stemmer, self.language = Stemmer.Stemmer(stemmer), stemmer
        self.ids = None

    def __repr__(self):
        count = 'not indexed' if self.ids is None else f'{len(self.ids)} docs'
        return f"BM25Baseline({count}, k1 {self.retriever.k1}, b {self.retriever.b}, {self.retriever.method}, {self.language} stems)"

    def tokenize(self, texts: list) -> list:
        "Each text as a list of stemmed words, stopwords removed."
        import bm25s
        return bm25s.tokenize(texts, stopwords='en', stemmer=self.stemmer, return_ids=False, show_progress=False)

    def index(self, ids, texts) -> 'BM25Baseline':
        "Indexes `texts` under `ids` (unique; kept as strings). Returns self."
        texts, _ = as_text_list(list(texts))
        ids = check_doc_ids(list(ids))
        if len(ids) != len(texts): raise ValueError(f"{len(ids)} ids for {len(texts)} texts: one id per text.")
        self.retriever.index(self.tokenize(texts), show_progress=False)
        self.ids = np.asarray(ids, dtype=object)
        return self

    def scores(self, queries) -> np.ndarray:
        "(n_queries, n_docs) BM25 scores of every document for each query (a query with no known word scores 0)."
        if self.ids is None: raise RuntimeError("Call .index(ids, texts) before searching.")
        queries, _ = as_text_list(queries)
        rows = [self.retriever.get_scores(tokens) if tokens else np.zeros(len(self.ids), dtype=np.float32)
                for tokens in self.tokenize(queries)]
        return np.asarray(rows, dtype=np.float32).reshape(len(queries), len(self.ids))

    def search(self, queries, k: int = 10, chunk_size: int = 256) -> SearchResults:
        """The `k` best documents for each query (a string is one query): ids and scores shaped (n_queries, k).

        `k` above the number of documents warns and returns all of them.
        """
        if self.ids is None: raise RuntimeError("Call .index(ids, texts) before searching.")
        queries, _ = as_text_list(queries)
        k = check_k(k, len(self.ids))
        chunks = [top_k(self.scores(queries[start:start + chunk_size]), k) for start in range(0, len(queries), chunk_size)]
        if not chunks: return SearchResults(np.empty((0, k), dtype=object), np.zeros((0, k), dtype=np.float32))
        positions = np.concatenate([positions for positions, _ in chunks])
        scores = np.concatenate([values for _, values in chunks]).astype(np.float32)
        return SearchResults(self.ids[positions], scores)

    def save(self, path) -> Path:
        """Writes the index into directory `path` (created if needed): bm25s's files and bm25.json. Returns `path`.

        >>> BM25Baseline().index(['a', 'b'], ['heat transfer in slabs', 'wing flutter']).save(tmp_path / 'bm25')  # doctest: +SKIP
        """
        if self.ids is None: raise RuntimeError("Nothing to save: call .index(ids, texts) first.")
        path = Path(path)
        self.retriever.save(path, show_progress=False)
        meta = {'format_version': BM25_FORMAT_VERSION, 'count': len(self.ids), 'stemmer': self.language,
                'ids': [str(i) for i in self.ids]}
        atomic_write(path/BM25_FILE, lambda handle: handle.write(json.dumps(meta).encode('utf-8')))  # last: the marker
        return path

    @classmethod
    def load(cls, path) -> 'BM25Baseline':
        """Reads an index written by `save` (no pickle); a missing or damaged file raises `IndexFileError` naming it.

        >>> BM25Baseline.load('cran_bm25').search(['slab heating'], k=1).ids  # doctest: +SKIP
        array([['a']], dtype=object)
        """
        import bm25s
        path = Path(path)
        meta = read_json(path/BM25_FILE, IndexFileError, missing=f"; is {path} a directory written by BM25Baseline.save?",
                         corrupt='. Index the documents again.')
        if not isinstance(meta, dict) or not {'format_version', 'count', 'stemmer', 'ids'} <= set(meta):
            raise IndexFileError(f"{path/BM25_FILE}: needs format_version, count, stemmer and ids. Index the documents again.")
        if not isinstance(meta['format_version'], int) or not isinstance(meta['stemmer'], str):
            raise IndexFileError(f"{path/BM25_FILE}: format_version must be a whole number and stemmer a language name. "
                                 "Index the documents again.")
        if meta['format_version'] > BM25_FORMAT_VERSION:
            raise IndexFileError(f"{path/BM25_FILE}: format version {meta['format_version']} was written by a newer "
                                 f"relcollab (this one reads up to {BM25_FORMAT_VERSION}). Upgrade relcollab or index again.")
        if not isinstance(meta['ids'], list) or len(meta['ids']) != meta['count']:
            raise IndexFileError(f"{path/BM25_FILE}: expected {meta['count']} ids. Index the documents again.")
        try: ids = check_doc_ids(meta['ids'], source=str(path/BM25_FILE))
        except ValueError as error: raise IndexFileError(f"{error} Index the documents again.") from None
        try:
            retriever = bm25s.BM25.load(path, show_progress=False)
        except (OSError, ValueError, EOFError, KeyError, TypeError, AttributeError) as error:
            raise IndexFileError(f"{path}: bm25s's files are missing, unreadable or from another bm25s version "
                                 f"({type(error).__name__}: {error}). Index the documents again.") from None
        if retriever.scores.get('num_docs') != meta['count']:
            raise IndexFileError(f"{path}: bm25s's files hold {retriever.scores.get('num_docs')} documents, "
                                 f"{BM25_FILE} {meta['count']}. Index the documents again.")
        try:
            bm25 = cls(k1=retriever.k1, b=retriever.b, method=retriever.method, stemmer=meta['stemmer'])
        except KeyError:
            raise IndexFileError(f"{path/BM25_FILE}: no stemmer for the language {meta['stemmer']!r} in this "
                                 "PyStemmer. Index the documents again.") from None
        bm25.retriever, bm25.ids = retriever, np.asarray(ids, dtype=object)
        return bm25
