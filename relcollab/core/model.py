"""The two-tower model: AWD-LSTM encoders, [last, max, mean] pooling over the real tokens, projections, a dot product.

Also here: the named AWD-LSTM sizes (`relevance_config`, `lm_config`) and the lexical channel's terms
(`term_ids`, `start_from_bm25`)."""
import math
from typing import NamedTuple

import numpy as np
import Stemmer
import torch
import torch.nn.functional as F
from fastai.layers import sigmoid_range
from fastai.text.models.awdlstm import AWD_LSTM, awd_lstm_clas_config, awd_lstm_lm_config
from fastai.text.models.core import SentenceEncoder
from fastai.torch_core import Module, params
from fastcore.foundation import L
from torch import nn

from .data import TOKENS_SUFFIX
from .eval_encoder import eval_sentence_encoder, supports_eval_path

__all__ = ['masked_last_max_mean_pool', 'ridge_regression', 'masked_concat_pool', 'TermWeights', 'lexical_mode', 'EmbeddingPool', 'TextTower', 'InBatchScores', 'same_rows', 'RelevanceHead', 'RelevanceModel', 'get_relevance_model',
           'relevance_split', 'MODEL_SIZES', 'lm_config', 'relevance_config']

# ----------------------------------------------------------------------------- named sizes

MODEL_SIZES = {
    'base': dict(emb_sz=400, n_hid=1152, n_layers=3),  # ULMFiT's AWD-LSTM (WT103 weights fit this)
    'small': dict(emb_sz=128, n_hid=384, n_layers=2),  # for CPUs and tests
}


def _sized(template: dict, size: str) -> dict:
    if size not in MODEL_SIZES:
        raise ValueError(f"Unknown model size {size!r}: choose one of {sorted(MODEL_SIZES)}.")
    return {**template, **MODEL_SIZES[size]}


def lm_config(size: str = 'small') -> dict:
    """AWD-LSTM language-model config of a named size.

    >>> lm_config('base')['n_hid']
    1152
    """
    return _sized(awd_lstm_lm_config, size)


def relevance_config(size: str = 'small') -> dict:
    """AWD-LSTM encoder config (classifier dropouts) of a named size, for `relevance_learner`.

    >>> relevance_config('small')['emb_sz']
    128
    """
    return _sized(awd_lstm_clas_config, size)

# ----------------------------------------------------------------------------- the towers


