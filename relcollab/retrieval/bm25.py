"""`BM25Baseline`: the lexical baseline every learned ranker must beat (bm25s, English stopwords, Snowball stems).

    bm25 = BM25Baseline().index(docs['id'], docs['text'])
    results = bm25.search(queries['text'].tolist(), k=100)     # SearchResults(ids, scores), (n_queries, k)
"""
import numpy as np

from .encode import as_text_list
from .index import SearchResults, check_doc_ids, check_k, top_k

__all__ = ['BM25Baseline']


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
        self.stemmer = Stemmer.Stemmer(stemmer)
        self.ids = None

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
