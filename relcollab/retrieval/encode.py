"""`learn.encode`: texts -> the unit vectors the model dot-products; `learn.score_vectors`: vectors -> scores.

They are patched onto `RelevanceLearner` when this module is imported (`from relcollab.all import *`,
`import relcollab.retrieval` or any of its modules does it; `load_learner` alone does not):

    q = learn.encode('heat transfer in slabs', side='query')      # (d,) unit vector
    D = learn.encode(docs['text'].tolist(), side='doc')           # (n, d) matrix, caller's order
    learn.encode_query(queries), learn.encode_document(docs)       # the same, as sentence-transformers names them
    learn.score_vectors(q, D)                                     # (n,) scores in the user's units
    learn.encode_to_file(doc_texts, 'vectors.npy', side='doc')     # any number of texts, bounded memory
    dense, lexical = learn.encode(texts, side='doc', output='both') # lexical term weights as scipy.sparse CSR
    learn.score_dots(q_dense @ D_dense.T + (q_lexical @ D_lexical.T).toarray())  # dot products -> scores
"""
import itertools
from concurrent.futures import ThreadPoolExecutor
from typing import NamedTuple

import numpy as np
import pandas as pd
import torch
from scipy import sparse
from fastcore.basics import patch
from fastprogress.fastprogress import progress_bar

from ..core.atomic import atomic_write
from ..core.bf16 import resolve_bf16
from ..core.text import _token_ids, numericalize_texts  # noqa: F401  (numericalize_texts: re-exported, its old home)
from ..training.learner import _PREDICT_LOCK, RelevanceLearner

__all__ = ['SIDES', 'OUTPUTS', 'ENCODE_BS', 'SplitVectors', 'as_text_list', 'numericalize_texts', 'pad_batch']

SIDES = ('query', 'doc')
CONVERSIONS = ('numpy', 'tensor')
OUTPUTS = ('vectors', 'dense', 'lexical', 'both')
ENCODE_BS = 128  # texts per batch when encoding, indexing, searching and ranking (one default everywhere)
AUTO_PROGRESS_MIN = 1000  # progress=None shows a bar above this many texts
CHUNK_ROWS, CHUNK_BYTES = 8192, 64 << 20  # encode_to_file holds at most this many vectors in memory at once


class SplitVectors(NamedTuple):
    """A model's vectors in their two parts: `dense` (n, d) unit projections (float32 array or tensor) and
    `lexical` (n, vocab) term weights as a `scipy.sparse.csr_matrix` (float32; only the terms a text contains
    are stored), None for a model without a lexical channel. dense . dense + lexical . lexical is the dot
    product of the whole vectors."""
    dense: object
    lexical: object


def as_text_list(texts) -> tuple:
    """`(list_of_strings, single)`: one string becomes a one-element list with `single=True`.

    >>> as_text_list('wing flutter')
    (['wing flutter'], True)
    """
    if isinstance(texts, str): return [texts], True
    if isinstance(texts, pd.Series): texts = texts.tolist()
    if not isinstance(texts, (list, tuple, np.ndarray)):
        raise TypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}.")
    return _checked_strings(list(texts)), False


def _checked_strings(texts: list, start: int = 0) -> list:
    "`texts`, after checking that each is a string (positions in messages count from `start`)."
    for position, text in enumerate(texts, start=start):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__} ({text!r}), not a string: "
                            "fill or drop missing texts (an empty text '' is allowed).")
    return texts


def pad_batch(token_ids: list, pad_idx: int) -> torch.Tensor:
    """Stacks token-id tensors into (bs, longest), padding at the END as the model expects.

    >>> pad_batch([torch.tensor([2, 9]), torch.tensor([2])], pad_idx=1)
    tensor([[2, 9],
            [2, 1]])
    """
    width = max(len(ids) for ids in token_ids)
    return torch.stack([torch.cat([ids, ids.new_full((width - len(ids),), pad_idx)]) for ids in token_ids])


def _batches(texts: list, bs: int) -> list:
    "Positions of `texts` longest first (by characters, a close proxy for tokens: little padding), in batches of `bs`."
    order = sorted(range(len(texts)), key=lambda i: -len(texts[i]))
    return [order[start:start + bs] for start in range(0, len(order), bs)]


