"""Shared fixtures: tiny synthetic (query, doc, score) data and tiny AWD-LSTM learners trained once per session.

Everything is kept tiny (emb_sz=16, n_hid=32, a few hundred rows, one epoch) so the whole suite runs in
seconds on a couple of shared CPU cores.
"""
import types
from contextlib import contextmanager

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.torch_core import set_seed

from relcollab.core.model import lm_config, relevance_config
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import relevance_learner
from relcollab.training.lm import FromScratchWarning, language_model_stage

# ~20 words shared by queries and documents, plus two words that only ever occur in documents.
WORDS = ("wing heat flow slab shock wave plate drag lift boundary layer jet nozzle fluid stress beam shell "
         "panel mach vortex").split()
DOC_ONLY_WORDS = ["gust", "rivet"]

TINY = dict(relevance_config('small'), emb_sz=16, n_hid=32, n_layers=2)
TINY_LM = dict(lm_config('small'), emb_sz=16, n_hid=32, n_layers=2)
PROJ_SZ = 8


@contextmanager
def torch_threads(n: int = 1):
    """Run torch on `n` threads, then restore.

    On a small shared machine, torch's default thread pool oversubscribes the cores and makes these tiny
    LSTMs ~30x slower (a one-epoch fit goes from <1 s to >20 s), so the fixtures and tests use one thread.
    """
    old = torch.get_num_threads()
    torch.set_num_threads(n)
    try: yield
    finally: torch.set_num_threads(old)


def make_pairs(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Random queries of 1-3 distinct words and documents of 3-60 words; score = number of query words in the doc."""
    rng = np.random.default_rng(seed)
    rows = []
    for _ in range(n):
        query = list(rng.choice(WORDS, rng.integers(1, 4), replace=False))
        doc = list(rng.choice(WORDS + DOC_ONLY_WORDS, rng.integers(3, 61)))
        rows.append((' '.join(query), ' '.join(doc), float(sum(w in doc for w in query))))
    return pd.DataFrame(rows, columns=['query', 'doc', 'score'])


def tiny_learner(dls, seed: int = 0, **kwargs):
    "An untrained tiny relevance learner on `dls` (deterministic initialisation)."
    set_seed(seed, reproducible=True)
    return relevance_learner(dls, config=kwargs.pop('config', TINY), proj_sz=PROJ_SZ, **kwargs)


def train_tiny(df: pd.DataFrame, path, seed: int = 0, epochs: int = 1, lr: float = 1e-2):
    "Builds dataloaders and a tiny learner from `df` with `seed`, fits one cycle without a progress bar."
    with torch_threads(1):
        set_seed(seed, reproducible=True)
        dls = RelevanceDataLoaders.from_df(df, 'query', 'doc', 'score', bs=16, seed=seed, path=path)
        learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, path=path)
        with learn.no_bar(): learn.fit_one_cycle(epochs, lr)
    return learn


@pytest.fixture(scope='session')
def pairs_df() -> pd.DataFrame:
    "The session's training pairs. Tests must not modify it (take a copy)."
    return make_pairs(300, seed=0)


@pytest.fixture(scope='session')
def trained(pairs_df, tmp_path_factory):
    "One tiny learner trained once for the whole session. Tests must not change its weights or freeze state."
    path = tmp_path_factory.mktemp('relevance')
    return train_tiny(pairs_df, path)


@pytest.fixture(scope='session')
def lm_stage(pairs_df, tmp_path_factory):
    """A tiny language model trained from scratch (one epoch) on some of the session's texts; its encoder is
    saved under `path/models`. Returns a namespace with `lm`, `path` and the FROM SCRATCH warnings seen."""
    path = tmp_path_factory.mktemp('lm')
    texts = pairs_df['doc'].tolist()[:100] + pairs_df['query'].tolist()[:100]
    with torch_threads(1), pytest.warns(FromScratchWarning, match='FROM SCRATCH') as record:
        lm = language_model_stage(texts, config=TINY_LM, epochs=1, bs=4, path=path)
    scratch = [w for w in record if issubclass(w.category, FromScratchWarning)]
    return types.SimpleNamespace(lm=lm, path=path, warnings=scratch)
