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

from .configs import lm_config
from .text import TextTokenizer, build_vocab

__all__ = ['FromScratchWarning', 'LanguageModel', 'language_model_stage', 'lm_dataloaders', 'load_pretrained_lm']

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


def _announce_from_scratch(n_texts: int, n_tokens: int):
    message = (f"relcollab: no pretrained language-model weights given, so the AWD-LSTM language model is trained "
               f"FROM SCRATCH on your {n_texts} texts ({n_tokens} tokens). Quality depends on how much text you have; "
               f"pass pretrained=(weights.pth, vocab.pkl) (e.g. fastai's WT103 files, downloaded elsewhere) to fine-tune.")
    warnings.warn(message, FromScratchWarning, stacklevel=3)  # shown on stderr, in notebooks and by pytest


def language_model_stage(texts, size='small', config=None, epochs=4, lr=3e-3, pretrained=None, bs=32, seq_len=72,
                         valid_pct=0.1, seed=0, drop_mult=1., encoder_name='lm_enc', path='.') -> LanguageModel:
    """Trains (or fine-tunes, with `pretrained=(weights.pth, vocab.pkl)`) an AWD-LSTM LM on `texts`, then saves
    its encoder as `path/models/{encoder_name}.pth` and the vocabulary beside it (`.vocab.json`).

    >>> lm = language_model_stage(docs + queries, size='small', epochs=4)  # doctest: +SKIP
    >>> learn = relevance_learner(dls, config=relevance_config('small')).load_encoder(lm.encoder_name)  # doctest: +SKIP
    """
    set_seed(seed, reproducible=True)
    dls = lm_dataloaders(texts, valid_pct=valid_pct, bs=bs, seq_len=seq_len, seed=seed, path=path)
    learn = language_model_learner(dls, AWD_LSTM, config=config or lm_config(size), drop_mult=drop_mult,
                                   pretrained=False, metrics=[accuracy, Perplexity()], path=path)
    if pretrained is None:
        _announce_from_scratch(len(texts), sum(len(x) for x in dls.train.items))
        learn.fit_one_cycle(epochs, lr)
    else:
        load_pretrained_lm(learn, *pretrained)
        learn.fit_one_cycle(1, lr * 10)  # ULMFiT: the new embeddings and decoder first
        learn.unfreeze()
        learn.fit_one_cycle(max(epochs - 1, 1), lr)
    learn.save_encoder(encoder_name)
    vocab_file = learn.path/learn.model_dir/f'{encoder_name}.vocab.json'
    vocab_file.write_text(json.dumps(list(dls.vocab)))
    return LanguageModel(learn, list(dls.vocab), encoder_name)
