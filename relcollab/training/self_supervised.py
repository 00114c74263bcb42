"""The corpus teaches itself: a self-supervised objective on the dense part of the vectors, as a fastai callback.

    learn.fit_one_cycle(3, 1e-2, cbs=SelfSupervised('crops'))    # or with learn.added_cbs(...)

For texts without judgments. Each training batch's distinct texts give two *views* each; the two views of a
text should have the closest dense vectors (the unit projection, `RelevanceHead.dense_features` first
columns) among the batch's: InfoNCE over the dense cosines divided by a fixed `temperature` (0.05 as in
SimCSE and Contriever; not learned), with the batch's other texts as negatives, in both directions. The
`views`:

- `'crops'` (Contriever, Izacard et al. 2021): two independent random contiguous crops of each distinct
  document, each `min_frac`..`max_frac` of its tokens (at least `min_tokens`), one through the query tower
  and one through the document tower;
- `'dropout'` (SimCSE, Gao et al. 2021): each distinct query through the query tower and each distinct
  document through the document tower, twice, in training mode: the views differ by their dropout masks;
- `'ict'` (inverse cloze, Lee et al. 2019): a random span of each distinct document through the query tower
  against the rest of the document (span removed) through the document tower.

The recipe's pseudo-queries (`relcollab.training.pseudo`) with `InBatchLoss`'s dense term already make an inverse-cloze
objective from a few fixed spans; these views are drawn afresh every batch. Every view keeps the text's first
token (`xxbos`). The term is added to the training loss (times `weight`) and never in validation or at
inference; the head's BatchNorm running statistics are left as the real texts set them.
"""
import math
from contextlib import contextmanager

import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from torch import nn

from ..core.model import same_rows

__all__ = ['VIEWS', 'distinct_rows', 'random_spans', 'random_crops', 'ict_views', 'info_nce',
           'self_supervised_loss', 'SelfSupervised', 'as_self_supervised']

VIEWS = ('crops', 'dropout', 'ict')


def distinct_rows(tokens: torch.Tensor) -> torch.Tensor:
    """Indices of the first row of each distinct text of a padded batch, in batch order.

    >>> distinct_rows(torch.tensor([[2, 5], [2, 6], [2, 5]])).tolist()
    [0, 1]
    """
    first = same_rows(tokens).to(torch.int8).argmax(dim=1)  # each row's first equal row
    return torch.nonzero(first == torch.arange(len(tokens), device=tokens.device)).view(-1)


def random_spans(lengths: torch.Tensor, min_frac: float = 0.1, max_frac: float = 0.5, min_tokens: int = 4,
                 keep_rest: bool = False) -> tuple:
    """`(start, size)` of one random contiguous span per row, over the tokens after the first: `lengths` (n,) are
    the rows' real token counts; a span has `min_frac`..`max_frac` of the `lengths - 1` tokens after the first,
    at least `min_tokens` (all of them when there are fewer), and starts at 1 or later. `keep_rest=True` leaves
    at least one of those tokens out of the span. Drawn from torch's global generator (see `set_seed`).

    >>> start, size = random_spans(torch.tensor([9, 3]))
    >>> size.tolist(), bool(start[1] == 1)
    ([4, 2], True)
    """
    body = (lengths - 1).clamp(min=0).to(torch.float64)
    top = torch.where(body >= 2, body - 1, body) if keep_rest else body
    lo = torch.minimum(torch.maximum(torch.ceil(min_frac * body), torch.full_like(body, min_tokens)), top)
    hi = torch.minimum(torch.maximum(torch.floor(max_frac * body), lo), top)
    size = torch.minimum(lo + torch.floor(torch.rand(len(body), dtype=torch.float64) * (hi - lo + 1)), hi)
    offset = torch.floor(torch.rand(len(body), dtype=torch.float64) * (body - size + 1))
    start = 1 + torch.minimum(offset, body - size)
    return start.long(), size.long()


def _gather(tokens: torch.Tensor, index: torch.Tensor, keep: torch.Tensor, pad_idx: int) -> torch.Tensor:
    "Rows of `tokens` at `index` (n, width) where `keep`, padding elsewhere, cut to the longest row."
    width = max(int(keep.sum(dim=1).max()), 1) if len(keep) else 1
    return tokens.gather(1, index[:, :width].clamp(0, tokens.shape[1] - 1)).masked_fill(~keep[:, :width], pad_idx)


