"""`relevance_learner`: a fastai `Learner` for the two-tower relevance model."""
import json
import math
import threading
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import fastai.callback.progress  # noqa: F401  (progress bars during fit)
import fastai.callback.schedule  # noqa: F401  (fit_one_cycle, lr_find)
from fastai.learner import Learner
from fastai.losses import MSELossFlat
from fastai.metrics import SpearmanCorrCoef, rmse
from fastai.text.models.awdlstm import AWD_LSTM
from fastcore.meta import delegates

from ..core.data import pairs_frame
from ..core.losses import InBatchLoss
from ..core.model import (_training_documents, document_idf, get_relevance_model, lexical_mode, relevance_config,  # noqa: F401
                          relevance_split, start_from_bm25, term_ids)
from ..core.validation import RelcollabError, check_columns
from .word_vectors import POOL_DIM, pool_vectors

__all__ = ['RelevanceLearner', 'relevance_learner', 'EncoderMismatchError']

_PREDICT_LOCK = threading.RLock()  # the AWD-LSTM keeps hidden state in the module between calls


class EncoderMismatchError(RelcollabError):  # a ValueError, as before
    "A saved language-model encoder does not fit this learner's vocabulary or sizes."


class RelevanceLearner(Learner):
    "A `Learner` whose items are (query, document) pairs; predictions come back in the user's score units."

    def predict(self, query, doc=None, rm_type_tfms=None, with_input=False):
        """Scores one pair: `learn.predict(query, doc)` or `learn.predict((query, doc))`.

        Returns fastai's tuple `(score, normalized_pred, normalized_pred)`, the score a float in original units.

        >>> learn.predict('heat transfer in slabs', doc_text)[0]  # doctest: +SKIP
        2.71
        """
        item = (query, doc) if doc is not None else query
        if not isinstance(item, (tuple, list)) or len(item) != 2 or not all(isinstance(t, str) for t in item):
            raise TypeError("predict takes two strings: learn.predict(query, doc) or learn.predict((query, doc)).")
        with _PREDICT_LOCK:
            res = super().predict(tuple(item), rm_type_tfms=rm_type_tfms, with_input=with_input)
        return (*res[:-3], float(np.asarray(res[-3], dtype=np.float64).reshape(-1)[0]), *res[-2:])

    def show_results(self, ds_idx=1, dl=None, max_n=9, shuffle=True, show=True, **kwargs):
        "Query | document | score | predicted table for a batch of `dl` (the validation set by default)."
        if dl is None: dl = self.dls[ds_idx].new(shuffle=shuffle)
        batch = dl.one_batch()
        with _PREDICT_LOCK:
            _, _, preds = self.get_preds(dl=[batch], with_decoded=True)
        return dl.show_results(batch, preds, max_n=max_n, show=show, **kwargs)

    def score_pairs(self, pairs, bs=None) -> np.ndarray:
        """Scores many pairs (a DataFrame with the query and doc columns, or (query, doc) tuples) in original units.

        >>> learn.score_pairs(pairs_df)  # doctest: +SKIP
        array([2.7, 0.3], dtype=float32)
        """
        df = pairs_frame(pairs, self.dls.query_col, self.dls.doc_col)
        check_columns(df, {'query_col': self.dls.query_col, 'doc_col': self.dls.doc_col}, source='pairs')
        if len(df) == 0: return np.zeros(0, dtype=np.float32)
        dl = self.dls.test_dl(df, bs=bs or self.dls.bs)
        with _PREDICT_LOCK:
            preds, _ = self.get_preds(dl=dl)
        return self.dls.score_scaler.decode(preds[:, 0]).numpy().astype(np.float32)

    def load_encoder(self, file, device=None):
        """Loads one saved language-model encoder (`learn_lm.save_encoder(file)`) into both towers, then freezes.

        >>> learn.load_encoder('lm_enc')  # doctest: +SKIP
        """
        path = self.path/self.model_dir/f'{file}.pth'
        if not path.exists(): raise FileNotFoundError(f"No encoder at {path}: save one with learn_lm.save_encoder({file!r}).")
        weights = torch.load(path, map_location=device or 'cpu', weights_only=True)
        self._check_encoder_vocab(path)
        for tower in {id(t): t for t in (self.model.query_tower, self.model.doc_tower)}.values():
            _load_matching(tower.awd_lstm, weights, path)
        self.freeze()
        return self

    def _check_encoder_vocab(self, path: Path):
        vocab_path = path.with_suffix('.vocab.json')
        if not vocab_path.exists(): return
        saved = json.loads(vocab_path.read_text())
        if list(saved) != list(self.dls.vocab):
            raise EncoderMismatchError(
                f"The encoder {path.name} was trained with another vocabulary ({len(saved)} tokens, {vocab_path.name}) "
                f"than these dataloaders ({len(self.dls.vocab)} tokens): build RelevanceDataLoaders with "
                f"vocab=<the language model's vocab> (lm.vocab).")


