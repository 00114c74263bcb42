"""`learn.encode`: texts -> the unit vectors the model dot-products; `learn.score_vectors`: vectors -> scores.

Both are patched onto `RelevanceLearner` when this module is imported (`from relcollab.all import *`,
`import relcollab.rank` or any retrieval module does it; `load_learner` alone does not):

    q = learn.encode('heat transfer in slabs', side='query')      # (d,) unit vector
    D = learn.encode(docs['text'].tolist(), side='doc')           # (n, d) matrix, caller's order
    learn.score_vectors(q, D)                                     # (n,) scores in the user's units
"""
import numpy as np
import pandas as pd
import torch
from fastai.text.data import Numericalize
from fastcore.basics import patch
from fastprogress.fastprogress import progress_bar

from .learner import _PREDICT_LOCK, RelevanceLearner

__all__ = ['SIDES', 'as_text_list', 'numericalize_texts', 'pad_batch']

SIDES = ('query', 'doc')
CONVERSIONS = ('numpy', 'tensor')
AUTO_PROGRESS_MIN = 1000  # progress=None shows a bar above this many texts


def as_text_list(texts) -> tuple:
    """`(list_of_strings, single)`: one string becomes a one-element list with `single=True`.

    >>> as_text_list('wing flutter')
    (['wing flutter'], True)
    """
    if isinstance(texts, str): return [texts], True
    if isinstance(texts, pd.Series): texts = texts.tolist()
    if not isinstance(texts, (list, tuple, np.ndarray)):
        raise TypeError(f"texts must be a string or a list of strings, got {type(texts).__name__}.")
    texts = list(texts)
    for position, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"texts[{position}] is {type(text).__name__} ({text!r}), not a string: "
                            "fill or drop missing texts (an empty text '' is allowed).")
    return texts, False


def numericalize_texts(texts: list, tokenizer, vocab) -> list:
    """Token ids (1-D int64 tensors) of `texts`: the dataloaders' tokenizer, then fastai's `Numericalize`.

    >>> [t.tolist() for t in numericalize_texts(['wing'], learn.dls.tokenizer, learn.dls.vocab)]  # doctest: +SKIP
    [[2, 23]]
    """
    numericalize = Numericalize(vocab=vocab)
    return [torch.as_tensor(numericalize(tokens), dtype=torch.long) for tokens in tokenizer(texts)]


def pad_batch(token_ids: list, pad_idx: int) -> torch.Tensor:
    """Stacks token-id tensors into (bs, longest), padding at the END as the model expects.

    >>> pad_batch([torch.tensor([2, 9]), torch.tensor([2])], pad_idx=1)
    tensor([[2, 9],
            [2, 1]])
    """
    width = max(len(ids) for ids in token_ids)
    return torch.stack([torch.cat([ids, ids.new_full((width - len(ids),), pad_idx)]) for ids in token_ids])


def _batches(token_ids: list, bs: int, show_progress: bool):
    "Positions of `token_ids` longest first, cut into batches of `bs` (with a progress bar if asked)."
    order = sorted(range(len(token_ids)), key=lambda i: -len(token_ids[i]))
    starts = range(0, len(order), bs)
    if show_progress: starts = progress_bar(starts, leave=False)
    for start in starts: yield order[start:start + bs]


def _encode_ids(model, token_ids: list, side: str, bs: int, show_progress: bool) -> torch.Tensor:
    "Runs one tower (and its projection) over `token_ids` in eval mode; rows in the caller's order."
    encode_side = model.encode_query if side == 'query' else model.encode_doc
    pad_idx = (model.query_tower if side == 'query' else model.doc_tower).encoder.pad_idx
    device = next(model.parameters()).device
    out = torch.empty(len(token_ids), model.head.out_features, dtype=torch.float32)
    was_training = model.training
    with _PREDICT_LOCK:
        model.eval()
        try:
            with torch.inference_mode():
                for positions in _batches(token_ids, bs, show_progress):
                    tokens = pad_batch([token_ids[i] for i in positions], pad_idx).to(device)
                    out[positions] = encode_side(tokens).float().cpu()
        finally:
            model.train(was_training)
    return out


@patch
def encode(self: RelevanceLearner, texts, side='query', bs=256, progress=None, convert_to='numpy'):
    """The unit vectors the model dot-products, for `texts` read as queries or documents (`side`).

    A list (or Series) of n strings gives an (n, d) float32 matrix in the caller's order; one string gives
    a (d,) vector. Texts are tokenized once, sorted by length and batched (`bs`); `progress=None` shows a
    bar above 1000 texts. `convert_to='tensor'` returns a CPU `torch.Tensor`.

    >>> learn.encode(['heat transfer in slabs', 'wing flutter'], side='doc').shape  # doctest: +SKIP
    (2, 256)
    """
    if side not in SIDES: raise ValueError(f"side must be 'query' or 'doc', got {side!r}.")
    if convert_to not in CONVERSIONS: raise ValueError(f"convert_to must be 'numpy' or 'tensor', got {convert_to!r}.")
    if int(bs) < 1: raise ValueError(f"bs must be at least 1, got {bs}.")
    texts, single = as_text_list(texts)
    token_ids = numericalize_texts(texts, self.dls.tokenizer, self.dls.vocab)
    show_progress = len(texts) > AUTO_PROGRESS_MIN if progress is None else bool(progress)
    vectors = _encode_ids(self.model, token_ids, side, int(bs), show_progress)
    if single: vectors = vectors[0]
    return vectors if convert_to == 'tensor' else vectors.numpy()


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