def _lengths(tokens: torch.Tensor, pad_idx: int) -> torch.Tensor: return (tokens != pad_idx).sum(dim=1).cpu()


def random_crops(tokens: torch.Tensor, pad_idx: int, min_frac: float = 0.1, max_frac: float = 0.5,
                 min_tokens: int = 4) -> torch.Tensor:
    """A random crop of each row of a padded batch (padding at the end): its first token, then a contiguous span
    of the rest (`random_spans`), padded at the end.

    >>> random_crops(torch.tensor([[2, 5, 6, 7, 8, 9, 1]]), pad_idx=1, min_tokens=2).shape
    torch.Size([1, 3])
    """
    start, size = (t.to(tokens.device) for t in random_spans(_lengths(tokens, pad_idx), min_frac, max_frac, min_tokens))
    j = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    index = torch.where(j == 0, 0, start[:, None] + j - 1)
    return _gather(tokens, index, j <= size[:, None], pad_idx)


def ict_views(tokens: torch.Tensor, pad_idx: int, min_frac: float = 0.1, max_frac: float = 0.5,
              min_tokens: int = 4) -> tuple:
    """`(spans, rests)`: for each row of a padded batch, its first token and a random span of the rest
    (`random_spans`, never all of it when there are two tokens or more after the first), and its tokens without
    that span; both padded at the end.

    >>> spans, rests = ict_views(torch.tensor([[2, 5, 6, 7, 8, 9, 1]]), pad_idx=1, min_tokens=2)
    >>> spans.shape[1] + rests.shape[1]  # the first token twice, every other token once
    7
    """
    lengths = _lengths(tokens, pad_idx)
    start, size = (t.to(tokens.device) for t in random_spans(lengths, min_frac, max_frac, min_tokens, keep_rest=True))
    j = torch.arange(tokens.shape[1], device=tokens.device)[None, :]
    spans = _gather(tokens, torch.where(j == 0, 0, start[:, None] + j - 1), j <= size[:, None], pad_idx)
    rest_index = torch.where(j < start[:, None], j, j + size[:, None])
    rests = _gather(tokens, rest_index, j < (lengths.to(tokens.device) - size)[:, None], pad_idx)
    return spans, rests


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float = 0.05) -> torch.Tensor:
    """Symmetric InfoNCE of row-aligned unit vectors (n, d): row i of `a` should pick row i of `b` among all of
    `b`'s rows (cosines / `temperature`), and the other way round; the mean of both cross-entropies.

    >>> round(info_nce(torch.eye(3), torch.eye(3), temperature=0.05).item(), 6)
    0.0
    """
    logits = a @ b.T / temperature
    labels = torch.arange(len(a), device=a.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


@contextmanager
def _running_stats_kept(model: nn.Module):
    "BatchNorm layers normalize by the batch as in training but leave their running statistics as they are."
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.track_running_stats]
    saved = [(m.momentum, None if m.num_batches_tracked is None else m.num_batches_tracked.clone()) for m in norms]
    for m in norms: m.momentum = 0.
    try: yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None: m.num_batches_tracked.copy_(tracked)


def _dense(model, side: str, tokens: torch.Tensor) -> torch.Tensor:
    "The unit dense part of `side`'s vectors of `tokens` (the model's own mode: dropout in training)."
    vectors = model.encode_query(tokens) if side == 'query' else model.encode_doc(tokens)
    return vectors[:, :model.head.dense_features]


