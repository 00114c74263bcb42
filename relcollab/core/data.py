"""`RelevanceDataLoaders`: (query, document, score) rows -> batches of two padded token tensors and a target.

Also here: score normalization (`ScaleScore`, `score_range_of`), user units <-> the [0, 1] scale the model is
trained on."""
import math
from functools import partial

import numpy as np
import pandas as pd
import torch
from fastai.data.block import DataBlock, TransformBlock
from fastai.data.core import DataLoaders
from fastai.data.transforms import ColReader, ColSplitter, IndexSplitter, RandomSplitter, RegressionSetup, Transform
from fastai.imports import dispatch
from fastai.text.data import Numericalize, SortedDL, pad_input
from fastai.torch_core import display_df
from fastcore.basics import fastuple, tuplify

from .text import DEFAULT_MAX_TOKENS, TextTokenizer, build_vocab
from .validation import check_triples

__all__ = ['ScaleScore', 'score_range_of', 'ReadTokens', 'PadPairs', 'RelevancePair', 'RelevanceDL',
           'RelevanceDataLoaders', 'pairs_frame']

TOKENS_SUFFIX = '__tokens'  # cached tokens live in a column next to the raw text, in our own copy


def score_range_of(scores, score_range=None) -> tuple:
    """The rule: `score_range` (lo, hi) when given, else the min and max of the training scores.

    >>> score_range_of([0, 1, 4])
    (0.0, 4.0)
    """
    if score_range is None: score_range = (min(scores), max(scores))
    lo, hi = (float(v) for v in score_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"score_range must be two finite numbers with low < high, got {score_range}.")
    return lo, hi


class ScaleScore(Transform):
    """Maps a score in user units to [0, 1] (`encodes`) and back (`decodes`).

    >>> ScaleScore(0, 4).decode(ScaleScore(0, 4)(3.0))
    3.0
    """
    order = 10

    def __init__(self, lo: float, hi: float):
        super().__init__()
        self.lo, self.hi = float(lo), float(hi)

    def encodes(self, score): return (score - self.lo) / (self.hi - self.lo)
    def decodes(self, score): return score * (self.hi - self.lo) + self.lo


class ReadTokens(Transform):
    "Reads the text in column `col` of a row as tokens (cached tokens when the row has them)."
    def __init__(self, col: str, tokenizer: TextTokenizer):
        super().__init__()
        self.col, self.tokenizer = col, tokenizer

    def encodes(self, row):
        cached = row.get(self.col + TOKENS_SUFFIX) if hasattr(row, 'get') else None
        return cached if cached is not None else self.tokenizer.tokenize_one(row[self.col])


class PadPairs(Transform):
    """Pads the query tokens and the document tokens of a batch separately, at the end.

    Kept for learners exported before: new loaders pad with fastai's `pad_input(pad_fields=[0, 1])`, which pads
    the same way (`pad_first=False`: at the end of each row, where the towers' masks expect it)."""
    def __init__(self, pad_idx: int = 1, n_texts: int = 2):
        super().__init__()
        self.pad_idx, self.n_texts = pad_idx, n_texts

    def encodes(self, samples: list):
        widths = [max(len(sample[i]) for sample in samples) for i in range(self.n_texts)]
        return [tuple(self._pad(sample[i], widths[i]) for i in range(self.n_texts)) + tuple(sample[self.n_texts:])
                for sample in samples]

    def _pad(self, tokens, width):
        return torch.cat([tokens, tokens.new_full((width - len(tokens),), self.pad_idx)])


def doc_length(item) -> int:
    "Sort key for batches of similar length: the document's token count."
    return len(item[1])


def _joined(tokens, pad_idx_token='xxpad', limit=None) -> str:
    words = [t for t in tokens if t != pad_idx_token]
    return ' '.join(words if limit is None else words[:limit])


def _as_number(value):
    return float(value) if np.ndim(value) == 0 else float(np.asarray(value).reshape(-1)[0])


class RelevancePair(fastuple):
    "The inputs of a batch, or of one row: (query tokens, document tokens); shown as a table's query and document."
    def show(self, ctx=None, max_doc_tokens=40, **kwargs) -> dict:
        "Writes the texts, without padding, into the row `ctx` (a new dict when None) and returns it."
        ctx = {} if ctx is None else ctx
        ctx['query'], ctx['document'] = _joined(self[0]), _joined(self[1], limit=max_doc_tokens)
        return ctx


def _table(rows: list, columns: list, display: bool):
    table = pd.DataFrame(rows, columns=columns[:len(rows[0])] if rows else columns)
    if not display: return table
    display_df(table)