def masked_last_max_mean_pool(output: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
    """[last, max, mean] of `output` (bs, sl, d) over real tokens; `pad_mask` is True at padding (at the end).

    Not fastai's `masked_concat_pool(output, mask, bptt)`, which expects the padding at the start of each row.

    >>> masked_last_max_mean_pool(torch.ones(2, 3, 4), torch.tensor([[0, 0, 1], [0, 0, 0]]).bool()).shape
    torch.Size([2, 12])
    """
    real = ~pad_mask
    lengths = real.sum(dim=1).clamp(min=1)
    last = output[torch.arange(output.size(0), device=output.device), lengths - 1]
    max_pool = output.masked_fill(pad_mask[:, :, None], -float('inf')).max(dim=1).values
    mean_pool = output.masked_fill(pad_mask[:, :, None], 0.).sum(dim=1) / lengths[:, None].to(output.dtype)
    return torch.cat([last, max_pool, mean_pool], dim=1)


masked_concat_pool = masked_last_max_mean_pool  # deprecated name (it shadows fastai's function of that name)


class TermWeights(Module):
    """Keeps term identity: BM25 over the vocabulary, with term frequencies the LSTM learns to weigh.

    Each token gets a weight softplus(linear(lstm_output_t) + word_bias[token_t]), 1 at the start, and counts
    for its term (its stem, with `set_terms`; the token itself by default). A query's lexical vector
    (bs, vocab_sz) holds, for each term it contains, its largest weight. A document's
    (`saturate=True`) holds BM25's term score of each word, idf(w) * tf (k1 + 1) / (tf + k1 (1 - b + b L / avg_L)),
    with tf the sum of the word's token weights and L the document's token count. So the dot product of an
    untrained query's and document's lexical vectors is BM25 (see `init_bm25`). With `learned=True` training moves
    the token weights by context (a DeepImpact-style learned term frequency) and the idf of each word; with
    `learned=False` (`lexical='bm25'`, the recipe's default with word vectors) they stay BM25's: no parameter of it requires a
    gradient, and `relevance_split` puts none of them in an optimizer group.
    """
    learned = True  # what copies pickled before `learned` existed did
    def __init__(self, vocab_sz: int, n_hid: int, saturate: bool = False, k1: float = 1.2, b: float = 0.75,
                 learned: bool = True):
        self.learned = learned
        self.context = nn.Linear(n_hid, 1)
        nn.init.zeros_(self.context.weight); nn.init.zeros_(self.context.bias)
        self.word_bias = nn.Parameter(torch.full((vocab_sz,), math.log(math.expm1(1.))))
        self.saturate, self.k1, self.b = saturate, k1, b
        self.idf = nn.Parameter(torch.ones(vocab_sz)) if saturate else None
        self.register_buffer('avg_len', torch.tensor(100.))
        self.register_buffer('term_of', torch.arange(vocab_sz))  # token id -> term slot (e.g. its stem)
        if not learned: self.requires_grad_(False)

    def set_terms(self, term_of: torch.Tensor):
        "Maps each token to a term slot (tokens with one stem share one), see `term_ids`."
        with torch.no_grad(): self.term_of.copy_(torch.as_tensor(term_of, dtype=torch.long))

    def init_bm25(self, idf: torch.Tensor, avg_len: float):
        "Start from BM25: the words' idf and the training documents' average length in tokens."
        with torch.no_grad():
            if self.idf is not None: self.idf.copy_(idf)
            self.avg_len.fill_(float(avg_len))

    def forward(self, output: torch.Tensor, tokens: torch.Tensor, pad_mask: torch.Tensor) -> torch.Tensor:
        logits = self.word_bias[tokens] + self.context(output).squeeze(-1) if self.learned else self.word_bias[tokens]
        weights = F.softplus(logits).masked_fill(pad_mask, 0.)
        lexical, terms = weights.new_zeros(len(tokens), len(self.word_bias)), self.term_of[tokens]
        if not self.saturate: return lexical.scatter_reduce(1, terms, weights, reduce='amax', include_self=True)
        tf = lexical.scatter_add(1, terms, weights)
        length = (~pad_mask).sum(dim=1, keepdim=True).to(weights.dtype)
        norm = self.k1 * (1 - self.b + self.b * length / self.avg_len)
        return self.idf * tf * (self.k1 + 1) / (tf + norm)



def lexical_mode(lexical) -> str | None:
    """The lexical channel `lexical` asks for: None (no channel), `'bm25'` (fixed BM25 term weights) or `'learned'`
    (term weights that start as BM25 and train; `True` means this, as it did before `'bm25'` existed).

    >>> lexical_mode(True), lexical_mode('bm25'), lexical_mode(False)
    ('learned', 'bm25', None)
    """
    if lexical is True or lexical == 'learned': return 'learned'
    if lexical == 'bm25': return 'bm25'
    if lexical is False or lexical is None: return None
    raise ValueError(f"lexical={lexical!r}: use 'bm25' (BM25 term weights, fixed), 'learned' (they train; True means "
                     f"this too), 'auto' (relevance_learner and train_relevance_model: 'bm25' with a word pool, "
                     f"'learned' without) or False (no lexical channel).")


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


def _training_documents(dls, documents=None) -> list:
    """The distinct training documents' tokens, or those of `documents` (texts) when given: the collection itself,
    without the shortened copies that pseudo-queries pair with (which would count a word of one document in several)."""
    if documents is not None: return list({tuple(tokens): None for tokens in dls.tokenizer(list(documents))})
    token_col = dls.doc_col + TOKENS_SUFFIX
    items = dls.train_ds.items
    docs = items[token_col] if token_col in items else dls.tokenizer(items[dls.doc_col].tolist())
    return list({tuple(tokens): None for tokens in docs})


def document_idf(dls, term_of=None, documents=None) -> torch.Tensor:
    """BM25's idf, log(1 + (n - df + 0.5) / (df + 0.5)), over the distinct training documents (or `documents`), of
    every term slot (`term_of` maps token ids to term slots; default: each token is its own term)."""
    docs = _training_documents(dls, documents)
    term_of = np.arange(len(dls.vocab)) if term_of is None else np.asarray(term_of)
    index = {word: int(term_of[i]) for i, word in enumerate(dls.vocab)}
    df = torch.zeros(len(dls.vocab))
    for tokens in docs:
        ids = list({index[t] for t in tokens if t in index})
        if ids: df[ids] += 1
    return torch.log1p((len(docs) - df + 0.5) / (df + 0.5))


def start_from_bm25(model, dls, stemmer='english', documents=None):
    """The lexical channel (each tower's `TermWeights`) starts as BM25 over `dls`'s training documents, or over
    `documents` (texts) when given (terms: tokens of one `stemmer` stem, their idf, the documents' average length).
    `relevance_learner` calls it."""
    docs = _training_documents(dls, documents)
    avg_len = float(np.mean([len(d) for d in docs])) if docs else 100.
    term_of = term_ids(dls.vocab, stemmer)
    idf = document_idf(dls, term_of, documents)
    for tower in (model.query_tower, model.doc_tower):
        tower.term_weights.set_terms(term_of)
        tower.term_weights.init_bm25(idf, avg_len)

class EmbeddingPool(Module):
    """A weighted mean of a text's input embeddings: which words it contains, in the LM's embedding space.

    Each token weighs softplus(word_weight[token]); `init_idf` starts the weights at the words' idf, so rare
    words count most (as in SIF / Model2Vec sentence vectors), and training moves them.
    """
    def __init__(self, vocab_sz: int):
        self.word_weight = nn.Parameter(torch.full((vocab_sz,), math.log(math.expm1(1.))))

    def init_idf(self, idf: torch.Tensor):
        "Start each word's weight at its idf (at least 1e-3)."
        with torch.no_grad(): self.word_weight.copy_(torch.log(torch.expm1(idf.clamp(min=1e-3))))

    def forward(self, embedded: torch.Tensor, tokens: torch.Tensor, real: torch.Tensor) -> torch.Tensor:
        weights = F.softplus(self.word_weight[tokens]) * real
        return (embedded * weights.unsqueeze(-1)).sum(dim=1) / weights.sum(dim=1, keepdim=True).clamp(min=1e-6)


class TextTower(Module):
    """Encodes padded token ids (bs, sl) into one pooled vector per row (bs, 3*emb_sz).

    fastai's `SentenceEncoder` expects rows sorted longest first; the tower sorts them and restores the
    caller's order, so a text's vector does not depend on the rest of its batch. In eval mode it runs
    `eval_sentence_encoder`: the same outputs without fastai's per-call weight copies (much faster for a query).
    """
    def __init__(self, encoder: SentenceEncoder, pool_embeddings: bool | str = False, lexical: bool | str = False,
                 saturate: bool = False, word_pool: int = 0):
        if pool_embeddings not in (False, True, 'mean', 'idf'):
            raise ValueError(f"pool_embeddings={pool_embeddings!r}: use False, True (or 'mean') or 'idf'.")
        if word_pool and not pool_embeddings:
            raise ValueError(f"word_pool={word_pool} pools word vectors: it needs pool_embeddings='idf' (or True).")
        self.encoder, self.pool_embeddings, self.word_pool = encoder, pool_embeddings, int(word_pool)
        vocab_sz, emb_sz = encoder.module.encoder.num_embeddings, encoder.module.emb_sz
        self.embedding_pool = EmbeddingPool(vocab_sz) if pool_embeddings == 'idf' else None
        mode = lexical_mode(lexical)
        self.term_weights = TermWeights(vocab_sz, emb_sz, saturate=saturate, learned=mode == 'learned') if mode else None
        # fixed word vectors of their own size (set by `relevance_learner(word_pool=...)`), pooled instead of the LM's embedding
        if self.word_pool: self.register_buffer('word_vectors', torch.zeros(vocab_sz, self.word_pool))

    @property
    def awd_lstm(self) -> AWD_LSTM: return self.encoder.module

    @property
    def out_features(self) -> int:
        "Size of the pooled (dense) features; a lexical tower appends `vocab_sz` term weights after them."
        emb_sz = self.awd_lstm.emb_sz
        return 3 * emb_sz + (self.pool_features if self.pool_embeddings else 0)

    @property
    def pool_features(self) -> int:
        "Size of the word pool: the fixed word vectors' (`word_pool`), or else the LM embedding's."
        return self.word_pool or self.awd_lstm.emb_sz

    @property
    def lexical_features(self) -> int:
        return 0 if self.term_weights is None else len(self.term_weights.word_bias)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        lengths = (tokens != self.encoder.pad_idx).sum(dim=1)
        order = torch.argsort(lengths, descending=True, stable=True)
        if not self.training and supports_eval_path(self.encoder):
            output, pad_mask = eval_sentence_encoder(self.encoder, tokens[order])
        else: output, pad_mask = self.encoder(tokens[order])
        restore = torch.argsort(order)
        parts = [masked_last_max_mean_pool(output, pad_mask)[restore]]
        if self.pool_embeddings: parts.append(self.mean_embedding(tokens))
        if self.term_weights is not None: parts.append(self.term_weights(output, tokens[order], pad_mask)[restore])
        return torch.cat(parts, dim=1) if len(parts) > 1 else parts[0]

    def mean_embedding_of(self, ids: list, bs: int = 256) -> torch.Tensor:
        """`mean_embedding` of each of `ids` (1-d token-id tensors of any lengths; an empty one counts as padding),
        in batches of `bs`, without gradients: (len(ids), pool_features).

        >>> tower.mean_embedding_of([torch.tensor([2, 5, 9]), torch.tensor([2, 7])]).shape  # doctest: +SKIP
        """
        pad = self.encoder.pad_idx
        device = next(self.parameters()).device
        ids = [row if len(row) else torch.tensor([pad]) for row in ids]
        if not ids: return torch.zeros(0, self.pool_features, device=device)
        with torch.no_grad():
            return torch.cat([self.mean_embedding(nn.utils.rnn.pad_sequence(ids[i:i + bs], batch_first=True,
                                                                            padding_value=pad).to(device))
                              for i in range(0, len(ids), bs)])

    def mean_embedding(self, tokens: torch.Tensor) -> torch.Tensor:
        """Mean input embedding over the real tokens (idf-weighted with `pool_embeddings='idf'`); with `word_pool`,
        the mean of the fixed word vectors instead."""
        real = (tokens != self.encoder.pad_idx).unsqueeze(-1)
        if self.word_pool: embedded = F.embedding(tokens, self.word_vectors)
        elif self.training: embedded = self.awd_lstm.encoder_dp(tokens)
        else: embedded = self.awd_lstm.encoder(tokens)
        if self.embedding_pool is not None: return self.embedding_pool(embedded, tokens, real.squeeze(-1).to(embedded.dtype))
        return (embedded * real).sum(dim=1) / real.sum(dim=1).clamp(min=1)


class SkipProjection(nn.Sequential):
    """BatchNorm, dropout and a linear map, plus the normalized features `skip` = (start, stop) themselves (the first
    `proj_sz` of them) added to the output: the projection starts at zero, so the dense vector starts as those
    features, and weight decay pulls it back towards them while relevance training adds the LSTM's view.

    `fit_map` replaces that identity by a fixed linear map of the raw features `skip` (the buffers `skip_weight`,
    `skip_bias`, e.g. fitted to a teacher by `RelevanceHead.start_from_targets`): neither BatchNorm nor the optimizer
    moves the map, though the word weights of the pool it reads still train. A model built with `fitted=True` has the
    buffers from the start (to load such weights)."""
    def __init__(self, n_in: int, proj_sz: int, p: float, skip: tuple, fitted: bool = False):
        super().__init__(nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, proj_sz))
        self.skip = tuple(skip)
        with torch.no_grad(): self[2].weight.zero_(); self[2].bias.zero_()
        if fitted: self.fit_map(torch.zeros(self.skip[1] - self.skip[0], proj_sz), torch.zeros(proj_sz))

    @property
    def fitted(self) -> bool: return 'skip_weight' in self._buffers

    def fit_map(self, weight: torch.Tensor, bias: torch.Tensor):
        "The skip becomes `raw features @ weight + bias` (weight (stop - start, proj_sz)), fixed."
        device = self[2].weight.device
        self.register_buffer('skip_weight', weight.detach().float().to(device).clone())
        self.register_buffer('skip_bias', bias.detach().float().to(device).clone())

    def fit_map_at_skip_length(self, features: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, aimed_at=None):
        """`fit_map(weight, bias)` rescaled so that its vectors of the raw skip `features` (n, stop - start) (or the
        vectors `aimed_at`, e.g. a regression's targets) are on average as long as the plain skip's: the trained map then
        adds to it at the rate it adds to the plain skip."""
        norm = self[0]
        start, stop = self.skip
        with torch.no_grad():
            scale = norm.weight[start:stop] / (norm.running_var[start:stop] + norm.eps).sqrt()
            normed = (features.to(scale) - norm.running_mean[start:stop]) * scale + norm.bias[start:stop]
            mapped = features.to(weight) @ weight + bias if aimed_at is None else aimed_at.to(weight)
            length = self.identity_skip(normed).norm(dim=1).mean() / mapped.norm(dim=1).mean().clamp(min=1e-12)
        self.fit_map(weight * length, bias * length)

    def forward(self, x):
        normed = self[0](x)
        out = self[2](self[1](normed))
        start, stop = self.skip
        if self.fitted: return out + x[:, start:stop] @ self.skip_weight + self.skip_bias
        return out + self.identity_skip(normed[:, start:stop])

    def identity_skip(self, normed_skip: torch.Tensor) -> torch.Tensor:
        "The plain skip: the first `proj_sz` normalized features `skip` (n, stop - start), zero-padded to `proj_sz`."
        n_out = self[2].out_features
        n = min(normed_skip.shape[1], n_out)
        return F.pad(normed_skip[:, :n], (0, n_out - n))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        if prefix + 'skip_weight' in state_dict and not self.fitted:  # weights trained with a fitted map: take it
            self.fit_map(state_dict[prefix + 'skip_weight'], state_dict[prefix + 'skip_bias'])
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def ridge_regression(x: torch.Tensor, y: torch.Tensor, alpha: float = 1e-3) -> tuple:
    """`(weight (p, k), bias (k,))`: the least-squares fit of y (n, k) on x (n, p) with a ridge penalty lam |weight|^2,
    lam = `alpha` x n x the mean variance of x's columns (scale-free), solved in float64. The penalty is on x's own
    scale, so columns that barely vary get small weights (a standardized ridge would give them huge ones, which
    dropout on x then turns into noise).

    >>> w, b = ridge_regression(torch.randn(100, 3), torch.ones(100, 2)); b.tolist()
    [1.0, 1.0]
    """
    x, y = x.double(), y.double()
    x_mean, y_mean = x.mean(dim=0), y.mean(dim=0)
    xc = x - x_mean
    gram = xc.T @ xc
    lam = alpha * float(gram.diagonal().mean().clamp(min=1e-12))  # = alpha x n x mean variance
    weight = torch.linalg.solve(gram + lam * torch.eye(len(gram), dtype=gram.dtype, device=gram.device), xc.T @ (y - y_mean))
    return weight.float(), (y_mean - x_mean @ weight).float()


