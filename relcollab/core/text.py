"""Tokenization shared by the language model and both towers: fastai's rules, one vocabulary."""
import re
from collections import Counter

import torch
from fastai.text.core import PAD, UNK, SpacyTokenizer, Tokenizer, defaults
from fastai.text.data import Numericalize, make_vocab

__all__ = ['DEFAULT_MAX_TOKENS', 'TextTokenizer', 'check_text', 'build_vocab', 'numericalize_texts']

DEFAULT_MAX_TOKENS = 512  # texts longer than this are cut to their first tokens
MAX_CHARS_PER_TOKEN = 40  # the raw text is cut to max_tokens * this many characters before tokenizing
SPAN_CACHE_SIZE = 200_000  # whitespace-delimited spans whose tokens a TextTokenizer keeps (then it starts over)


class TextTokenizer:
    """fastai's default text processing (spaCy words, `xxbos`, `xxmaj`, ...), cut to `max_tokens`.

    Every text starts with `xxbos`, so an empty text is one token long and still has a vector. A literal
    `xxpad` in a text becomes `xxunk`: padding must only ever come from batching (the towers read it as
    "end of text"). Texts must be `str` without unpaired surrogates (which no UTF-8 file can hold).

    >>> TextTokenizer()(['Heat transfer in slabs'])[0]
    ['xxbos', 'xxmaj', 'heat', 'transfer', 'in', 'slabs']
    """
    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS):
        if max_tokens < 1: raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer(SpacyTokenizer(), rules=defaults.text_proc_rules)
        self._spans = {}

    def clear_cache(self):
        "Forgets the cached tokens of spans (benchmarks time tokenizing from a cold start with it)."
        self._spans.clear()

    def __getstate__(self):  # the span cache is rebuilt on use, never pickled with a learner
        return {key: value for key, value in self.__dict__.items() if key != '_spans'}

    def __setstate__(self, state):
        self.__dict__.update(state)
        self._spans = {}

    def tokenize_one(self, text: str, position: int = 0) -> list:
        check_text(text, position)
        # Cut the raw text first so a huge document costs memory in proportion to max_tokens only.
        text = text[:self.max_tokens * MAX_CHARS_PER_TOKEN]
        return [UNK if token == PAD else token for token in self._fastai_tokens(text)][:self.max_tokens]

    def _fastai_tokens(self, text: str) -> list:
        """What fastai's `Tokenizer` gives for `text`: its rules, then spaCy, span by span (see `_span_tokens`)."""
        for rule in self.tokenizer.rules: text = rule(text)
        tokens = []
        for span in _spacy_spans(text): tokens.extend(self._span_tokens(span))
        return tokens

    def _span_tokens(self, span: str) -> tuple:
        """spaCy's tokens of one whitespace-delimited span, cached.

        spaCy splits a text at whitespace and tokenizes each span on its own, but stops caching spans for the
        rest of a text after a special case (fastai's `xxbos` opens every text), so it re-tokenizes every word
        of every text. The words of a collection repeat: caching them here makes tokenizing several times
        faster, with the same tokens (tested against spaCy on Cranfield and on generated texts).
        """
        cached = self._spans.get(span)
        if cached is None:
            if len(self._spans) >= SPAN_CACHE_SIZE: self._spans.clear()
            cached = self._spans[span] = tuple(token.text for token in self.tokenizer.tok.pipe.__self__.tokenizer(span))
        return cached

    def __call__(self, texts) -> list:
        "Tokenize `texts`, each distinct text once."
        cache = {}
        for position, text in enumerate(texts):
            if not isinstance(text, str) or text not in cache: cache[text] = self.tokenize_one(text, position)
        return [cache[text] for text in texts]


_WHITESPACE_RUNS = re.compile(r'\s+|\S+')


def _spacy_spans(text: str):
    """The spans spaCy's tokenizer reads `text` in: runs of non-space characters, and runs of whitespace
    without the one ' ' that ends a word (spaCy stores it as that word's trailing space). A leading run of
    whitespace is kept whole.

    >>> list(_spacy_spans('wing  lift\\nx'))
    ['wing', ' ', 'lift', '\\n', 'x']
    """
    for position, match in enumerate(_WHITESPACE_RUNS.finditer(text)):
        span = match.group()
        if position and span[0] == ' ': span = span[1:]
        if span: yield span


def check_text(text, position: int = 0):
    """Raises a `TypeError` for a text that is not a string, a `ValueError` for one that is not valid Unicode.

    >>> check_text(None, 3)
    Traceback (most recent call last):
    TypeError: text 3 is NoneType (None), not a string: fill or drop missing texts (an empty text '' is allowed).
    """
    if not isinstance(text, str):
        raise TypeError(f"text {position} is {type(text).__name__} ({text!r:.40}), not a string: "
                        "fill or drop missing texts (an empty text '' is allowed).")
    if not text.isascii():
        try: text.encode('utf-8')
        except UnicodeEncodeError as error:
            raise ValueError(f"text {position} has an unpaired surrogate {text[error.start]!r} at character "
                             f"{error.start}, which is not valid Unicode: read files as UTF-8 without "
                             "errors='surrogateescape', or clean the text (e.g. errors='replace').") from None


def build_vocab(token_lists, min_freq: int = 2, max_vocab: int = 60000) -> list:
    """fastai vocabulary (special tokens first, length a multiple of 8) from tokenized texts.

    >>> vocab = build_vocab([['xxbos', 'wing'], ['xxbos', 'wing']])
    >>> vocab.index('wing') > 0
    True
    """
    counts = Counter(token for tokens in token_lists for token in tokens)
    return make_vocab(counts, min_freq=min_freq, max_vocab=max_vocab)


def numericalize_texts(texts: list, tokenizer, vocab) -> list:
    """Token ids (1-D int64 tensors) of `texts`: the dataloaders' tokenizer, then fastai's `Numericalize`.

    >>> [t.tolist() for t in numericalize_texts(['wing'], learn.dls.tokenizer, learn.dls.vocab)]  # doctest: +SKIP
    [[2, 23]]
    """
    numericalize = Numericalize(vocab=vocab)
    return [_token_ids(tokens, numericalize) for tokens in tokenizer(texts)]


def _token_ids(tokens: list, numericalize) -> torch.Tensor:
    "A plain int64 tensor of ids (not fastai's TensorText, on which every torch op runs Python code first)."
    return torch.as_tensor(numericalize(tokens), dtype=torch.long).as_subclass(torch.Tensor)