def _prefetched_tokens(texts: list, batches: list, tokenizer, numericalize, pad_idx: int):
    """Yields the padded token ids (bs, longest) of each batch of positions of `texts`.

    A worker thread tokenizes the next batch while the caller runs the model on this one: tokenizing is pure
    Python (it holds the GIL), the LSTM runs in torch (it releases it), so the two overlap on two cores.
    """
    def prepare(positions):
        return pad_batch([_token_ids(tokens, numericalize) for tokens in tokenizer([texts[i] for i in positions])], pad_idx)
    if len(batches) < 2:  # nothing to overlap with (one query): no thread
        yield from map(prepare, batches)
        return
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix='relcollab-tokenize') as pool:
        pending = pool.submit(prepare, batches[0])
        for following in [*batches[1:], None]:
            tokens = pending.result()
            if following is not None: pending = pool.submit(prepare, following)
            yield tokens


def _encode_texts(learn, texts: list, side: str, bs: int, show_progress: bool = False, bf16: bool = False,
                  split: bool = False):
    """(n, d) float32 CPU vectors of `texts` from one tower and its projection in eval mode, rows in the caller's order.

    `split=True` gives `(dense, lexical)` instead: the dense part as above and the lexical term weights as a
    CSR matrix (None without a lexical channel), so no (n, vocab) dense block is ever held in memory."""
    model = learn.model
    encode_side = model.encode_query if side == 'query' else model.encode_doc
    pad_idx = (model.query_tower if side == 'query' else model.doc_tower).encoder.pad_idx
    device = next(model.parameters()).device
    n_dense, n_lexical = model.head.dense_features, model.head.n_lexical
    split_lexical = split and n_lexical > 0
    out = torch.empty(len(texts), n_dense if split_lexical else model.head.out_features, dtype=torch.float32)
    lexical_parts = []
    batches = _batches(texts, bs)
    token_batches = _prefetched_tokens(texts, batches, learn.dls.tokenizer, learn.dls.numericalizer, pad_idx)
    if show_progress: token_batches = progress_bar(token_batches, total=len(batches), leave=False)
    was_training, bf16 = model.training, resolve_bf16(bf16, device.type)
    with _PREDICT_LOCK:
        switch = any(module.training for module in model.modules())  # (switching costs more than a query)
        if switch: model.eval()
        try:
            with torch.inference_mode(), torch.autocast(device.type, dtype=torch.bfloat16, enabled=bf16):
                for positions, tokens in zip(batches, token_batches):
                    vectors = encode_side(tokens.to(device)).float().cpu()
                    if not split_lexical:
                        out[positions] = vectors
                        continue
                    out[positions] = vectors[:, :n_dense]
                    lexical_parts.append(sparse.csr_matrix(vectors[:, n_dense:].numpy()))
        finally:
            if switch: model.train(was_training)
    if not split: return out
    return out, (_rows_in_order(lexical_parts, batches, n_lexical) if split_lexical else None)


def _rows_in_order(parts: list, batches: list, width: int) -> sparse.csr_matrix:
    "One CSR matrix from the batches' CSR blocks, rows back in the caller's order (`batches` holds their positions)."
    if not parts: return sparse.csr_matrix((0, width), dtype=np.float32)
    stacked = sparse.vstack(parts, format='csr', dtype=np.float32)
    return stacked[np.argsort(np.concatenate(batches))]


