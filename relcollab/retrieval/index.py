"""`DocIndex`: document ids and their vectors, exact top-k search (`top_k`, the one top-k of relcollab), a
pickle-free save format, the `model_fingerprint` stored with it, and the learner's `index`, `search` and `rank`.

    index = learn.index(docs_df, id_col='id', text_col='text')   # encodes every document once
    index.save('cran_index'); index = DocIndex.load('cran_index')
    learn.search(['heat transfer in slabs'], index, k=10)         # SearchResults(ids, scores), scores in user units
    learn.rank('heat transfer in slabs', docs_df, k=3)            # DataFrame: id, score, rank (1..k), text

A model with a lexical channel gives each document a dense unit projection and term weights over the whole
vocabulary, almost all zero; the index keeps the dense part as an (n, d) array and the term weights as an
(n, vocab) `scipy.sparse` CSR matrix, and scores a query as dense . dense + lexical . lexical: the dot product
of the whole vectors, at the cost of the terms each document contains.

On disk (`index.save(dir)`): `vectors.npy` (the dense part, float32, `np.save`, no pickle), `lexical.npz`
(the term weights, `scipy.sparse.save_npz`, no pickle; only for a lexical model), `ids.json` (a list of
strings) and `index.json` (format version, dims, count, dtype and the model fingerprint). `learn.search`
refuses an index whose fingerprint is not the learner's (the vectors came from another model).
"""
import hashlib
import json
import warnings
import weakref
from pathlib import Path
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from fastcore.basics import patch
from scipy import sparse

from ..core.atomic import read_json
from ..training.learner import RelevanceLearner
from ..core.validation import RelevanceDataError, check_columns, check_texts, row_labels
from .encode import ENCODE_BS, SplitVectors, as_text_list

__all__ = ['SearchResults', 'DocIndex', 'IndexFileError', 'IndexMismatchError', 'model_fingerprint', 'top_k',
           'exact_search', 'check_k', 'check_doc_ids', 'docs_frame', 'check_fingerprint',
           'INDEX_FORMAT_VERSION', 'FORMAT_VERSION']

INDEX_FORMAT_VERSION = 2  # 2: the lexical part sparse in lexical.npz; 1: whole vectors (term weights dense) in vectors.npy
FORMAT_VERSION = INDEX_FORMAT_VERSION  # (the name before the model format had its own: relcollab.retrieval.pretrained)
VECTORS_FILE, LEXICAL_FILE, IDS_FILE, META_FILE = 'vectors.npy', 'lexical.npz', 'ids.json', 'index.json'
BACKENDS = ('numpy', 'faiss')
CHUNK_CELLS = 1 << 25  # exact search scores at most this many (query, document) pairs at once (128 MB)
_DIGESTS = weakref.WeakKeyDictionary()  # model_fingerprint's cache: document projection -> (tensor summary, sha256)


class SearchResults(NamedTuple):
    "Top-k hits per query: `ids` (n_queries, k) object array of document ids, `scores` (n_queries, k) float32."
    ids: np.ndarray
    scores: np.ndarray


class IndexFileError(RelevanceDataError):
    "A saved index is missing, truncated, inconsistent or from a newer format."


class IndexMismatchError(RelevanceDataError):
    "The index was built by another model (its fingerprint is not the learner's)."


def model_fingerprint(learn) -> str:
    """sha256 of the document projection's weights and buffers, the vocabulary size and the projection size.

    The document projection is trained in every stage, so any training changes it; an index built before
    (or by another model) then no longer matches. It does not hash the (large) document tower itself.
    The digest is computed again only when a float64 sum of some tensor (or where it lives) has changed
    since the last call, so checking it before every search costs microseconds.

    >>> len(model_fingerprint(learn))  # doctest: +SKIP
    64
    """
    doc_proj = learn.model.head.doc_proj
    state = sorted(doc_proj.state_dict().items())
    extra = f"vocab={len(learn.dls.vocab)};proj={doc_proj[-1].out_features}"
    with torch.no_grad():
        summary = (extra, *((name, tensor.data_ptr(), tuple(tensor.shape), tensor.sum(dtype=torch.float64).item())
                            for name, tensor in state))
    cached = _DIGESTS.get(doc_proj)
    if cached is not None and cached[0] == summary: return cached[1]
    digest = hashlib.sha256()
    for name, tensor in state:
        digest.update(name.encode())
        digest.update(tensor.detach().cpu().contiguous().numpy().tobytes())
    digest.update(extra.encode())
    _DIGESTS[doc_proj] = (summary, digest.hexdigest())
    return digest.hexdigest()


