"""`bf16=True` on every CPU: bfloat16 where the CPU runs it (close to float32, and really bfloat16), float32
with one clear warning where it cannot (AVX2-only CPUs), never a traceback."""
import warnings

import numpy as np
import pytest
import torch

import relcollab.core.bf16 as bf16_module
import relcollab.retrieval.encode  # noqa: F401 (patches learn.encode)
from conftest import make_pairs, torch_threads
from relcollab.core.bf16 import Bf16FallbackWarning, bf16_support
from relcollab.core.model import relevance_config
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import relevance_learner

# What the README promises (Speed) for the `small` model on a 0..4 scale.
MAX_VECTOR_DEVIATION, MAX_SCORE_DEVIATION = 2e-3, 6e-3
ONEDNN_ERROR = 'could not create a primitive descriptor for the LSTM forward propagation primitive'


@pytest.fixture(scope='module')
def small_learner(tmp_path_factory):
    "An untrained learner of the README's `small` size (dense towers, 256-d projection), scores in 0..4."
    from fastai.torch_core import set_seed
    pairs = make_pairs(120, seed=4)
    dls = RelevanceDataLoaders.from_df(pairs, 'query', 'doc', 'score', bs=16, seed=0, score_range=(0, 4),
                                       path=tmp_path_factory.mktemp('bf16'))
    set_seed(0, reproducible=True)
    return relevance_learner(dls, config=relevance_config('small'), lexical=False)


@pytest.fixture
def fresh_probe(monkeypatch):
    "The probe and the once-per-process warning as on a fresh start, restored afterwards."
    bf16_support.cache_clear()
    monkeypatch.setattr(bf16_module, '_warned', set())
    yield
    bf16_support.cache_clear()


def _encodings(learn, bf16):
    pairs = make_pairs(40, seed=9)
    with torch_threads(1):
        return (learn.encode(pairs['query'].tolist(), bf16=bf16, progress=False),
                learn.encode(pairs['doc'].tolist(), side='doc', bf16=bf16, progress=False))


def test_bf16_runs_where_the_cpu_supports_it_and_stays_close_to_float32(small_learner, fresh_probe):
    supported, reason = bf16_support('cpu')
    queries, docs = _encodings(small_learner, bf16=False)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter('always')
        queries_bf16, docs_bf16 = _encodings(small_learner, bf16=True)
    fallbacks = [w for w in caught if issubclass(w.category, Bf16FallbackWarning)]
    assert queries_bf16.dtype == np.float32
    if not supported:  # e.g. an AVX2-only CPU: float32, said once
        assert len(fallbacks) == 1 and reason in str(fallbacks[0].message)
        np.testing.assert_array_equal(docs_bf16, docs)
        return
    assert not fallbacks
    deviation = max(np.abs(docs_bf16 - docs).max(), np.abs(queries_bf16 - queries).max())
    assert 0 < deviation <= MAX_VECTOR_DEVIATION  # 0 would mean bf16=True silently did nothing
    scores = np.stack([small_learner.score_vectors(q, docs) for q in queries])
    scores_bf16 = np.stack([small_learner.score_vectors(q, docs_bf16) for q in queries_bf16])
    assert np.abs(scores_bf16 - scores).max() <= MAX_SCORE_DEVIATION


def test_a_cpu_without_bf16_lstm_falls_back_to_float32_with_one_warning(small_learner, fresh_probe, monkeypatch):
    "Forces the AVX2-only path on any CPU: torch.lstm fails under bfloat16 autocast as oneDNN does there."
    real_lstm = torch.lstm
    def lstm_without_bf16(*args):
        if torch.is_autocast_enabled('cpu'): raise RuntimeError(ONEDNN_ERROR)
        return real_lstm(*args)
    monkeypatch.setattr(torch, 'lstm', lstm_without_bf16)
    assert bf16_support('cpu') == (False, ONEDNN_ERROR)
    queries, docs = _encodings(small_learner, bf16=False)
    with pytest.warns(Bf16FallbackWarning, match='float32 instead') as caught:
        queries_bf16, docs_bf16 = _encodings(small_learner, bf16=True)
    assert len([w for w in caught if issubclass(w.category, Bf16FallbackWarning)]) == 1  # once, not per call
    assert ONEDNN_ERROR in str(caught[0].message)
    np.testing.assert_array_equal(queries_bf16, queries)
    np.testing.assert_array_equal(docs_bf16, docs)