@patch
def encode(self: RelevanceLearner, texts, side='query', bs=ENCODE_BS, progress=None, convert_to='numpy', bf16=False,
           output='vectors'):
    """The vectors the model dot-products, for `texts` read as queries or documents (`side`).

    A list (or Series) of n strings gives an (n, d) float32 matrix in the caller's order; one string gives
    a (d,) vector. Each vector is the unit dense projection followed, for a model with a lexical channel,
    by its term weights over the whole vocabulary (mostly zeros). `output` picks the parts:
    `'vectors'` (default) the whole vectors; `'dense'` the dense part alone; `'lexical'` the term weights as
    a `scipy.sparse.csr_matrix` (n, vocab) holding only the terms each text contains (one row for one string);
    `'both'` a `SplitVectors(dense, lexical)`. The dot product of whole vectors is dense . dense +
    lexical . lexical, which is how `learn.index` stores and searches documents. Texts are sorted by length and batched (`bs`), each batch tokenized on a worker thread
    while the model encodes the one before; `progress=None` shows a bar above 1000 texts.
    `convert_to='tensor'` returns a CPU `torch.Tensor`. `bf16=True` runs the towers under bfloat16 autocast
    (2x faster on CPUs with AMX or AVX512-BF16; vectors move by up to about 2e-3: see README, Speed); where the
    CPU cannot (AVX2 only), it encodes in float32 after one `Bf16FallbackWarning`.

    >>> learn.encode(['heat transfer in slabs', 'wing flutter'], side='doc').shape  # doctest: +SKIP
    (2, 256)
    """
    if side not in SIDES: raise ValueError(f"side must be 'query' or 'doc', got {side!r}.")
    if convert_to not in CONVERSIONS: raise ValueError(f"convert_to must be 'numpy' or 'tensor', got {convert_to!r}.")
    if output not in OUTPUTS: raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}.")
    if output == 'lexical' and not self.model.head.n_lexical:
        raise ValueError("output='lexical': this model has no lexical channel (it was built with lexical=False); "
                         "its vectors are all dense: use output='dense' or 'vectors'.")
    if int(bs) < 1: raise ValueError(f"bs must be at least 1, got {bs}.")
    texts, single = as_text_list(texts)
    show_progress = len(texts) > AUTO_PROGRESS_MIN if progress is None else bool(progress)
    if output == 'vectors':
        vectors = _encode_texts(self, texts, side, int(bs), show_progress, bf16=bf16)
        if single: vectors = vectors[0]
        return vectors if convert_to == 'tensor' else vectors.numpy()
    dense, lexical = _encode_texts(self, texts, side, int(bs), show_progress, bf16=bf16, split=True)
    if single: dense = dense[0]
    dense = dense if convert_to == 'tensor' else dense.numpy()
    return {'dense': dense, 'lexical': lexical}.get(output, SplitVectors(dense, lexical))


@patch
def encode_query(self: RelevanceLearner, texts, **kwargs):
    """`texts` read as queries: `learn.encode(texts, side='query', **kwargs)` (sentence-transformers' name).

    >>> learn.encode_query(['heat transfer in slabs', 'wing flutter']).shape  # doctest: +SKIP
    (2, 256)
    """
    if 'side' in kwargs: raise TypeError("encode_query reads texts as queries: call learn.encode(texts, side=...) to choose the side.")
    return self.encode(texts, side='query', **kwargs)


@patch
def encode_document(self: RelevanceLearner, texts, **kwargs):
    """`texts` read as documents: `learn.encode(texts, side='doc', **kwargs)` (sentence-transformers' name).

    >>> learn.encode_document(docs['text']) @ learn.encode_query('wing flutter')  # doctest: +SKIP
    array([0.41, 0.07, ...], dtype=float32)
    """
    if 'side' in kwargs: raise TypeError("encode_document reads texts as documents: call learn.encode(texts, side=...) to choose the side.")
    return self.encode(texts, side='doc', **kwargs)


