"""Property-based tests (hypothesis) over arbitrary unicode texts: every score is finite and inside the score
range, a text's vector does not depend on its batch or its place in it, and the same pair always scores the same.

Texts mix arbitrary unicode (control and format characters, emoji, right-to-left scripts, combining marks),
fastai's special tokens typed by a user (`xxpad`, `xxbos`, ...) and the training words, up to ~200 tokens so
they cross the AWD-LSTM's 72-token chunks.
"""
import numpy as np
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import DOC_ONLY_WORDS, WORDS, torch_threads

SPECIAL = ['xxpad', 'XXPAD', 'Xxpad', 'xxbos', 'xxunk', 'xxmaj', 'xxup', 'xxrep', 'xxwrep', 'xxfld', 'xxeos']
ODD = ['🚀', '👨\u200d👩\u200d👧', '🇫🇷', 'مرحبا', 'שלום', '\u202e', '\u200b', '\x00', '\x1b[31m', '\r\n', '\t', 'é', 'e\u0301']
SETTINGS = settings(max_examples=40, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])

NO_SHRINK = [Phase.explicit, Phase.reuse, Phase.generate]

unicode_text = st.text(st.characters(codec='utf-8'), max_size=80)  # any code point UTF-8 can hold
control_heavy = st.text(st.characters(categories=['Cc', 'Cf', 'Zs', 'Zl', 'Zp', 'Mn', 'So', 'Lo']), max_size=40)
word_text = st.lists(st.sampled_from(WORDS + DOC_ONLY_WORDS + SPECIAL + ODD), max_size=200).map(' '.join)
words = st.sampled_from(WORDS)
# special tokens around token 72, where the AWD-LSTM's second chunk starts (token 0 is xxbos)
chunk_edge = st.builds(lambda head, special, tail: ' '.join(head + special + tail),
                       st.lists(words, min_size=70, max_size=72), st.lists(st.sampled_from(SPECIAL), min_size=1, max_size=3),
                       st.lists(words, max_size=30))
texts = st.one_of(unicode_text, control_heavy, word_text, chunk_edge)


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@SETTINGS
@given(query=texts, doc=texts)
def test_every_score_is_finite_and_inside_the_score_range(trained, query, doc):
    lo, hi = trained.dls.score_scaler.lo, trained.dls.score_scaler.hi
    with trained.no_bar():
        scores = trained.score_pairs([(query, doc), (doc, query)])
        predicted = trained.predict(query, doc)[0]
    assert np.isfinite(scores).all() and ((scores >= lo) & (scores <= hi)).all()
    assert np.isfinite(predicted) and lo <= predicted <= hi


@settings(SETTINGS, max_examples=100, phases=NO_SHRINK)  # shrinking these batches takes hypothesis' 5-minute limit
@given(batch=st.lists(texts, min_size=2, max_size=7), side=st.sampled_from(['query', 'doc']))
def test_a_texts_vector_does_not_depend_on_its_batch_or_position(trained, batch, side):
    alone = np.stack([trained.encode(text, side=side) for text in batch])
    dense = trained.model.head.query_proj[-1].out_features  # a unit projection, then the lexical term weights
    assert np.isfinite(alone).all() and np.allclose(np.linalg.norm(alone[:, :dense], axis=1), 1, atol=1e-4)
    np.testing.assert_allclose(trained.encode(batch, side=side), alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(trained.encode(batch, side=side, bs=2), alone, atol=1e-5, rtol=0)
    np.testing.assert_allclose(trained.encode(batch[::-1], side=side)[::-1], alone, atol=1e-5, rtol=0)


@SETTINGS
@given(query=texts, doc=texts, between=st.lists(st.tuples(texts, texts), max_size=4))
def test_the_same_pair_scores_the_same_every_time(trained, query, doc, between):
    with trained.no_bar():
        first = trained.score_pairs([(query, doc)])[0]
        if between: trained.score_pairs(between)
        trained.encode([q for q, _ in between] + [query], side='query')
        assert trained.score_pairs([(query, doc)])[0] == first
        assert trained.predict(query, doc)[0] == pytest.approx(float(first), abs=1e-5)
