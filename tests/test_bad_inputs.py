"""Unusual and bad texts at training and scoring time: each is either handled (a finite score in range, the
documented truncation) or refused with an error that says what to do. Never a crash deep inside fastai or spaCy.

(Bad files, columns and scores are in test_validation.py; bad model files in test_pretrained.py and
test_cli.py; see the README's Reliability table.)
"""
import math
import time
import tracemalloc

import numpy as np
import pandas as pd
import pytest

from conftest import TINY_LM, WORDS, make_pairs, torch_threads, train_tiny
from relcollab.training.lm import language_model_stage
from relcollab.core.text import DEFAULT_MAX_TOKENS, TextTokenizer

ODD_TEXTS = {
    'control characters': '\x00\x01\x07\x1b[31mwing\x7f\x0c\x0b heat',
    'zero-width and bidi controls': 'wing\u200b\u200c\u200d\u2060heat \u202eflow\u202c \ufeff',
    'line and paragraph separators': 'wing\u2028heat\u2029flow\r\n\rslab',
    'emoji and flags': '🚀 wing 🔥 👨\u200d👩\u200d👧 🇫🇷 heat 🏳️\u200d🌈',
    'right-to-left scripts': 'مرحبا بالعالم שלום עולם wing',
    'combining marks': 'e\u0301\u0301\u0301 wi\u0308ng \u0363\u0364',
    'noncharacters and private use': '\uffff\ufffe\U0010ffff\ue000 wing',
    'CJK and other scripts': '熱伝達 слэб θερμότητα wing',
    'only punctuation': '?!…—«»',
    'empty': '',
    'whitespace only': ' \t\n\u00a0\u3000 ',
    'fastai special tokens typed by a user': 'xxbos xxpad XXPAD xxunk xxmaj xxfld wing',
}


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@pytest.mark.parametrize('kind', list(ODD_TEXTS))
def test_odd_texts_score_finite_and_in_range(trained, kind):
    text, lo, hi = ODD_TEXTS[kind], trained.dls.score_scaler.lo, trained.dls.score_scaler.hi
    with trained.no_bar():
        scores = trained.score_pairs([('wing heat', text), (text, 'wing heat flow'), (text, text)])
        predicted = trained.predict(text, text)[0]
    vectors = trained.encode([text, 'wing'], side='doc')
    assert np.isfinite(scores).all() and ((scores >= lo) & (scores <= hi)).all()
    assert predicted == pytest.approx(float(scores[2]), abs=1e-5)
    assert np.isfinite(vectors).all()


def test_empty_and_whitespace_only_texts_mean_no_content(trained):
    assert trained.dls.tokenizer.tokenize_one(ODD_TEXTS['whitespace only']) == ['xxbos']
    np.testing.assert_array_equal(trained.encode(['', ' ', '\t\n'], side='doc'), trained.encode([''] * 3, side='doc'))


def test_a_typed_xxpad_is_not_padding(trained):
    # A literal 'xxpad' used to become the padding id: at token 72 (where the second AWD-LSTM chunk starts)
    # it changed the vectors of other texts in its batch by up to 0.65.
    rng = np.random.default_rng(0)
    words = lambda n: list(rng.choice(WORDS, n))  # noqa: E731
    texts = [' '.join(words(71) + ['xxpad'] + words(30)), ' '.join(words(90)), ' '.join(words(100)), 'jet']
    assert trained.dls.tokenizer.tokenize_one(texts[0])[72] == 'xxunk'
    alone = np.stack([trained.encode(text, side='doc') for text in texts])
    np.testing.assert_allclose(trained.encode(texts, side='doc'), alone, atol=1e-5, rtol=0)


def _peak_bytes(function):
    tracemalloc.start()
    try:
        function()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_a_100000_token_document_is_cut_to_max_tokens_in_bounded_time_and_memory(trained):
    rng = np.random.default_rng(0)
    words = list(rng.choice(WORDS, 1_000_000))
    huge, ten_times = ' '.join(words[:100_000]), ' '.join(words)
    tokenizer = trained.dls.tokenizer
    assert tokenizer.max_tokens == DEFAULT_MAX_TOKENS == 512
    assert len(tokenizer.tokenize_one(huge)) == 512 and len(TextTokenizer(4096).tokenize_one(huge)) == 4096
    # memory and time depend on max_tokens, not on the document: 10x longer costs the same
    assert _peak_bytes(lambda: tokenizer.tokenize_one(ten_times)) < 2 * _peak_bytes(lambda: tokenizer.tokenize_one(huge))
    assert _peak_bytes(lambda: tokenizer.tokenize_one(huge)) < 20e6
    start = time.perf_counter()
    with trained.no_bar():
        scores = trained.score_pairs([('wing heat', huge), ('wing heat', ' '.join(words[:600]))])
    assert time.perf_counter() - start < 10
    assert scores[0] == scores[1]  # only the first 512 tokens (xxbos + 511 words) count
    assert trained.dls.test_dl([('wing', huge)]).one_batch()[1].shape == (1, 512)


@pytest.mark.parametrize('bad', [None, math.nan, 3, b'wing', ['wing']], ids=['None', 'NaN', 'int', 'bytes', 'list'])
def test_a_text_that_is_not_a_string_is_refused_clearly(trained, bad):
    with pytest.raises(TypeError, match=r'text 1 is \w+ .*not a string: fill or drop missing texts'):
        trained.score_pairs([('wing', 'heat'), (bad, 'flow')])
    with pytest.raises(TypeError, match='two strings'):
        trained.predict('wing', bad)
    with pytest.raises(TypeError, match=r'texts\[1\] is \w+ .*not a string'):
        trained.encode(['wing', bad])


def test_a_text_with_an_unpaired_surrogate_is_refused_clearly(trained):
    bad = 'caf\udce9 wing'  # what errors='surrogateescape' makes of a latin-1 byte
    with pytest.raises(ValueError, match=r"text 0 has an unpaired surrogate '\\udce9' at character 3.*not valid Unicode"):
        trained.score_pairs([(bad, 'heat')])
    with pytest.raises(ValueError, match='unpaired surrogate'):
        trained.predict('wing', bad)
    with pytest.raises(ValueError, match='unpaired surrogate'):
        trained.encode(bad, side='doc')


def test_training_on_odd_texts_gives_finite_weights_and_scores(tmp_path):
    odd = list(ODD_TEXTS.values()) + [' '.join(WORDS * 250)]  # and a 5,000-word document
    rows = pd.DataFrame({'query': odd, 'doc': odd[::-1], 'score': np.arange(len(odd)) % 4})
    df = pd.concat([make_pairs(120, seed=3), rows], ignore_index=True)
    learn = train_tiny(df, tmp_path)
    assert all(np.isfinite(p.detach().numpy()).all() for p in learn.model.parameters())
    with learn.no_bar():
        assert np.isfinite(learn.score_pairs(rows)).all()


def test_the_language_model_reads_odd_texts(tmp_path):
    texts = list(ODD_TEXTS.values()) * 4 + make_pairs(40)['doc'].tolist()
    with pytest.warns(UserWarning, match='FROM SCRATCH'):
        lm = language_model_stage(texts, config=TINY_LM, epochs=1, bs=4, path=tmp_path)
    assert lm.encoder_path.exists() and np.isfinite(lm.learn.recorder.values[-1]).all()  # losses, perplexity


def test_scoring_a_frame_without_the_query_column_names_it(trained):
    from relcollab.core.validation import RelevanceDataError
    with pytest.raises(RelevanceDataError, match="'query'"):
        trained.score_pairs(pd.DataFrame({'question': ['wing'], 'doc': ['wing heat']}))