@patch
def encode_to_file(self: RelevanceLearner, texts, path, side='doc', bs=ENCODE_BS, n=None, chunk_size=None, progress=None,
                   bf16=False) -> np.ndarray:
    """Encodes `texts` into the `.npy` file `path` and returns it memory-mapped (read-only), for collections
    larger than memory.

    `texts` is any iterable of strings (a generator too; pass its length as `n` when it has no `len`). It is
    read `chunk_size` texts at a time (default: 8192, fewer for wide lexical vectors) and each chunk's
    vectors are appended to the file, so memory stays bounded however many texts there are. The result
    equals `learn.encode(texts, side, bs)`; the file is whole or absent, even after a crash.

    >>> vectors = learn.encode_to_file(docs['text'], 'vectors.npy', side='doc')  # doctest: +SKIP
    >>> index = DocIndex(docs['id'], vectors, fingerprint=model_fingerprint(learn))  # doctest: +SKIP
    """
    if side not in SIDES: raise ValueError(f"side must be 'query' or 'doc', got {side!r}.")
    if int(bs) < 1: raise ValueError(f"bs must be at least 1, got {bs}.")
    if isinstance(texts, str): raise TypeError("texts must be an iterable of strings, not one string: use learn.encode.")
    if n is None and not hasattr(texts, '__len__'): raise TypeError("texts has no len(): pass the number of texts as n.")
    n = len(texts) if n is None else int(n)
    dim = self.model.head.out_features
    chunk_size = int(chunk_size or min(CHUNK_ROWS, max(int(bs), CHUNK_BYTES // (4 * dim))))
    chunks = _chunks(texts, n, chunk_size)
    if (n > AUTO_PROGRESS_MIN if progress is None else progress):
        chunks = progress_bar(chunks, total=-(-n // chunk_size), leave=False)
    def write(handle):
        np.lib.format.write_array_header_1_0(handle, {'descr': '<f4', 'fortran_order': False, 'shape': (n, dim)})
        for chunk in chunks:
            vectors = _encode_texts(self, chunk, side, int(bs), bf16=bf16).numpy()
            handle.write(np.ascontiguousarray(vectors, dtype='<f4').data)
    atomic_write(path, write)
    return np.load(path, mmap_mode='r') if n else np.load(path)  # an empty array cannot be mapped


def _chunks(texts, n: int, chunk_size: int):
    "Lists of up to `chunk_size` strings read from the iterable `texts`, `n` strings in all."
    remaining = iter(texts)
    for start in range(0, n, chunk_size):
        size = min(chunk_size, n - start)
        chunk = _checked_strings(list(itertools.islice(remaining, size)), start)
        if len(chunk) < size: raise ValueError(f"texts ran out after {start + len(chunk)} of the n={n} texts.")
        yield chunk


@patch
def score_dots(self: RelevanceLearner, dots):
    """Scores in the user's units from query . document dot products of any shape (for instance the dots
    `DocIndex.search` returns): the same map from dot products to scores as `score_vectors` and `predict`.

    >>> learn.score_dots(index.search(learn.encode('wing'), k=3).scores)  # doctest: +SKIP
    array([[2.6, 2.1, 1.9]], dtype=float32)
    """
    device = next(self.model.parameters()).device
    with torch.inference_mode():
        scores = self.dls.score_scaler.decode(self.model.head.score_dots(torch.as_tensor(np.asarray(dots, dtype=np.float32)).to(device)))
    return scores.float().cpu().numpy()


def _as_matrix(vectors, device) -> torch.Tensor:
    "(n, d) float32 tensor on `device` from a numpy array or tensor of shape (d,) or (n, d)."
    tensor = torch.as_tensor(np.asarray(vectors, dtype=np.float32) if not torch.is_tensor(vectors) else vectors)
    if tensor.ndim not in (1, 2): raise ValueError(f"vectors must have shape (d,) or (n, d), got {tuple(tensor.shape)}.")
    return tensor.float().to(device).reshape(-1, tensor.shape[-1])


@patch
def score_vectors(self: RelevanceLearner, query_vectors, doc_vectors):
    """Scores in the user's units from row-aligned query and document vectors (from `learn.encode`).

    Shapes (d,) or (n, d); a single vector on one side is paired with every row of the other. Two single
    vectors give a float, otherwise an (n,) float32 array:
    `learn.score_vectors(learn.encode(q), learn.encode(d, side='doc')) == learn.predict(q, d)[0]`.

    >>> learn.score_vectors(learn.encode('wing'), learn.encode(['wing lift', 'heat'], side='doc'))  # doctest: +SKIP
    array([2.1, 0.4], dtype=float32)
    """
    device = next(self.model.parameters()).device
    queries, docs = _as_matrix(query_vectors, device), _as_matrix(doc_vectors, device)
    if queries.shape[1] != docs.shape[1]:
        raise ValueError(f"query vectors have {queries.shape[1]} dimensions but doc vectors {docs.shape[1]}.")
    if len(queries) != len(docs) and 1 not in (len(queries), len(docs)):
        raise ValueError(f"{len(queries)} query vectors and {len(docs)} doc vectors: pass row-aligned pairs "
                         "or one vector on either side.")
    queries, docs = torch.broadcast_tensors(queries, docs)
    with torch.inference_mode():
        scores = self.dls.score_scaler.decode(self.model.head.score(queries, docs)[:, 0])
    scores = scores.float().cpu().numpy()
    single = np.ndim(query_vectors) == 1 and np.ndim(doc_vectors) == 1
    return float(scores[0]) if single else scores
