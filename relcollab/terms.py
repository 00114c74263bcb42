"""Terms for the lexical channel: vocabulary tokens that share a stem count as one term, as in BM25."""
import numpy as np
import Stemmer

__all__ = ['term_ids']


def term_ids(vocab, stemmer: str | None = 'english') -> np.ndarray:
    """For each vocabulary token, the index of its term: the first token with the same stem (`stemmer`, a
    Snowball language of PyStemmer), or itself with `stemmer=None` and for fastai's special `xx` tokens.

    >>> term_ids(['xxunk', 'wing', 'wings', 'flow'])
    array([0, 1, 1, 3])
    """
    if stemmer is None: return np.arange(len(vocab))
    stems = Stemmer.Stemmer(stemmer).stemWords([str(t) for t in vocab])
    first, out = {}, np.empty(len(vocab), dtype=np.int64)
    for i, (token, stem) in enumerate(zip(vocab, stems)):
        key = token if str(token).startswith('xx') else stem
        out[i] = first.setdefault(key, i)
    return out