# `dispatch` (plum's, as fastai's) adds these methods to fastai's own `show_batch` / `show_results` functions.
@dispatch
def show_batch(x: RelevancePair, y, samples, ctxs=None, max_n=9, display=True, **kwargs):
    """A query | document | score table of the decoded `samples` (scores in the user's units), displayed;
    `display=False` returns it instead. `ctxs` is ignored: the rows are a table's."""
    rows = [RelevancePair(s[:2]).show(**kwargs) | ({'score': _as_number(s[2])} if len(s) > 2 else {})
            for s in samples[:max_n]]
    return _table(rows, ['query', 'document', 'score'], display)


@dispatch
def show_results(x: RelevancePair, y, samples, outs, ctxs=None, max_n=9, display=True, **kwargs):
    "`show_batch`'s table with a `predicted` column."
    rows = [RelevancePair(s[:2]).show(**kwargs) | {'score': _as_number(s[2]), 'predicted': _as_number(o[0])}
            for s, o in zip(samples[:max_n], outs)]
    return _table(rows, ['query', 'document', 'score', 'predicted'], display)


class RelevanceDL(SortedDL):
    """A `SortedDL` that batches pairs by document length; its inputs show as a `RelevancePair` (fastai's
    `show_batch` / `show_results` dispatch on that type). Unlike fastai's loaders, `show_batch(show=False)` and
    `show_results(..., show=False)` return the table (a DataFrame) rather than the decoded batch."""
    def _pre_show_batch(self, b, max_n=9):
        x, y, its = super()._pre_show_batch(b, max_n=max_n)
        return RelevancePair(x), y, its

    def show_batch(self, b=None, max_n=9, ctxs=None, show=True, max_doc_tokens=40, **kwargs):
        if b is None: b = self.one_batch()
        return show_batch(*self._pre_show_batch(b, max_n=max_n), ctxs=ctxs, max_n=max_n, display=show,
                          max_doc_tokens=max_doc_tokens)

    def show_results(self, b, out, max_n=9, ctxs=None, show=True, max_doc_tokens=40, **kwargs):
        x, y, its = self._pre_show_batch(b, max_n=max_n)
        outs = self._pre_show_batch((*b[:self.n_inp], *tuplify(out)), max_n=max_n)[2].itemgot(slice(self.n_inp, None))
        return show_results(x, y, its, outs, ctxs=ctxs, max_n=max_n, display=show, max_doc_tokens=max_doc_tokens)


def pairs_frame(items, query_col='query', doc_col='doc') -> pd.DataFrame:
    """Turns a DataFrame, one (query, doc) tuple or a list of them into a DataFrame of pairs.

    >>> pairs_frame([('wings', 'a wing study')]).columns.tolist()
    ['query', 'doc']
    """
    if isinstance(items, pd.DataFrame): return items
    if isinstance(items, tuple) and len(items) == 2 and all(isinstance(t, str) for t in items): items = [items]
    return pd.DataFrame(list(items), columns=[query_col, doc_col])