def self_supervised_loss(model, query_tokens: torch.Tensor, doc_tokens: torch.Tensor, views: str = 'crops',
                         temperature: float = 0.05, min_frac: float = 0.1, max_frac: float = 0.5,
                         min_tokens: int = 4) -> torch.Tensor:
    """The self-supervised term of one batch (see the module docstring): 0 when it has fewer than two distinct
    texts to contrast. Runs in the model's current mode (the callback calls it in training only).

    >>> self_supervised_loss(learn.model, *learn.dls.one_batch()[:2], views='crops')  # doctest: +SKIP
    tensor(2.31, grad_fn=...)
    """
    _check_views(views)
    pad_idx = model.doc_tower.encoder.pad_idx
    crop = dict(min_frac=min_frac, max_frac=max_frac, min_tokens=min_tokens)
    docs = doc_tokens[distinct_rows(doc_tokens)]
    terms = []
    with _running_stats_kept(model):
        if views == 'crops' and len(docs) > 1:
            first, second = random_crops(docs, pad_idx, **crop), random_crops(docs, pad_idx, **crop)
            terms.append(info_nce(_dense(model, 'query', first), _dense(model, 'doc', second), temperature))
        elif views == 'ict' and len(docs) > 1:
            spans, rests = ict_views(docs, pad_idx, **crop)
            terms.append(info_nce(_dense(model, 'query', spans), _dense(model, 'doc', rests), temperature))
        elif views == 'dropout':
            for side, texts in (('query', query_tokens[distinct_rows(query_tokens)]), ('doc', docs)):
                if len(texts) > 1:
                    terms.append(info_nce(_dense(model, side, texts), _dense(model, side, texts), temperature))
    return torch.stack(terms).mean() if terms else doc_tokens.new_zeros((), dtype=torch.float32)


def _check_views(views):
    if views not in VIEWS:
        raise ValueError(f"self-supervised views={views!r}: use one of {', '.join(map(repr, VIEWS))} "
                         "(random crops, dropout, inverse cloze).")


class SelfSupervised(Callback):
    """Adds `weight` x `self_supervised_loss` of each training batch to the learner's loss (and to the training
    loss it logs); `last_loss` holds the term of the last training batch. Nothing is added in validation, and
    nothing of it is kept in the model. Each batch costs two extra encodings of its distinct documents (crops
    and inverse cloze: shorter texts), or of its distinct queries and documents (dropout).

    >>> learn.fit_one_cycle(1, 1e-2, cbs=SelfSupervised('crops', weight=1.))  # doctest: +SKIP
    """
    order = 6  # after TeacherDistillation's after_loss (5), which reads the main forward pass's vectors

    def __init__(self, views: str = 'crops', weight: float = 1., temperature: float = 0.05, min_frac: float = 0.1,
                 max_frac: float = 0.5, min_tokens: int = 4):
        _check_views(views)
        if not (isinstance(weight, (int, float)) and math.isfinite(weight) and weight >= 0):
            raise ValueError(f"self-supervised weight={weight!r}: a number >= 0 (0 turns the term off).")
        if not (isinstance(temperature, (int, float)) and temperature > 0):
            raise ValueError(f"self-supervised temperature={temperature!r}: a number > 0 (0.05 is usual).")
        if not 0 < min_frac <= max_frac <= 1:
            raise ValueError(f"self-supervised crop fractions: 0 < min_frac <= max_frac <= 1, got {min_frac} and {max_frac}.")
        if not (isinstance(min_tokens, int) and min_tokens >= 1):
            raise ValueError(f"self-supervised min_tokens={min_tokens!r}: an integer >= 1.")
        self.views, self.weight, self.temperature = views, float(weight), float(temperature)
        self.crop = dict(min_frac=min_frac, max_frac=max_frac, min_tokens=min_tokens)
        self.last_loss = None

    def __repr__(self): return f"SelfSupervised(views={self.views!r}, weight={self.weight})"

    def after_loss(self):
        if not self.training or not self.weight: return
        term = self_supervised_loss(self.learn.model, *self.xb[:2], views=self.views, temperature=self.temperature,
                                    **self.crop)
        self.last_loss = term.detach()
        self.learn.loss_grad = self.loss_grad + self.weight * term
        self.learn.loss = self.learn.loss_grad.clone()


def as_self_supervised(self_supervised) -> SelfSupervised | None:
    """The callback for `train_relevance_model(self_supervised=...)`: None (off), a views name, or a
    `SelfSupervised` (returned as is). Raises ValueError/TypeError for anything else, before any training.

    >>> as_self_supervised('dropout')
    SelfSupervised(views='dropout', weight=1.0)
    """
    if self_supervised is None or isinstance(self_supervised, SelfSupervised): return self_supervised
    if isinstance(self_supervised, str): return SelfSupervised(self_supervised)
    raise TypeError(f"self_supervised={self_supervised!r}: None, one of {', '.join(map(repr, VIEWS))}, "
                    "or a relcollab.training.self_supervised.SelfSupervised.")
