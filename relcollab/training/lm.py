"""The language-model stage: train (from scratch) or fine-tune (local WT103-style weights) an AWD-LSTM LM
on all document and query text, then save its encoder for both relevance towers."""
import json
import pickle
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import fastai.callback.progress  # noqa: F401  (progress bars)
import fastai.callback.schedule  # noqa: F401  (fit_one_cycle)
from fastai.data.core import DataLoaders
from fastai.metrics import Perplexity, accuracy
from fastai.text.data import LMDataLoader
from fastai.text.learner import LMLearner, clean_raw_keys, language_model_learner, load_ignore_keys, match_embeds
from fastai.text.models.awdlstm import AWD_LSTM
from fastai.text.data import TensorText
from fastai.torch_core import set_seed

from ..core.model import lm_config
from ..core.text import TextTokenizer, build_vocab
from .word_vectors import word_vector_matrix

__all__ = ['FromScratchWarning', 'LanguageModel', 'language_model_stage', 'lm_dataloaders', 'load_pretrained_lm',
           'start_from_word_vectors']

LM_MAX_TOKENS = 4096  # per text in the language-model stage


class FromScratchWarning(UserWarning):
    "No pretrained weights: the language model learns English from the user's texts alone."


@dataclass
class LanguageModel:
    "What the LM stage hands to the relevance stage."
    learn: LMLearner
    vocab: list
    encoder_name: str

    @property
    def encoder_path(self) -> Path: return self.learn.path/self.learn.model_dir/f'{self.encoder_name}.pth'


