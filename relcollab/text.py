"""Tokenization shared by the language model and both towers: fastai's rules, one vocabulary."""
from collections import Counter

from fastai.text.core import SpacyTokenizer, Tokenizer, defaults
from fastai.text.data import make_vocab

__all__ = ['DEFAULT_MAX_TOKENS', 'TextTokenizer', 'build_vocab']

DEFAULT_MAX_TOKENS = 512  # texts longer than this are cut to their first tokens


class TextTokenizer:
    """fastai's default text processing (spaCy words, `xxbos`, `xxmaj`, ...), cut to `max_tokens`.

    Every text starts with `xxbos`, so an empty text is one token long and still has a vector.

    >>> TextTokenizer()(['Heat transfer in slabs'])[0]
    ['xxbos', 'xxmaj', 'heat', 'transfer', 'in', 'slabs']
    """
    def __init__(self, max_tokens: int = DEFAULT_MAX_TOKENS):
        if max_tokens < 1: raise ValueError(f"max_tokens must be at least 1, got {max_tokens}.")
        self.max_tokens = max_tokens
        self.tokenizer = Tokenizer(SpacyTokenizer(), rules=defaults.text_proc_rules)

    def tokenize_one(self, text: str) -> list:
        # Cut the raw text first so a huge document costs memory in proportion to max_tokens only.
        text = text[:self.max_tokens * 40]
        return list(self.tokenizer(text))[:self.max_tokens]

    def __call__(self, texts) -> list:
        "Tokenize `texts`, each distinct text once."
        cache = {}
        for text in texts:
            if text not in cache: cache[text] = self.tokenize_one(text)
        return [cache[text] for text in texts]


def build_vocab(token_lists, min_freq: int = 2, max_vocab: int = 60000) -> list:
    """fastai vocabulary (special tokens first, length a multiple of 8) from tokenized texts.

    >>> vocab = build_vocab([['xxbos', 'wing'], ['xxbos', 'wing']])
    >>> vocab.index('wing') > 0
    True
    """
    counts = Counter(token for tokens in token_lists for token in tokens)
    return make_vocab(counts, min_freq=min_freq, max_vocab=max_vocab)