class RelevanceDataLoaders(DataLoaders):
    "Basic wrapper around `DataLoaders` for (query, document, score) data."
    @property
    def readers(self):
        "The `ReadTokens` of the query and the document field."
        return [tl.tfms.fs[0] for tl in self.valid_ds.tls[:2]]

    @property
    def query_col(self): return self.readers[0].col

    @property
    def doc_col(self): return self.readers[1].col

    @property
    def score_col(self):
        reader = self.valid_ds.tls[2].tfms.fs[0]
        return reader.cols[0] if isinstance(reader, ColReader) else reader.col  # ReadScore in older exports

    @property
    def tokenizer(self): return self.readers[0].tokenizer

    @property
    def vocab(self): return self.valid_ds.tls[0].tfms.fs[1].vocab

    @property
    def numericalizer(self) -> Numericalize:
        """The query field's fastai `Numericalize` (token -> id, its table built once; the document field's has the same vocab),
        or a new one over `vocab` if the pipeline has none.

        >>> learn.dls.numericalizer(['xxbos', 'wing'])  # doctest: +SKIP
        TensorText([ 2, 23])
        """
        found = [tfm for tfm in self.valid_ds.tls[0].tfms.fs if isinstance(tfm, Numericalize)]
        return found[0] if found else Numericalize(vocab=self.vocab)

    @property
    def score_scaler(self) -> ScaleScore:
        return next(f for f in self.valid_ds.tls[2].tfms.fs if isinstance(f, ScaleScore))

    def test_dl(self, test_items, rm_type_tfms=None, with_labels=False, **kwargs):
        "A test `DataLoader` over a DataFrame of pairs, or (query, doc) tuples; texts are tokenized once each."
        df = with_cached_tokens(pairs_frame(test_items, self.query_col, self.doc_col),
                                [self.query_col, self.doc_col], self.tokenizer)
        if with_labels and self.score_col in df.columns: df[self.score_col] = df[self.score_col].map(float)
        return super().test_dl(df, rm_type_tfms=rm_type_tfms, with_labels=with_labels, **kwargs)

    @classmethod
    def from_df(cls, df, query_col='query', doc_col='doc', score_col='score', vocab=None, valid_pct=0.2,
                valid_col=None, bs=64, seed=None, score_range=None, max_tokens=DEFAULT_MAX_TOKENS, path='.',
                check=True, **kwargs):
        """Builds `DataLoaders` from a DataFrame of (query, document, score) rows.

        Both texts are tokenized with fastai's rules and numericalized with one vocabulary (`vocab`,
        normally the language model's `dls_lm.vocab`; built from these texts when None). Scores are
        mapped to [0, 1] by `score_range` (lo, hi) or by the min and max of `df`'s scores. `df` is checked
        with `check_triples` first; `check=False` skips that when the caller has checked it already.

        >>> dls = RelevanceDataLoaders.from_df(df, 'query', 'doc', 'score', vocab=dls_lm.vocab)  # doctest: +SKIP
        """
        if check: check_triples(df, query_col, doc_col, score_col, score_range=score_range)
        tokenizer = TextTokenizer(max_tokens)
        prepared = with_cached_tokens(df, [query_col, doc_col], tokenizer)
        prepared[score_col] = pd.to_numeric(prepared[score_col]).astype('float32')
        if vocab is None:
            vocab = build_vocab(prepared[query_col + TOKENS_SUFFIX].tolist() + prepared[doc_col + TOKENS_SUFFIX].tolist())
        score_range = score_range_of(prepared[score_col], score_range)
        splitter = ColSplitter(valid_col) if valid_col is not None else RandomSplitter(valid_pct, seed=seed)
        dblock = relevance_block(query_col, doc_col, score_col, vocab, tokenizer, score_range, splitter)
        return cls._from_block(dblock, prepared, bs, path, **kwargs)

    @classmethod
    def for_inference(cls, vocab, score_range, query_col='query', doc_col='doc', score_col='score',
                      max_tokens=DEFAULT_MAX_TOKENS, bs=64, path='.', **kwargs):
        """Empty `RelevanceDataLoaders` for a trained model: no rows, only what `test_dl`, `predict`, `score_pairs`
        and `encode` need: the tokenizer, `vocab`, the scaler of the model's `score_range` (lo, hi), the columns.

        fastai's loaders learn the types of a batch (to decode it) from one item, so a probe row (empty texts at
        the lowest score) passes once through each loader, and `new_empty` then drops it.

        >>> dls = RelevanceDataLoaders.for_inference(learn.dls.vocab, (0, 3))  # doctest: +SKIP
        >>> dls.test_dl([('wings', 'a wing study')]).n  # doctest: +SKIP
        1
        """
        lo, hi = score_range_of((), score_range)
        probe = pd.DataFrame({query_col: ['', ''], doc_col: ['', ''], score_col: [lo, lo]})  # train, valid
        dblock = relevance_block(query_col, doc_col, score_col, vocab, TextTokenizer(max_tokens), (lo, hi),
                                 IndexSplitter([1]))
        return cls._from_block(dblock, probe, bs, path, **kwargs).new_empty()

    @classmethod
    def _from_block(cls, dblock, items, bs, path, **kwargs):
        "`dblock.dataloaders(items)` as `RelevanceDataLoaders`."
        kwargs.setdefault('num_workers', 0)  # batches are cheap: worker processes only steal the model's cores
        dls = dblock.dataloaders(items, path=path, bs=bs, **kwargs)
        return cls(*dls.loaders, path=dls.path, device=dls.device)


def with_cached_tokens(df: pd.DataFrame, cols, tokenizer: TextTokenizer) -> pd.DataFrame:
    "A copy of `df` with each text column's tokens cached beside it (the caller's frame is not touched)."
    out = df.copy()
    for col in cols: out[col + TOKENS_SUFFIX] = tokenizer(out[col].tolist())
    return out


def relevance_block(query_col, doc_col, score_col, vocab, tokenizer, score_range, splitter):
    "The `DataBlock`: two text fields sharing `vocab`, per-field padding, a [0, 1] regression target."
    pad_idx = vocab.index('xxpad') if 'xxpad' in vocab else 1
    pad = partial(pad_input, pad_idx=pad_idx, pad_fields=[0, 1], pad_first=False)
    text_block = TransformBlock(type_tfms=Numericalize(vocab=vocab), dl_type=RelevanceDL,
                                dls_kwargs={'before_batch': pad, 'sort_func': doc_length})
    score_block = TransformBlock(type_tfms=[RegressionSetup(c=1), ScaleScore(*score_range)])
    return DataBlock(blocks=(text_block, TransformBlock(type_tfms=Numericalize(vocab=vocab)), score_block),
                     n_inp=2, splitter=splitter,
                     get_x=[ReadTokens(query_col, tokenizer), ReadTokens(doc_col, tokenizer)],
                     get_y=ColReader(score_col))


class ReadScore(Transform):
    "Reads the score column of a row as a float (learners exported before; new loaders use `ColReader`)."
    def __init__(self, col): super().__init__(); self.col = col
    def encodes(self, row): return float(row[self.col])