def _load_matching(module: torch.nn.Module, weights: dict, path: Path):
    "load_state_dict with an error that says which sizes differ and what to do."
    own = module.state_dict()
    problems = [f"{k}: file {tuple(weights[k].shape)} vs model {tuple(v.shape)}"
                for k, v in own.items() if k in weights and weights[k].shape != v.shape]
    missing = [k for k in own if k not in weights]
    if problems or missing:
        raise EncoderMismatchError(
            f"The encoder {path} does not fit this learner: " + '; '.join((problems + [f"missing {k}" for k in missing])[:6]) +
            ". Build the learner with the language model's size (config=relevance_config('small'|'base')) "
            "and the language model's vocabulary.")
    module.load_state_dict(weights)


def _word_pool_corpus(dls, documents) -> list:
    """Token ids of the collection's documents and the distinct training queries (pseudo-queries included: spans of the
    documents, so those words count again): what `'corpus'` word vectors for the pool learn from."""
    o2i = {word: i for i, word in enumerate(dls.vocab)}
    items = dls.train_ds.items
    queries = list({tuple(tokens): None for tokens in dls.tokenizer(pd.unique(items[dls.query_col]).tolist())})
    return [np.array([o2i.get(t, 0) for t in tokens], dtype=np.int64) for tokens in _training_documents(dls, documents) + queries]


def _pool_statistics(tower, docs: list, vocab, most: int = 2000, bs: int = 64) -> tuple:
    "Mean and standard deviation of each dimension of `tower`'s word pool (`mean_embedding`) over (up to `most`) documents."
    o2i = {word: i for i, word in enumerate(vocab)}
    ids = [torch.tensor([o2i.get(t, 0) for t in tokens], dtype=torch.long) for tokens in docs[:most]]
    rows = tower.mean_embedding_of(ids, bs=bs).cpu() if ids else torch.zeros(1, tower.pool_features)
    spread = rows.std(dim=0, unbiased=False) if len(rows) > 1 else torch.ones(rows.shape[1])
    return rows.mean(dim=0), spread + 1e-6


def _start_at_the_mean(model, dls):
    "Sets the head's bias so the untrained model predicts the training targets' mean (as a regression head should)."
    score_col = dls.score_col
    scores = dls.train_ds.items[score_col] if len(dls.train_ds) else []
    if len(scores) == 0: return
    mean = float(dls.score_scaler.encodes(scores.astype('float64')).mean())  # read once, not through the pipeline
    lo, hi = model.head.y_range
    fraction = min(max((mean - lo) / (hi - lo), 1e-3), 1 - 1e-3)
    with torch.no_grad(): model.head.bias.fill_(math.log(fraction / (1 - fraction)))