def _projection(n_in: int, proj_sz: int, p: float, skip=None, fitted_skip: bool = False) -> nn.Sequential:
    if skip is not None: return SkipProjection(n_in, proj_sz, p, skip, fitted=fitted_skip)
    return nn.Sequential(nn.BatchNorm1d(n_in), nn.Dropout(p), nn.Linear(n_in, proj_sz))


class RelevanceHead(Module):
    """Projects each side's pooled vector to unit length; score = sigmoid_range(scale * query . doc + bias).

    With `n_lexical` term weights after the `n_in` pooled features (a lexical tower), each vector is
    [unit projection, term weights] (the query's term weights times a learned `lexical_scale`), so
    query . doc = cosine + lexical_scale * (shared-word term weights): still one dot product.

    Unit vectors bound the logits by the learned `scale`, so a large learning rate cannot push the sigmoid
    into saturation, where MSE has no gradient and every score collapses to a constant. BatchNorm centres the
    pooled features first: raw LSTM features share a large common direction that makes every cosine alike.
    In eval mode it uses running statistics, so a text's vector never depends on its batch.
    """
    def __init__(self, n_in: int, proj_sz: int, y_range=(0., 1.), p: float = 0.1, init_scale: float = 1.,
                 n_lexical: int = 0, init_lexical_scale: float = 0.1, skip: tuple | None = None, fitted_skip: bool = False):
        self.query_proj, self.doc_proj = (_projection(n_in, proj_sz, p, skip, fitted_skip) for _ in range(2))
        # Same start on both sides: with both towers loaded from one LM encoder, the untrained model already
        # scores by the cosine of the two texts' LM features, a lexical-and-topical signal to refine.
        self.doc_proj.load_state_dict(self.query_proj.state_dict())
        self.log_scale = nn.Parameter(torch.tensor([math.log(init_scale)]))
        self.bias = nn.Parameter(torch.zeros(1))
        self.y_range, self.n_in, self.n_lexical = tuple(y_range), n_in, n_lexical
        self.log_lexical_scale = nn.Parameter(torch.tensor([math.log(init_lexical_scale)])) if n_lexical else None

    @property
    def out_features(self) -> int: return self.dense_features + self.n_lexical

    @property
    def dense_features(self) -> int:
        "Size of the dense part of each vector (the unit projection); the lexical term weights follow it."
        return self.query_proj[-1].out_features

    def start_from_features(self, start: int, stop: int):
        """Both projections start by passing the pooled features `start:stop` through (into the first dimensions) and
        ignoring the rest: the untrained dense vector is then those features, standardized (e.g. the idf-weighted mean
        word embedding), and training mixes the LSTM's features in from zero."""
        with torch.no_grad():
            for proj in (self.query_proj, self.doc_proj):
                linear = proj[-1]
                linear.weight.zero_(); linear.bias.zero_()
                n = min(stop - start, linear.out_features)
                linear.weight[torch.arange(n), start + torch.arange(n)] = 1.

    def start_from_statistics(self, start: int, stop: int, mean: torch.Tensor, spread: torch.Tensor):
        """BatchNorm would give each pooled feature `start:stop` unit variance, whitening them; starting its weights at
        their `spread` (relative to its mean) keeps their own proportions, only centred (on Cranfield, fold 0, the
        whitened pool ranked below the centred one in an unkept exploration), and its
        running statistics at their `mean` and spread makes the untrained model in eval mode read them the same way."""
        with torch.no_grad():
            for proj in (self.query_proj, self.doc_proj):
                norm = proj[0]
                norm.weight[start:stop] = (spread ** 2 + norm.eps).sqrt() / spread.mean().clamp(min=1e-12)  # eps too: exact
                norm.running_mean[start:stop] = mean
                norm.running_var[start:stop] = spread ** 2

    def start_from_targets(self, features: torch.Tensor, targets: torch.Tensor, start: int, stop: int, alpha: float = 1e-3):
        """The dense vectors start as the ridge regression (`ridge_regression`) of `targets` (n, proj_sz), e.g. a teacher's
        embeddings of n texts, on those texts' pooled features `start:stop` (n, stop - start): the best linear copy of
        the targets those features allow. With a skip connection over `start:stop` the map becomes the skip's, fixed
        and reading the raw features (`SkipProjection.fit_map`; the model's `hparams['pool_map']` must then say so for
        a saved copy to rebuild it, as `relcollab.training.distill.start_from_teacher` does), so training adds to it as
        it adds to the plain skip; otherwise it is the trained map's start (on the features as BatchNorm reads them
        in eval mode), the other features at weight 0.

        >>> head.start_from_targets(pool_features, teacher_vectors, head.n_in - 384, head.n_in)  # doctest: +SKIP
        """
        with torch.no_grad():
            for proj in (self.query_proj, self.doc_proj):
                norm, linear = proj[0], proj[-1]
                linear.weight.zero_(); linear.bias.zero_()
                scale = norm.weight[start:stop] / (norm.running_var[start:stop] + norm.eps).sqrt()
                normed = (features.to(scale) - norm.running_mean[start:stop]) * scale + norm.bias[start:stop]
                if isinstance(proj, SkipProjection) and proj.skip == (start, stop):
                    proj.fit_map_at_skip_length(features, *ridge_regression(features, targets.to(features), alpha), targets)
                    continue
                weight, bias = ridge_regression(normed, targets.to(normed), alpha)
                linear.weight[:, start:stop] = weight.T.to(linear.weight)
                linear.bias.copy_(bias)

    def project_query(self, pooled):
        dense = F.normalize(self.query_proj(pooled[:, :self.n_in]), dim=-1)
        if not self.n_lexical: return dense
        return torch.cat([dense, pooled[:, self.n_in:] * self.log_lexical_scale.exp()], dim=1)

    def project_doc(self, pooled):
        dense = F.normalize(self.doc_proj(pooled[:, :self.n_in]), dim=-1)
        return torch.cat([dense, pooled[:, self.n_in:]], dim=1) if self.n_lexical else dense

    def score(self, query_vectors: torch.Tensor, doc_vectors: torch.Tensor) -> torch.Tensor:
        "Scores (bs, 1) of row-aligned projected vectors."
        return self.score_dots((query_vectors * doc_vectors).sum(dim=1, keepdim=True))

    def score_dots(self, dots: torch.Tensor) -> torch.Tensor:
        "Scores on `y_range` from query . doc dot products of any shape: the one map from dot products to scores."
        return sigmoid_range(self.logits_of_dots(dots), *self.y_range)

    def logits_of_dots(self, dots: torch.Tensor) -> torch.Tensor:
        return dots * self.log_scale.exp() + self.bias

    def logits(self, query_vectors: torch.Tensor, doc_vectors: torch.Tensor) -> torch.Tensor:
        return self.logits_of_dots((query_vectors * doc_vectors).sum(dim=1, keepdim=True))


