"""`TextTokenizer` caches spaCy's tokens span by span: the tokens must be exactly those of fastai's own
pipeline (its rules, then spaCy on the whole text), on the real collection and on generated texts."""
import pickle

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from relcollab.datasets.cranfield import load_cranfield
from fastai.text.core import PAD, UNK

from relcollab.core.text import TextTokenizer
from test_cranfield import CRANFIELD_DIR, needs_cranfield


def spacy_reference(tokenizer: TextTokenizer, text: str) -> list:
    "fastai's rules, then spaCy over the whole text, uncached: what the tokens must be."
    text = text[:tokenizer.max_tokens * 40]
    for rule in tokenizer.tokenizer.rules: text = rule(text)
    tokens = [token.text for token in tokenizer.tokenizer.tok.pipe.__self__.tokenizer(text)]
    return [UNK if token == PAD else token for token in tokens][:tokenizer.max_tokens]


@pytest.fixture(scope='module')
def tokenizer() -> TextTokenizer:
    return TextTokenizer(max_tokens=4096)


@needs_cranfield
def test_cranfield_tokens_equal_spacy_on_whole_texts(tokenizer):
    cran = load_cranfield(CRANFIELD_DIR)
    texts = cran.docs.text.tolist() + cran.queries.text.tolist()
    got = tokenizer(texts)
    assert len(tokenizer._spans) > 1000  # the cache is in use
    mismatches = [i for i, (text, tokens) in enumerate(zip(texts, got)) if tokens != spacy_reference(tokenizer, text)]
    assert mismatches == []


# spaCy's special cases (English exceptions with affixes, emoticons, abbreviations), fastai's special tokens,
# punctuation and every kind of whitespace Python's str.isspace knows, next to each other in any order
PIECES = ["don't", "Don't", "can't", "a.m.", "p.m", "e.g.", "(e.g.)", ":)", ":-)", "<3", "o.k.", "c'mon", "'s", "n't",
          'U.S.', 'Mr.', 'xxbos', 'xxmaj', 'XXPAD', 'xxpad', 'xxup', 'Wing', 'WING', 'wing', 'lift-off', '3.5',
          '(1)', 'mach-2', '"', "'", ',', '.', '...', '!!!', '??', '-', '--', '/', 'http://x.org/a?b=1', 'a@b.com',
          '🚀', 'é', 'e\u0301', 'مرحبا', '\u200b', '\x00']
SPACES = [' ', '  ', '   ', '\n', ' \n', '\n ', '\t', '\r\n', '\x0b', '\x0c', '\x1c', '\x1f', '\x85', '\xa0', '\u2028',
          '\u3000', '\u200a', ' \xa0 ', '']
glued = st.lists(st.tuples(st.sampled_from(PIECES), st.sampled_from(SPACES)), max_size=40).map(
    lambda parts: ''.join(piece + space for piece, space in parts))
edges = st.builds(lambda lead, body, tail: lead + body + tail, st.sampled_from(SPACES), glued, st.sampled_from(SPACES))
any_text = st.text(st.characters(codec='utf-8'), max_size=60)


@settings(max_examples=300, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(text=st.one_of(glued, edges, any_text))
def test_generated_tokens_equal_spacy_on_whole_texts(tokenizer, text):
    assert tokenizer.tokenize_one(text) == spacy_reference(tokenizer, text)
    assert tokenizer.tokenize_one(text) == spacy_reference(tokenizer, text)  # again, from the cache


def test_cache_is_not_pickled_and_rebuilds_after_loading(tokenizer):
    tokenizer(['wing flutter at mach 2', 'heat transfer in slabs'])
    assert tokenizer._spans
    restored = pickle.loads(pickle.dumps(tokenizer))
    assert restored._spans == {}
    assert restored(['wing flutter at mach 2']) == tokenizer(['wing flutter at mach 2'])