@delegates(Learner.__init__)
def relevance_learner(dls, arch=AWD_LSTM, config=None, drop_mult=1., shared=False, y_range=(0., 1.),
                      proj_sz=256, bptt=72, in_batch=True, pool_embeddings=False, lexical=None,
                      stemmer='english', documents=None, word_pool=None, word_pool_dim=POOL_DIM, cache_dir=None,
                      pool_skip=False, **kwargs) -> RelevanceLearner:
    """A `Learner` for `dls` from `RelevanceDataLoaders`: two AWD-LSTM towers, a dot product, MSE on [0, 1].

    `in_batch=True` trains on the whole B x B score matrix of each batch (`InBatchLoss`); `lexical` (default None or
    `'auto'`:
    `'bm25'` for two towers with a `word_pool`, `'learned'` without one, off for `shared=True`, whose one tower reads
    both sides alike) adds term weights over
    the vocabulary that are BM25 over the training documents, with tokens of one `stemmer` stem (PyStemmer
    language, None: no stemming) counting as one term (`TermWeights`): `'bm25'` keeps them BM25's (only their
    weight beside the dense cosine, the head's `lexical_scale`, trains), `'learned'` (or `True`) trains them too,
    which on Cranfield left the channel alone far below BM25 and the model below it (README, The lexical channel);
    `pool_embeddings=True` adds each text's mean input embedding to its pooled features; `'idf'` weighs each word
    by a learned weight that starts at its idf over the training documents (see `EmbeddingPool`): with an LM
    that started from word vectors (`language_model_stage(word_vectors=...)`) this is a sentence vector with
    meaning before any relevance training. `documents` (texts): the collection these idfs and BM25's average length
    are counted over, when `dls`'s training documents are not it (pseudo-queries pair with shortened copies of
    their documents, which would count a word of one document several times); `train_relevance_model` passes it.
    `word_pool` (a word-vector source as `relcollab.training.word_vectors.vocab_vectors` takes it: `'corpus'`, a
    vector file, a sentence-transformers model, a list) makes the pool read those vectors at their own size
    (`word_pool_dim` for `'corpus'`; `pool_vectors`), fixed, instead of the LM's narrower embedding: wider vectors
    rank better before any training (`bench/word_vector_pool.py`). Implies `pool_embeddings='idf'`; `proj_sz='pool'`
    gives the dense vectors the pool's size. `pool_skip=True` adds the pooled word vectors to the dense vectors
    (`SkipProjection`), so they start as the pool and training adds to it.

    >>> learn = relevance_learner(dls, AWD_LSTM, config=relevance_config('small'))  # doctest: +SKIP
    >>> learn.fit_one_cycle(1, 2e-2)  # doctest: +SKIP
    """
    if arch is not AWD_LSTM: raise ValueError("relevance_learner supports arch=AWD_LSTM only.")
    if config is None: config = relevance_config('base')
    if lexical is None or (isinstance(lexical, str) and lexical == 'auto'):
        lexical = False if shared else 'bm25' if word_pool is not None else 'learned'
    lexical_mode(lexical)  # a clear error for an unknown choice, before anything is built
    if proj_sz == 'pool' and word_pool is None: raise ValueError("proj_sz='pool' means the word pool's size: pass word_pool too.")
    if word_pool is not None:
        if pool_embeddings not in (False, 'idf'):
            raise ValueError(f"word_pool pools word vectors with idf weights: pass pool_embeddings='idf' (or leave it), not {pool_embeddings!r}.")
        pool_embeddings = 'idf'
        vectors, _ = pool_vectors(word_pool, dls.vocab, corpus=_word_pool_corpus(dls, documents), dim=word_pool_dim,
                                  cache_dir=cache_dir)
        if proj_sz == 'pool': proj_sz = vectors.shape[1]
    model = get_relevance_model(len(dls.vocab), config, drop_mult=drop_mult, shared=shared, proj_sz=proj_sz,
                                y_range=y_range, bptt=bptt, pool_embeddings=pool_embeddings, lexical=lexical,
                                word_pool=0 if word_pool is None else vectors.shape[1], pool_skip=pool_skip)
    model.in_batch = in_batch
    if lexical_mode(lexical): start_from_bm25(model, dls, stemmer, documents)
    if pool_embeddings == 'idf':
        idf = document_idf(dls, documents=documents)
        towers = {id(t): t for t in (model.query_tower, model.doc_tower)}.values()
        for tower in towers: tower.embedding_pool.init_idf(idf)
        if word_pool is not None:
            for tower in towers: tower.word_vectors.copy_(torch.as_tensor(vectors))
            start = model.head.n_in - vectors.shape[1]
            statistics = _pool_statistics(model.doc_tower, _training_documents(dls, documents), dls.vocab)
            model.head.start_from_statistics(start, model.head.n_in, *statistics)
    _start_at_the_mean(model, dls)
    if 'metrics' not in kwargs: kwargs['metrics'] = [rmse, SpearmanCorrCoef()]
    if 'loss_func' not in kwargs: kwargs['loss_func'] = InBatchLoss(y_range) if in_batch else MSELossFlat()
    return RelevanceLearner(dls, model, splitter=relevance_split, **kwargs)