def lm_dataloaders(texts, vocab=None, valid_pct=0.1, bs=32, seq_len=72, seed=0, min_freq=2, path='.') -> DataLoaders:
    """Language-model `DataLoaders` over `texts`, tokenized like the relevance data; `dls.vocab` is the vocabulary.

    >>> dls_lm = lm_dataloaders(['a wing in a slipstream', 'heat transfer in slabs'] * 50, bs=4, seq_len=8)
    >>> len(dls_lm.vocab) % 8
    0
    """
    texts = list(texts)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"The language model reads strings: texts at positions {bad[:5]} are "
                        f"{type(texts[bad[0]]).__name__} ({len(bad)} in all); fill or drop them.")
    if len(texts) < 2: raise ValueError(f"The language model needs at least 2 texts, got {len(texts)}.")
    tokens = TextTokenizer(LM_MAX_TOKENS)(texts)
    rng = np.random.default_rng(seed)
    is_valid = rng.random(len(tokens)) < valid_pct
    if is_valid.all() or not is_valid.any(): is_valid = np.arange(len(tokens)) == 0
    train_tokens = [t for t, v in zip(tokens, is_valid) if not v]
    if vocab is None: vocab = build_vocab(train_tokens, min_freq=min_freq)
    o2i = {tok: i for i, tok in enumerate(vocab)}
    ids = [TensorText(torch.tensor([o2i.get(t, 0) for t in toks])) for toks in tokens]
    train = [x for x, v in zip(ids, is_valid) if not v]
    valid = [x for x, v in zip(ids, is_valid) if v]
    bs = max(1, min(bs, sum(map(len, train)) // (seq_len + 1), sum(map(len, valid)) // 2))
    dls = DataLoaders(LMDataLoader(train, bs=bs, seq_len=seq_len, shuffle=True),
                      LMDataLoader(valid, bs=bs, seq_len=seq_len), path=path)
    dls.vocab = vocab
    return dls


def load_pretrained_lm(learn: LMLearner, weights_path, vocab_path) -> LMLearner:
    """Loads local WT103-style weights (`.pth`) and their vocabulary (`.pkl` list or `.json` list) into `learn`,
    matching embeddings to `learn`'s vocabulary, then freezes all but the last group. Never downloads."""
    weights_path, vocab_path = Path(weights_path), Path(vocab_path)
    for p in (weights_path, vocab_path):
        if not p.exists(): raise FileNotFoundError(f"Pretrained language-model file not found: {p}.")
    old_vocab = (json.loads(vocab_path.read_text()) if vocab_path.suffix == '.json'
                 else pickle.loads(vocab_path.read_bytes()))
    weights = torch.load(weights_path, map_location='cpu', weights_only=True)
    if 'model' in weights: weights = weights['model']
    weights = match_embeds(weights, old_vocab, learn.dls.vocab)
    load_ignore_keys(learn.model, clean_raw_keys(weights))
    learn.freeze()
    return learn


def _announce_from_scratch(n_texts: int, n_tokens: int, word_vectors: bool = False):
    start = " (its embedding starts from the word vectors given)" if word_vectors else ""
    message = (f"relcollab: no pretrained language-model weights given, so the AWD-LSTM language model is trained "
               f"FROM SCRATCH{start} on your {n_texts} texts ({n_tokens} tokens). Quality depends on how much text you have; "
               f"pass pretrained=(weights.pth, vocab.pkl) (e.g. fastai's WT103 files, downloaded elsewhere) to fine-tune.")
    warnings.warn(message, FromScratchWarning, stacklevel=3)  # shown on stderr, in notebooks and by pytest


def start_from_word_vectors(learn: LMLearner, word_vectors, cache_dir=None) -> int:
    """Overwrites the embedding rows of `learn`'s vocabulary words with `word_vectors` (a vector file, a mapping or
    a sentence-transformers model: see `relcollab.training.word_vectors`), fitted to its size and spread; the decoder shares
    them (tied weights). Returns how many words were found."""
    embedding = learn.model[0].encoder
    corpus = [np.asarray(ids) for ids in learn.dls.train.items]  # the LM's training texts, never its validation ones
    matrix, found = word_vector_matrix(word_vectors, learn.dls.vocab, embedding.embedding_dim,
                                       std=float(embedding.weight.detach().std()), cache_dir=cache_dir, corpus=corpus)
    with torch.no_grad():
        rows = torch.as_tensor(np.flatnonzero(found))
        embedding.weight[rows] = torch.as_tensor(matrix[found], dtype=embedding.weight.dtype)
    return int(found.sum())


def _fix_input_embedding(learn: LMLearner):
    """Keeps the input embedding (the word vectors) fixed and gives the decoder its own trainable copy: tied to a
    fixed embedding, the LM could not learn to predict words at all (perplexity 2342 instead of 324 after one epoch
    on Cranfield)."""
    encoder, decoder = learn.model[0].encoder, learn.model[1].decoder
    decoder.weight = torch.nn.Parameter(encoder.weight.detach().clone())
    encoder.weight.requires_grad_(False)


def language_model_stage(texts, size='small', config=None, epochs=4, lr=3e-3, pretrained=None, bs=32, seq_len=72,
                         valid_pct=0.1, seed=0, drop_mult=1., encoder_name='lm_enc', path='.', word_vectors=None,
                         cache_dir=None, train_word_vectors=False) -> LanguageModel:
    """Trains (or fine-tunes, with `pretrained=(weights.pth, vocab.pkl)`) an AWD-LSTM LM on `texts`, then saves
    its encoder as `path/models/{encoder_name}.pth` and the vocabulary beside it (`.vocab.json`).

    Without pretrained weights, `word_vectors` gives the embedding layer meaning to start from: `'corpus'` (PPMI +
    SVD word vectors of `texts` themselves), a GloVe/word2vec/fastText text file, a word -> vector mapping, or a
    sentence-transformers model whose encoding of each vocabulary word becomes its vector (e.g.
    `'all-MiniLM-L6-v2'`, relcollab[teacher]; cached in `cache_dir`, default `path/teacher_cache`), or a list of
    these side by side. See `relcollab.training.word_vectors`. They stay fixed while the LM trains (the
    rest of the LM learns to read them) unless `train_word_vectors`: a few epochs on a small corpus move them
    away from their meaning faster than they teach them the corpus's; the LM's decoder then learns its own
    output embedding, starting from them.

    >>> lm = language_model_stage(docs + queries, size='small', epochs=4)  # doctest: +SKIP
    >>> learn = relevance_learner(dls, config=relevance_config('small')).load_encoder(lm.encoder_name)  # doctest: +SKIP
    """
    set_seed(seed, reproducible=True)
    dls = lm_dataloaders(texts, valid_pct=valid_pct, bs=bs, seq_len=seq_len, seed=seed, path=path)
    learn = language_model_learner(dls, AWD_LSTM, config=config or lm_config(size), drop_mult=drop_mult,
                                   pretrained=False, metrics=[accuracy, Perplexity()], path=path)
    if pretrained is not None and word_vectors is not None:
        raise ValueError("pass either pretrained LM weights or word_vectors, not both: pretrained weights bring their own embeddings.")
    if word_vectors is not None:
        found = start_from_word_vectors(learn, word_vectors, Path(path)/'teacher_cache' if cache_dir is None else cache_dir)
        if not train_word_vectors: _fix_input_embedding(learn)
        print(f"relcollab: the language model's embedding starts from word vectors for {found} of {len(dls.vocab)} tokens", flush=True)
    if pretrained is None:
        _announce_from_scratch(len(texts), sum(len(x) for x in dls.train.items), word_vectors is not None)
        learn.fit_one_cycle(epochs, lr)
    else:
        load_pretrained_lm(learn, *pretrained)
        learn.fit_one_cycle(1, lr * 10)  # ULMFiT: the new embeddings and decoder first
        learn.unfreeze()
        learn.fit_one_cycle(max(epochs - 1, 1), lr)
    learn.model[0].encoder.weight.requires_grad_(True)  # the relevance stage may fine-tune it
    learn.save_encoder(encoder_name)
    vocab_file = learn.path/learn.model_dir/f'{encoder_name}.vocab.json'
    vocab_file.write_text(json.dumps(list(dls.vocab)))
    return LanguageModel(learn, list(dls.vocab), encoder_name)