def check_k(k, n: int) -> int:
    """`k` as an int; below 1 raises, above `n` warns and gives `n` (all documents are returned).

    >>> check_k(3, 10)
    3
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)): raise TypeError(f"k must be an integer, got {k!r}.")
    if k < 1: raise ValueError(f"k must be at least 1, got {k}.")
    if n < 1: raise RelevanceDataError("There are no documents to search: pass at least one.")
    if k > n:
        warnings.warn(f"k={k} is more than the {n} documents in the collection: returning all {n}.", stacklevel=3)
    return min(int(k), n)


def top_k(scores: np.ndarray, k: int) -> tuple:
    """`(positions, values)` of the `k` largest entries of each row of `scores` (m, n), best first.

    Exact and deterministic: equal scores are ordered by position (the earlier document first).

    >>> top_k(np.array([[0.1, 0.5, 0.5, 0.2]]), 2)[0]
    array([[1, 2]])
    """
    n = scores.shape[1]
    positions = np.empty((len(scores), k), dtype=np.int64)
    for row, values in enumerate(scores):
        if k < n:
            threshold = np.partition(values, n - k)[n - k]
            candidates = np.flatnonzero(values >= threshold)
        else:
            candidates = np.arange(n)
        positions[row] = candidates[np.lexsort((candidates, -values[candidates]))[:k]]
    return positions, np.take_along_axis(scores, positions, axis=1)


def exact_search(query_vectors: np.ndarray, doc_vectors: np.ndarray, k: int, chunk_size: int | None = None,
                 query_lexical=None, doc_postings=None) -> tuple:
    """`(positions, dots)`: the `k` documents with the largest dot product for each query, best first.

    With `query_lexical` (m, vocab) and `doc_postings` (vocab, n), both `scipy.sparse` CSR, the dot product
    adds query_lexical . doc_lexical: the sparse parts of the vectors. Queries are scored `chunk_size` at a
    time (default: as many as keep a chunk x n score matrix near 128 MB).

    >>> exact_search(np.eye(2, dtype=np.float32), np.eye(2, dtype=np.float32), k=1)[0]
    array([[0],
           [1]])
    """
    k = check_k(k, len(doc_vectors))
    chunk_size = chunk_size or max(1, min(1024, CHUNK_CELLS // len(doc_vectors)))
    chunks = []
    for start in range(0, len(query_vectors), chunk_size):
        dots = query_vectors[start:start + chunk_size] @ doc_vectors.T
        if query_lexical is not None: dots += (query_lexical[start:start + chunk_size] @ doc_postings).toarray()
        chunks.append(top_k(dots, k))
    if not chunks: return np.zeros((0, k), dtype=np.int64), np.zeros((0, k), dtype=np.float32)
    return np.concatenate([c[0] for c in chunks]), np.concatenate([c[1] for c in chunks]).astype(np.float32)


def _import_faiss():
    try:
        import faiss
    except ImportError as error:
        raise ImportError("The faiss backend needs faiss: pip install faiss-cpu (or faiss-gpu).") from error
    return faiss


def check_doc_ids(ids, labels=None, source='docs') -> list:
    "`ids` as strings; raises RelevanceDataError when there are none or some repeat (naming the rows by `labels`)."
    ids = [str(i) for i in ids]
    if len(ids) == 0: raise RelevanceDataError(f"{source}: the collection is empty; an index needs at least one document.")
    labels = list(range(len(ids))) if labels is None else list(labels)
    repeated = pd.Series(ids).duplicated(keep=False).to_numpy()
    if repeated.any():
        first = ids[int(np.argmax(repeated))]
        raise RelevanceDataError(
            f"{source}: ids must be unique; {len(set(np.asarray(ids)[repeated]))} id(s) repeat, in "
            f"{row_labels([l for l, r in zip(labels, repeated) if r], source=source)} (e.g. {first!r}). "
            "Drop or rename the duplicates.")
    return ids


def _check_vectors(vectors, n_ids: int) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2: raise ValueError(f"vectors must be a 2-D (n, d) matrix, got shape {vectors.shape}.")
    if len(vectors) != n_ids: raise ValueError(f"{n_ids} ids but {len(vectors)} vectors: one vector per id.")
    if not np.isfinite(vectors).all(): raise ValueError("vectors contain NaN or infinite values.")
    return vectors


def _check_lexical(lexical, n_ids: int, name: str = 'lexical') -> sparse.csr_matrix | None:
    "`lexical` as a float32 CSR matrix with one row per id (None stays None)."
    if lexical is None: return None
    lexical = sparse.csr_matrix(lexical, dtype=np.float32)
    if lexical.shape[0] != n_ids:
        raise ValueError(f"{n_ids} ids but {lexical.shape[0]} rows of {name} term weights: one row per id.")
    if not np.isfinite(lexical.data).all(): raise ValueError(f"{name} term weights contain NaN or infinite values.")
    return lexical


class DocIndex:
    """Document `ids` (strings) and their (n, d) float32 `vectors`, searched exactly by dot product.

    `lexical`, an (n, vocab) `scipy.sparse` matrix (or anything it converts), holds the lexical term weights
    of a model with a lexical channel, `vectors` then being the dense part (`learn.encode(..., output='both')`;
    `learn.index` does this); a document's score is then its dense dot product plus its sparse one.
    `fingerprint` is the `model_fingerprint` of the learner that encoded the documents (None: unknown).
    `backend='faiss'` searches the dense vectors with a `faiss.IndexFlatIP` instead (needs
    `pip install faiss-cpu`; exact, but faiss orders equal scores its own way; not with a lexical part).

    >>> index = DocIndex(['a', 'b'], np.eye(2, dtype=np.float32))
    >>> index.search(np.array([[0., 1.]], dtype=np.float32), k=1).ids
    array([['b']], dtype=object)
    """
    def __init__(self, ids, vectors, fingerprint=None, backend='numpy', lexical=None):
        if backend not in BACKENDS: raise ValueError(f"backend must be one of {BACKENDS}, got {backend!r}.")
        self.ids = check_doc_ids(ids)
        self._id_array = np.asarray(self.ids, dtype=object)  # built once: ids of search results, by position
        self.vectors = _check_vectors(vectors, len(self.ids))
        self.lexical = _check_lexical(lexical, len(self.ids))
        if backend == 'faiss' and self.lexical is not None:
            raise ValueError("backend='faiss' searches dense vectors only, and this index has a lexical part: "
                             "use backend='numpy' (exact, sparse term weights), or index a model with lexical=False.")
        self.fingerprint, self.backend = fingerprint, backend
        self._postings = None  # the lexical part transposed (vocab, n): each term's documents, built at the first search
        self._faiss_index = self.to_faiss() if backend == 'faiss' else None

    def __len__(self): return len(self.ids)

    @property
    def dim(self) -> int:
        "Size of the dense vectors (without the lexical part)."
        return self.vectors.shape[1]

    @property
    def lexical_dim(self) -> int:
        "Size of the lexical part (the vocabulary), 0 without one."
        return 0 if self.lexical is None else self.lexical.shape[1]

    def __repr__(self):
        fingerprint = 'unknown' if self.fingerprint is None else self.fingerprint[:12]
        lexical = '' if self.lexical is None else (f", lexical {self.lexical_dim} terms "
                                                   f"({self.lexical.nnz / max(len(self), 1):.0f} per doc)")
        return f"DocIndex({len(self)} docs, dim {self.dim}{lexical}, model {fingerprint}, backend {self.backend!r})"

    def to_faiss(self):
        "A `faiss.IndexFlatIP` holding the vectors (exact inner-product search). Needs `pip install faiss-cpu`."
        faiss = _import_faiss()
        faiss_index = faiss.IndexFlatIP(self.dim)
        faiss_index.add(self.vectors)
        return faiss_index

    def search_positions(self, query_vectors, k: int = 10, query_lexical=None) -> tuple:
        "`(positions, dots)` (n_queries, k) of the best documents for each query vector, best first."
        queries, query_lexical = self._query_parts(query_vectors, query_lexical)
        if self._faiss_index is not None:
            dots, positions = self._faiss_index.search(np.ascontiguousarray(queries), check_k(k, len(self)))
            return positions.astype(np.int64), dots.astype(np.float32)
        if query_lexical is None: return exact_search(queries, self.vectors, k)
        if self._postings is None: self._postings = self.lexical.T.tocsr()
        return exact_search(queries, self.vectors, k, query_lexical=query_lexical, doc_postings=self._postings)

    def _query_parts(self, query_vectors, query_lexical) -> tuple:
        "(dense (m, dim) array, lexical (m, vocab) CSR or None) from whole vectors, dense ones + `query_lexical`, or SplitVectors."
        if isinstance(query_vectors, SplitVectors): query_vectors, query_lexical = query_vectors
        queries = np.asarray(query_vectors, dtype=np.float32)
        if queries.ndim == 1: queries = queries[None]
        if self.lexical is None:
            if query_lexical is not None:
                raise ValueError("query_lexical was given, but this index has no lexical part: pass dense vectors alone.")
            if queries.ndim != 2 or queries.shape[1] != self.dim:
                raise ValueError(f"query vectors must have shape (n, {self.dim}) for this index, got {queries.shape}.")
            return queries, None
        whole = self.dim + self.lexical_dim
        if query_lexical is None and queries.ndim == 2 and queries.shape[1] == whole:
            return np.ascontiguousarray(queries[:, :self.dim]), sparse.csr_matrix(queries[:, self.dim:])
        if queries.ndim != 2 or queries.shape[1] != self.dim or query_lexical is None:
            raise ValueError(f"this index has {self.dim} dense dimensions and {self.lexical_dim} lexical ones: pass "
                             f"whole query vectors (n, {whole}), or dense ones (n, {self.dim}) with query_lexical "
                             f"(n, {self.lexical_dim}); got {queries.shape}"
                             f"{'' if query_lexical is None else ' and query_lexical ' + str(query_lexical.shape)}.")
        query_lexical = _check_lexical(query_lexical, len(queries), name='query_lexical')
        if query_lexical.shape[1] != self.lexical_dim:
            raise ValueError(f"query_lexical has {query_lexical.shape[1]} columns, this index {self.lexical_dim}.")
        return queries, query_lexical

    def search(self, query_vectors, k: int = 10, query_lexical=None) -> SearchResults:
        """Top-`k` documents by raw dot product for each query vector ((d,) counts as one query).

        For an index with a lexical part, pass whole query vectors (`learn.encode`), or the dense part with
        `query_lexical` (or the `SplitVectors` of `learn.encode(..., output='both')`).
        `k` above the number of documents warns and returns all of them; `k` below 1 raises.
        """
        positions, dots = self.search_positions(query_vectors, k, query_lexical=query_lexical)
        return SearchResults(self._id_array[positions], dots)

    def save(self, path) -> Path:
        "Writes vectors.npy, lexical.npz (with a lexical part), ids.json and index.json into directory `path` (created if needed)."
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        np.save(path/VECTORS_FILE, self.vectors, allow_pickle=False)
        if self.lexical is not None: sparse.save_npz(path/LEXICAL_FILE, self.lexical, compressed=False)
        else: (path/LEXICAL_FILE).unlink(missing_ok=True)  # (an older index saved here had one)
        (path/IDS_FILE).write_text(json.dumps(self.ids), encoding='utf-8')
        meta = {'format_version': INDEX_FORMAT_VERSION, 'dim': self.dim, 'lexical_dim': self.lexical_dim,
                'count': len(self), 'dtype': 'float32', 'fingerprint': self.fingerprint}
        (path/META_FILE).write_text(json.dumps(meta, indent=1), encoding='utf-8')
        _drop_hybrid_parts(path)
        return path

    @classmethod
    def load(cls, path, backend='numpy') -> 'DocIndex':
        "Reads an index written by `save` (no pickle), checking it against its index.json."
        path = Path(path)
        meta = _read_meta(path)
        vectors = _read_vectors(path/VECTORS_FILE, meta)
        lexical = _read_lexical(path/LEXICAL_FILE, meta) if meta.get('lexical_dim') else None
        ids = _read_json(path/IDS_FILE)
        if not isinstance(ids, list) or len(ids) != meta['count']:
            raise IndexFileError(f"{path/IDS_FILE}: expected a list of {meta['count']} ids (index.json), "
                                 f"got {len(ids) if isinstance(ids, list) else type(ids).__name__}. Rebuild the index.")
        if meta['format_version'] < 2:
            warnings.warn(f"{path}: an index of format {meta['format_version']}, which stores each document's lexical term "
                          "weights (if its model has them) dense, a float per vocabulary word. It searches as before; "
                          "rebuild it (learn.index(docs).save(path) or `relcollab index`) for the sparse layout, a "
                          "fraction of the disk, memory and search time.", stacklevel=2)
        return cls(ids, vectors, fingerprint=meta.get('fingerprint'), backend=backend, lexical=lexical)


def _drop_hybrid_parts(path: Path):
    """Removes a BM25 index and hybrid settings (`relcollab.retrieval.hybrid`) left by an earlier index in `path`: they
    describe other documents. (The names are hybrid.py's BM25_DIR, SETTINGS_FILE and bm25.py's BM25_FILE, spelled out:
    both modules import this one.)"""
    import shutil
    if (path/'bm25').is_dir() and ((path/'bm25'/'bm25.json').is_file() or (path/'bm25'/'params.index.json').is_file()):
        shutil.rmtree(path/'bm25')
    (path/'hybrid.json').unlink(missing_ok=True)


def _read_json(path: Path):
    return read_json(path, IndexFileError, missing=f"; is {path.parent} a directory written by DocIndex.save?",
                     corrupt=". Rebuild the index.")


def _read_meta(path: Path) -> dict:
    meta = _read_json(path/META_FILE)
    if not isinstance(meta, dict) or not {'format_version', 'dim', 'count'} <= set(meta):
        raise IndexFileError(f"{path/META_FILE}: needs format_version, dim and count. Rebuild the index.")
    if meta['format_version'] > INDEX_FORMAT_VERSION:
        raise IndexFileError(f"{path/META_FILE}: format version {meta['format_version']} was written by a newer "
                             f"relcollab (this one reads up to {INDEX_FORMAT_VERSION}). Upgrade relcollab or rebuild the index.")
    return meta


def _read_vectors(path: Path, meta: dict) -> np.ndarray:
    if not path.is_file(): raise IndexFileError(f"{path}: missing; rebuild the index.")
    try:
        vectors = np.load(path, allow_pickle=False)
    except (ValueError, EOFError, OSError) as error:
        raise IndexFileError(f"{path}: unreadable or truncated ({error}). Rebuild the index.") from None
    expected = (meta['count'], meta['dim'])
    if vectors.shape != expected:
        raise IndexFileError(f"{path}: shape {vectors.shape}, but index.json says {expected}. Rebuild the index.")
    return vectors


def _read_lexical(path: Path, meta: dict) -> sparse.csr_matrix:
    if not path.is_file(): raise IndexFileError(f"{path}: missing (index.json says the index has a lexical part); rebuild the index.")
    try:
        lexical = sparse.load_npz(path)  # np.load without pickle
    except (ValueError, EOFError, OSError, KeyError) as error:
        raise IndexFileError(f"{path}: unreadable or truncated ({error}). Rebuild the index.") from None
    expected = (meta['count'], meta['lexical_dim'])
    if lexical.shape != expected:
        raise IndexFileError(f"{path}: shape {lexical.shape}, but index.json says {expected}. Rebuild the index.")
    return lexical.tocsr()


def docs_frame(docs, id_col='id', text_col='text', source='docs') -> pd.DataFrame:
    """A checked (id, text) DataFrame from a DataFrame with `id_col` and `text_col`, or a list of texts (ids 0..n-1).

    >>> docs_frame(['wing flutter', 'heat']).columns.tolist()
    ['id', 'text']
    """
    if not isinstance(docs, pd.DataFrame):
        texts, _ = as_text_list(docs)
        return pd.DataFrame({id_col: range(len(texts)), text_col: texts})
    check_columns(docs, {'id_col': id_col, 'text_col': text_col}, source=source)
    check_texts(docs, text_col, source=source)
    missing = docs[id_col].isna()
    if missing.any():
        raise RelevanceDataError(f"{source}: column {id_col!r} has missing ids in {row_labels(docs.index[missing])}.")
    return docs


@patch
def index(self: RelevanceLearner, docs, id_col='id', text_col='text', bs=ENCODE_BS, progress=None,
          source='docs', bf16=False) -> DocIndex:
    """Encodes every document of `docs` (a DataFrame with `id_col` and `text_col`, or a list of texts) once.

    Ids must be unique (they are stored as strings). The index carries this learner's `model_fingerprint`.
    `source` names the data in error messages (a file path gives file lines). `bf16`, `bs` and `progress` are
    `learn.encode`'s (the same defaults in `encode`, `index`, `search` and `rank`; `bs` changes speed only, not vectors).

    >>> index = learn.index(docs_df, id_col='id', text_col='text')  # doctest: +SKIP
    """
    frame = docs_frame(docs, id_col, text_col, source=source)
    check_doc_ids(frame[id_col].tolist(), labels=frame.index, source=source)
    dense, lexical = self.encode(frame[text_col].tolist(), side='doc', bs=bs, progress=progress, output='both', bf16=bf16)
    return DocIndex(frame[id_col].tolist(), dense, fingerprint=model_fingerprint(self), lexical=lexical)


def check_fingerprint(learn, index: DocIndex):
    "Raises IndexMismatchError when `index` was built by another model; warns when its model is unknown."
    if index.fingerprint is None:
        warnings.warn("This index has no model fingerprint: cannot check that the learner built it.", stacklevel=3)
    elif index.fingerprint != model_fingerprint(learn):
        raise IndexMismatchError(
            f"This index ({len(index)} docs) was built by another model (fingerprint {index.fingerprint[:12]}, "
            f"this learner {model_fingerprint(learn)[:12]}). Rebuild it: learn.index(docs) or `relcollab index`.")


@patch
def search(self: RelevanceLearner, queries, index: DocIndex, k=10, bs=ENCODE_BS, progress=None, bf16=False) -> SearchResults:
    """Encodes `queries` (a string or a list), finds the top-`k` documents of `index` and scores them in user units.

    Results are (n_queries, k) arrays, best first (a single string is one query). Refuses an index built by
    another model; `k` above the collection size warns and returns every document.

    >>> learn.search(['heat transfer in slabs'], index, k=5).ids.shape  # doctest: +SKIP
    (1, 5)
    """
    check_fingerprint(self, index)
    texts = as_text_list(queries)[0]
    if index.lexical is None:  # dense vectors, or whole ones (an index built before the sparse layout)
        positions, dots = index.search_positions(self.encode(texts, side='query', bs=bs, progress=progress, bf16=bf16), k)
    else:
        positions, dots = index.search_positions(self.encode(texts, side='query', bs=bs, progress=progress, output='both',
                                                             bf16=bf16), k)
    return SearchResults(index._id_array[positions], self.score_dots(dots).astype(np.float32))


@patch
def rank(self: RelevanceLearner, query: str, docs, k=10, id_col='id', text_col='text', bs=ENCODE_BS, progress=None,
         source='docs', bf16=False) -> pd.DataFrame:
    """The `k` documents of `docs` that best answer `query`, best first.

    `docs` is a DataFrame with `id_col` and `text_col`, a list of texts (ids are their positions 0..n-1) or a
    `DocIndex` (from `learn.index`). Columns: `id_col`, `score` (the user's units), `rank` (1..k), and
    `text_col` when the texts were given. `k` above the number of documents warns and returns all of them.
    `bs`, `progress`, `source` and `bf16` mean what they mean in `learn.index`.

    >>> learn.rank('heat transfer in slabs', docs_df, k=3)  # doctest: +SKIP
         id     score  rank                                   text
    0   399  2.710000     1  heat transfer in a slab with ...
    """
    if not isinstance(query, str): raise TypeError(f"query must be a string, got {type(query).__name__}.")
    if isinstance(docs, DocIndex):
        results = self.search([query], docs, k=k, bs=bs, bf16=bf16)
        return _ranked_frame({id_col: results.ids[0]}, results.scores[0])
    frame = docs_frame(docs, id_col, text_col, source=source)
    dense, lexical = self.encode(frame[text_col].tolist(), side='doc', bs=bs, output='both', progress=progress, bf16=bf16)
    by_position = DocIndex(range(len(frame)), dense, fingerprint=model_fingerprint(self), lexical=lexical)
    results = self.search([query], by_position, k=k, bs=bs, bf16=bf16)
    hits = frame.iloc[results.ids[0].astype(int)]
    return _ranked_frame({id_col: hits[id_col].to_numpy(), text_col: hits[text_col].to_numpy()}, results.scores[0])


def _ranked_frame(columns: dict, scores) -> pd.DataFrame:
    "id, score, rank (1..k) and any other columns, in the order given (already best first)."
    id_col, *others = columns
    scores = np.asarray(scores, dtype=np.float32).reshape(-1)
    frame = pd.DataFrame({id_col: columns[id_col], 'score': scores, 'rank': np.arange(1, len(scores) + 1)})
    for col in others: frame[col] = columns[col]
    return frame