class InBatchScores(NamedTuple):
    "Training output of an in-batch model: every query of the batch against every document (bs, bs)."
    logits: torch.Tensor
    similarities: torch.Tensor  # query . doc before the scale and bias (cosines, plus term matches if lexical)
    same_query: torch.Tensor
    same_doc: torch.Tensor
    dense_similarities: torch.Tensor | None = None  # the dense cosines alone, when a lexical channel adds to them


def same_rows(tokens: torch.Tensor) -> torch.Tensor:
    "(bs, bs) True where two rows of a padded token batch are the same text."
    return (tokens[:, None, :] == tokens[None, :, :]).all(dim=-1)


class RelevanceModel(Module):
    """Two text towers (or one shared), a projection head and a dot product: forward(query, doc) -> (bs, 1).

    With `in_batch=True` the model returns, in training only, `InBatchScores` for all B x B (query, document)
    pairs of the batch (for `InBatchLoss`); in evaluation it always returns the (bs, 1) pair scores.
    """
    def __init__(self, query_tower: TextTower, doc_tower: TextTower, head: RelevanceHead, in_batch: bool = False):
        self.query_tower, self.doc_tower, self.head, self.in_batch = query_tower, doc_tower, head, in_batch

    @property
    def shared(self) -> bool: return self.query_tower is self.doc_tower

    def encode_query(self, tokens): return self.head.project_query(self.query_tower(tokens))
    def encode_doc(self, tokens): return self.head.project_doc(self.doc_tower(tokens))

    def forward(self, query_tokens, doc_tokens):
        queries, docs = self.encode_query(query_tokens), self.encode_doc(doc_tokens)
        if not (self.training and self.in_batch): return self.head.score(queries, docs)
        similarities = queries @ docs.T
        logits = self.head.logits_of_dots(similarities)
        dense = self.head.out_features - self.head.n_lexical
        dense_similarities = queries[:, :dense] @ docs[:, :dense].T if self.head.n_lexical else None
        return InBatchScores(logits, similarities, same_rows(query_tokens), same_rows(doc_tokens), dense_similarities)

    def reset(self):
        for tower in (self.query_tower, self.doc_tower): tower.encoder.reset()


