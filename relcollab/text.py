"""Tokenization shared by the language model and both towers: fastai's rules, one vocabulary."""
from collections import Counter

from fastai.text.core import PAD, UNK, SpacyTokenizer, Tokenizer, defaults
from fastai.text.data import make_vocab

__all__ = ['DEFAULT_MAX_TOKENS', 'TextTokenizer', 'check_text', 'build_vocab']

DEFAULT_MAX_TOKENS = 512  # texts longer than this are cut to their first tokens
MAX_CHARS_PER_TOKEN = 40  # the raw text is cut to max_tokens * this many characters before tokenizing


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

    def tokenize_one(self, text: str, position: int = 0) -> list:
        check_text(text, position)
        # Cut the raw text first so a huge document costs memory in proportion to max_tokens only.
        text = text[:self.max_tokens * MAX_CHARS_PER_TOKEN]
        return [UNK if token == PAD else token for token in self._fastai_tokens(text)][:self.max_tokens]

    def _fastai_tokens(self, text: str):
        "What fastai's `Tokenizer` gives for `text` (its rules, then spaCy), without its per-call Transform and `L` overhead."
        for rule in self.tokenizer.rules: text = rule(text)
        return (token.text for token in self.tokenizer.tok.pipe.__self__.tokenizer(text))

    def __call__(self, texts) -> list:
        "Tokenize `texts`, each distinct text once."
        cache = {}
        for position, text in enumerate(texts):
            if not isinstance(text, str) or text not in cache: cache[text] = self.tokenize_one(text, position)
        return [cache[text] for text in texts]


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