def _tower(vocab_sz: int, config: dict, bptt: int, pool_embeddings, lexical, doc_side: bool, word_pool: int) -> TextTower:
    encoder = SentenceEncoder(bptt=bptt, module=AWD_LSTM(vocab_sz, **config), pad_idx=config['pad_token'])
    return TextTower(encoder, pool_embeddings=pool_embeddings, lexical=lexical, saturate=doc_side, word_pool=word_pool)


def get_relevance_model(vocab_sz: int, config: dict, drop_mult: float = 1., shared: bool = False,
                        proj_sz: int = 256, y_range=(0., 1.), bptt: int = 72,
                        pool_embeddings: bool | str = False, lexical: bool | str = False, word_pool: int = 0,
                        pool_skip: bool = False, pool_map: bool = False) -> RelevanceModel:
    """Builds the two-tower model from an AWD-LSTM `config` (see `relevance_config`).

    `pool_embeddings` adds each text's mean input embedding to its pooled LSTM features (`'idf'`: weighted by
    learned word weights that start at the documents' idf, see `EmbeddingPool`); `lexical` adds
    term weights over the vocabulary (`TermWeights`), so shared words count as in BM25: `'bm25'` keeps them BM25's,
    `'learned'` (or `True`) trains them (`lexical_mode`). `word_pool` (a size)
    pools fixed word vectors of that size instead of the LM's embedding (`relevance_learner(word_pool=...)` fills them).

    >>> get_relevance_model(100, relevance_config('small')).head.bias.shape
    torch.Size([1])
    """
    hparams = dict(vocab_sz=vocab_sz, config=dict(config), drop_mult=drop_mult, shared=shared, proj_sz=proj_sz,
                   y_range=list(y_range), bptt=bptt, pool_embeddings=pool_embeddings, lexical=lexical)
    if word_pool: hparams['word_pool'] = int(word_pool)  # absent when unused: older exports rebuild unchanged
    if pool_skip: hparams['pool_skip'] = True
    if pool_map: hparams['pool_map'] = True  # the skip is a fitted map (SkipProjection.fit_map)
    if pool_map and not pool_skip: raise ValueError("pool_map=True is a fitted skip connection: it needs pool_skip=True.")
    if pool_skip and pool_embeddings != 'idf': raise ValueError("pool_skip=True adds the word pool to the dense vectors: it needs pool_embeddings='idf'.")
    config = {k: (v * drop_mult if k.endswith('_p') else v) for k, v in config.items()}
    head_p = config.pop('output_p', 0.1)
    if shared and lexical_mode(lexical): raise ValueError(f"lexical={lexical!r} needs two towers (shared=False): the document side saturates term frequencies.")
    query_tower = _tower(vocab_sz, config, bptt, pool_embeddings, lexical, doc_side=False, word_pool=word_pool)
    doc_tower = query_tower if shared else _tower(vocab_sz, config, bptt, pool_embeddings, lexical, doc_side=True,
                                                  word_pool=word_pool)
    pool = (3 * query_tower.awd_lstm.emb_sz, query_tower.out_features)  # where the word pool sits in the features
    head = RelevanceHead(query_tower.out_features, proj_sz, y_range=y_range, p=head_p,
                         n_lexical=query_tower.lexical_features, skip=pool if pool_skip else None, fitted_skip=pool_map)
    if pool_embeddings == 'idf' and not pool_skip: head.start_from_features(*pool)  # the dense vectors start as the pool
    model = RelevanceModel(query_tower, doc_tower, head)
    model.hparams = hparams  # JSON-able: get_relevance_model(**model.hparams) rebuilds this architecture
    return model


def relevance_split(model: RelevanceModel):
    """ULMFiT parameter groups: embeddings, each LSTM layer (both towers together), then the head (with the
    lexical term weights when they are learned). Every parameter is in exactly one group, except fixed BM25 term
    weights (`lexical='bm25'`), which are in none."""
    towers = [model.query_tower] if model.shared else [model.query_tower, model.doc_tower]
    lstms = [tower.awd_lstm for tower in towers]
    groups = [nn.ModuleList([nn.Sequential(m.encoder, m.encoder_dp) for m in lstms])]
    groups += [nn.ModuleList([nn.Sequential(m.rnns[i], m.hidden_dps[i]) for m in lstms])
               for i in range(lstms[0].n_layers)]
    term_weights = [tower.term_weights for tower in towers if tower.term_weights is not None and tower.term_weights.learned]
    word_weights = term_weights + [tower.embedding_pool for tower in towers if tower.embedding_pool is not None]
    groups.append(nn.ModuleList([model.head, *word_weights]))  # word weights train with the head, from the start
    return L(groups).map(params)
