"""The judgment start: the dense vectors start as the map of the pooled word vectors that the judgments themselves ask
for, and relevance training then keeps near it.

A linear map of each text's pooled word vectors (the towers' word pool), shared by both towers, is fitted in seconds
so that the cosine of a judged pair's two mapped vectors matches its normalized score (MSE, full-batch Adam from the
identity, or from the teacher start's map when there is one: `fit_pair_map`). It becomes the fixed skip map of both
projections, as the teacher start's ridge map does (`relcollab.core.model.SkipProjection.fit_map`), and the start's
own vector of every training text then serves as a teacher (`TeacherDistillation`, no learned map): relevance
training adds the LSTM's view to it instead of pulling the dense vectors away. On SICK (issue 14) the map alone took
the dense cosine's Spearman from 0.567 (the pooled word vectors) to 0.731 on the test pairs, but relevance training
without the anchor brought it back to 0.549; with it, 0.728. Given held-out judged pairs (the recipe's validation
rows), the fit stops where their error is lowest: on Cranfield without a teacher after 40-50 steps, which lifted the
dense part's nDCG@10 by 0.05-0.08; with the teacher, from the teacher start's map, SICK's dense cosine went from
0.706 to 0.777 (README, The judgment start). The start also chooses the lexical channel's weight beside the dense
cosine on the validation rows (`choose_lexical_scale`) and fits the map from dot products to scores to the training
rows (`fit_score_map`); after relevance training, `finish_from_judgments` does both again for the trained towers.

    >>> anchor = start_from_judgments(learn, triples[~triples.is_valid])  # doctest: +SKIP
    >>> with learn.added_cbs(anchor): fine_tune_relevance(learn)  # doctest: +SKIP
"""
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from fastai.layers import sigmoid_range

from ..core.model import SkipProjection
from ..core.text import numericalize_texts
from .distill import TeacherDistillation, TeacherVectors, _key

__all__ = ['ANCHOR_WEIGHT', 'LEXICAL_SCALES', 'choose_lexical_scale', 'fit_pair_map', 'finish_from_judgments', 'fit_score_map', 'start_from_judgments']

ANCHOR_WEIGHT = 10.  # the embedding term towards the start's vectors, as TEACHER_EMBEDDING_WEIGHT towards a teacher's
LEXICAL_SCALES = tuple(float(s) for s in 10. ** np.arange(-4., 0.01, 0.25))  # 1e-4 ... 1, four per decade
# fit_score_map's logits change by at most 20 per standard deviation of the dot products: never a step
SLOPE_BOUNDS = (float(np.log(1e-3)), float(np.log(20.)))


def fit_pair_map(query_features: torch.Tensor, doc_features: torch.Tensor, targets: torch.Tensor, dim: int | None = None,
                 steps: int | None = None, lr: float = 1e-3, max_pairs: int = 20_000, seed: int = 0, init: tuple | None = None,
                 valid: tuple | None = None, check_every: int = 10, patience: int = 200, history: list | None = None) -> tuple:
    """`(weight (p, dim), bias (dim,))`: the linear map x -> x @ weight + bias, shared by both sides, under which the
    cosine of each pair's mapped `query_features` and `doc_features` (n, p) matches `targets` (n,) (MSE, full-batch
    Adam at `lr`, starting from the identity on the centred features, or from the map `init` = `(weight, bias)`,
    e.g. a teacher start's, whose bias then trains too; at most `max_pairs` pairs, drawn with `seed`). `steps`
    defaults to 500, or to at most 2000 with `valid` = `(query_features, doc_features, targets)` of held-out pairs:
    then the map after the step (every `check_every`-th and the last, 0 included: the start itself) with the lowest
    MSE on them is returned (early stopping), and the fit stops once `patience` steps have not lowered it; a list
    `history` receives `(step, held-out MSE)` of every check.

    >>> x = torch.randn(200, 4); w, b = fit_pair_map(x, x + 0.1 * torch.randn(200, 4), torch.ones(200), steps=50)
    >>> w.shape, b.shape
    (torch.Size([4, 4]), torch.Size([4]))
    """
    if valid is not None and len(valid[2]) == 0: valid = None  # nothing held out: nothing to stop on
    if not isinstance(check_every, int) or check_every < 1:
        raise ValueError(f"check_every={check_every!r}: give a whole number of steps, 1 or more.")
    if steps is None: steps = 500 if valid is None else 2000  # without held-out pairs to stop it, 500 as measured
    if len(targets) > max_pairs:
        keep = torch.from_numpy(np.random.default_rng(seed).choice(len(targets), max_pairs, replace=False))
        query_features, doc_features, targets = query_features[keep], doc_features[keep], targets[keep]
    query_features, doc_features = query_features.float(), doc_features.float()
    targets = targets.float().to(query_features.device)
    mean = torch.cat([query_features, doc_features]).mean(dim=0)
    # pairs share texts (a document judged for many queries): map each distinct row once per step
    q, q_rows = torch.unique(query_features - mean, dim=0, return_inverse=True)
    d, d_rows = torch.unique(doc_features - mean, dim=0, return_inverse=True)
    if init is None:
        weight = torch.nn.Parameter(torch.eye(q.shape[1], dim or q.shape[1], device=q.device))
        bias = torch.zeros(weight.shape[1], device=q.device)  # (centred features: no bias to learn)
    else:  # the same map on the centred features: x @ w + b = (x - mean) @ w + (mean @ w + b)
        start_weight, start_bias = (t.detach().float().to(q.device) for t in init)
        weight = torch.nn.Parameter(start_weight.clone())
        bias = torch.nn.Parameter(mean @ start_weight + start_bias)
    held_out = None if valid is None else [t.float().to(q.device) for t in valid]
    if held_out is not None and len(held_out[2]) > max_pairs:
        keep = torch.from_numpy(np.random.default_rng(seed + 1).choice(len(held_out[2]), max_pairs, replace=False))
        held_out = [t[keep.to(t.device)] for t in held_out]
    if held_out is not None: held_out[0], held_out[1] = held_out[0] - mean, held_out[1] - mean

    def held_out_error() -> float:
        with torch.no_grad():
            cosines = F.cosine_similarity(held_out[0] @ weight + bias, held_out[1] @ weight + bias, dim=-1)
            return float(F.mse_loss(cosines, held_out[2]))
    best = (held_out_error(), weight.detach().clone(), bias.detach().clone(), 0) if held_out is not None else None
    if best is not None and history is not None: history.append((0, best[0]))
    optimizer = torch.optim.Adam([weight] + ([bias] if init is not None else []), lr=lr)
    with torch.enable_grad():
        for step in range(1, steps + 1):
            loss = F.mse_loss(F.cosine_similarity((q @ weight + bias)[q_rows], (d @ weight + bias)[d_rows], dim=-1), targets)
            optimizer.zero_grad(); loss.backward(); optimizer.step()
            if best is not None and (step % check_every == 0 or step == steps):
                error = held_out_error()
                if history is not None: history.append((step, error))
                if error < best[0]: best = (error, weight.detach().clone(), bias.detach().clone(), step)
                elif step - best[3] >= patience: break
    weight, bias = (weight.detach(), bias.detach()) if best is None else best[1:3]
    return weight, bias - mean @ weight


def _pooled(tower, texts: list, dls) -> torch.Tensor:
    "The tower's pooled word vectors of `texts` (raw, as the skip map reads them)."
    ids = numericalize_texts(list(texts), dls.tokenizer, dls.vocab)
    return tower.mean_embedding_of([torch.as_tensor(row) for row in ids])


def start_from_judgments(learn, pairs: pd.DataFrame | None = None, embedding_weight: float = ANCHOR_WEIGHT,
                         score_weight: float = 1., valid_pairs: pd.DataFrame | None = None, verbose: bool = False,
                         choose_lexical: bool = True, fit_scores: bool = True, pool=None, **fit_kwargs) -> TeacherDistillation | None:
    """Fits the dense vectors' skip map to the judged `pairs` (a frame with the learner's query, document and score
    columns, in the user's units; default: every training pair of `learn.dls`) with `fit_pair_map`, starting from the
    skip map already fitted (a teacher start's) if any, installs it in both projections, and returns the callback that
    keeps training near the start (the start's unit vector of every training text as a teacher: `embedding_weight` x
    embedding distillation and `score_weight` x Margin-MSE, see `TeacherDistillation`). With `valid_pairs` (held-out
    judged pairs, e.g. the validation rows) the fit stops where their error is lowest (`verbose=True` prints at which
    step, of how many run, and the held-out error at the start and there). With a lexical channel it then also sets
    the channel's weight (`choose_lexical_scale`, on `valid_pairs` when given, their queries ranking the documents of
    `pool`, e.g. the collection, and of both frames; `choose_lexical=False`: not). Last, the
    map from dot products to scores starts where the training pairs put it (`fit_score_map`; `fit_scores=False`:
    not). Needs the word pool's skip
    connection (`relevance_learner(word_pool=..., pool_skip=True)`). Returns None, changing nothing, when the pairs'
    scores do not vary (nothing to fit).

    >>> anchor = start_from_judgments(learn, triples[~triples['is_valid']], valid_pairs=triples[triples['is_valid']])  # doctest: +SKIP
    >>> with learn.added_cbs(anchor): fine_tune_relevance(learn)  # doctest: +SKIP
    """
    dls, model = learn.dls, learn.model
    head = model.head
    if not isinstance(head.query_proj, SkipProjection) or not model.doc_tower.word_pool:
        raise ValueError("start_from_judgments fits the word pool's skip map: build the learner with word_pool=... "
                         "and pool_skip=True (train_relevance_model does with word vectors).")
    if pairs is None: pairs = dls.train_ds.items
    targets = _targets(pairs, dls, 'pairs')
    if valid_pairs is not None and len(valid_pairs): valid_targets = _targets(valid_pairs, dls, 'valid_pairs')
    else: valid_pairs = None
    if len(pairs) < 2 or float(targets.max() - targets.min()) == 0: return None
    was_training = model.training
    model.eval()
    try:
        query_features = _pooled(model.query_tower, pairs[dls.query_col].tolist(), dls)
        doc_features = _pooled(model.doc_tower, pairs[dls.doc_col].tolist(), dls)
        if head.query_proj.fitted: fit_kwargs.setdefault('init', (head.query_proj.skip_weight, head.query_proj.skip_bias))
        if valid_pairs is not None:
            fit_kwargs.setdefault('valid', (_pooled(model.query_tower, valid_pairs[dls.query_col].tolist(), dls),
                                            _pooled(model.doc_tower, valid_pairs[dls.doc_col].tolist(), dls), valid_targets))
        history = fit_kwargs.setdefault('history', []) if verbose and 'valid' in fit_kwargs else None
        weight, bias = fit_pair_map(query_features, doc_features, targets, dim=head.dense_features, **fit_kwargs)
        if history:
            best_step, best_error = min(history, key=lambda check: check[1])
            print(f"relcollab: judgment start: the validation pairs' error was lowest after step {best_step} of the "
                  f"{history[-1][0]} run ({history[0][1]:.4f} at the start, {best_error:.4f} there)", flush=True)
        features = torch.cat([query_features, doc_features])
        for proj in (head.query_proj, head.doc_proj): proj.fit_map_at_skip_length(features, weight, bias)
        if hasattr(model, 'hparams') and model.hparams.get('pool_skip'): model.hparams['pool_map'] = True
        anchor = _start_vectors(model, dls, weight, bias)
    finally:
        model.train(was_training)
    if choose_lexical and head.n_lexical:
        judged = pairs if valid_pairs is None else valid_pairs
        scale = choose_lexical_scale(learn, judged, pool=_pool(pool, dls, pairs, valid_pairs))
        if verbose and scale is not None:
            how = {'ndcg': "nDCG@10 of their queries' rankings", 'pearson': "Pearson with their scores"}[_lexical_criterion(judged, dls)]
            print(f"relcollab: judgment start: the lexical channel's weight beside the dense cosine is {scale:.2g} "
                  f"(best on the {'training' if valid_pairs is None else 'validation'} pairs: {how})", flush=True)
    if fit_scores:
        fitted = fit_score_map(learn, pairs)
        if verbose and fitted is not None:
            print(f"relcollab: judgment start: score = sigmoid({fitted[0]:.3g} x query . document {fitted[1]:+.3g}) on "
                  f"the score range, fitted to the training pairs", flush=True)
    return TeacherDistillation(anchor, embedding_weight=embedding_weight, score_weight=score_weight, always_map=False)


def choose_lexical_scale(learn, pairs: pd.DataFrame, scales=LEXICAL_SCALES, criterion: str = 'auto', pool=None,
                         max_pairs: int = 5000, max_pool: int = 5000, seed: int = 0) -> float | None:
    """Sets the lexical channel's weight beside the dense cosine (the head's `lexical_scale`) to the one of `scales`
    under which query . document, dense cosine + weight x term-weight product, best fits the judged `pairs`, and
    returns it; None, changing nothing, for a model without a lexical channel or pairs that cannot tell (fewer than
    2, or scores or products that do not vary).

    `criterion`: 'pearson', the correlation of the pairs' products with their scores (at most `max_pairs` pairs, a
    seeded sample); 'ndcg', how each query of `pairs` ranks the documents of `pool` and its
    own judged documents (default: the documents of `pairs`; pass the collection; at most `max_pool`, the judged
    ones always) by nDCG@10, its judged documents' scores as gains, averaged
    over each weight and its two neighbours on the grid (a few dozen queries are a noisy judge); 'auto' (default): 'ndcg'
    when most queries of `pairs` have several documents (a ranking task, as Cranfield's), else 'pearson' (one pair
    per query, as SICK's sentence pairs).

    BM25's products run to tens while cosines stay within 1, so the weight decides which of the two the model reads:
    on SICK's sentence pairs, left at its start (0.1) under the teacher's learning rate, the channel pulled the pair
    score's Spearman from the dense cosine's 0.778 to 0.633 (README, The lexical channel).

    >>> choose_lexical_scale(learn, triples[triples['is_valid']])  # doctest: +SKIP
    0.0056
    """
    head, dls = learn.model.head, learn.dls
    if criterion not in ('auto', 'pearson', 'ndcg'):
        raise ValueError(f"choose_lexical_scale: criterion={criterion!r}; pass 'auto', 'pearson' or 'ndcg'.")
    if not head.n_lexical or len(pairs) < 2: return None
    if criterion == 'auto': criterion = _lexical_criterion(pairs, dls)
    quality = _ranking_quality if criterion == 'ndcg' else _pair_correlation
    qualities = quality(learn, pairs, np.asarray(scales, dtype=np.float64), pool=pool, max_pairs=max_pairs,
                        max_pool=max_pool, seed=seed)
    if qualities is None: return None
    best = float(scales[int(np.argmax(qualities))])
    with torch.no_grad(): head.log_lexical_scale.fill_(float(np.log(best)))
    return best


def finish_from_judgments(learn, pairs: pd.DataFrame, valid_pairs: pd.DataFrame | None = None, choose_lexical: bool = True,
                          fit_scores: bool = True, pool=None, verbose: bool = False) -> None:
    """After relevance training, what the judgment start set is set again for the trained towers: the lexical channel's
    weight beside the dense cosine (`choose_lexical_scale` on `valid_pairs`, else on `pairs`, over the documents of
    `pool` and of both frames; `choose_lexical=False`: not) and then the map from dot products to scores
    (`fit_score_map`; `fit_scores=False`: not), on `valid_pairs` too when given: held-out pairs, as temperature
    scaling calibrates a classifier on its validation set, because the training pairs, which the towers have learned,
    are separated far more sharply than any unseen pair will be (on Cranfield the training pairs asked for logits
    that change by 20 per standard deviation of the dot products, the most `SLOPE_BOUNDS` allows). The towers'
    vectors stay as trained; so does the order of their scores.

    >>> fine_tune_relevance(learn)  # doctest: +SKIP
    >>> finish_from_judgments(learn, triples[~triples['is_valid']], valid_pairs=triples[triples['is_valid']])  # doctest: +SKIP
    """
    was_training = learn.model.training
    learn.model.eval()
    try:
        if choose_lexical and learn.model.head.n_lexical:
            judged = pairs if valid_pairs is None or not len(valid_pairs) else valid_pairs
            before = learn.model.head.log_lexical_scale.exp().item()
            scale = choose_lexical_scale(learn, judged, pool=_pool(pool, learn.dls, pairs, valid_pairs))
            if verbose and scale is not None:
                print(f"relcollab: judgment finish: the lexical channel's weight is {scale:.2g} (was {before:.2g})", flush=True)
        if fit_scores:
            held_out = valid_pairs is not None and len(valid_pairs) > 0
            fitted = fit_score_map(learn, valid_pairs if held_out else pairs)
            if fitted is not None: learn.score_map_pairs = 'validation' if held_out else 'training'  # for reports
            if verbose and fitted is not None:
                print(f"relcollab: judgment finish: score = sigmoid({fitted[0]:.3g} x query . document {fitted[1]:+.3g}) "
                      f"on the score range, fitted to the {'validation' if held_out else 'training'} pairs", flush=True)
    finally:
        learn.model.train(was_training)


def fit_score_map(learn, pairs: pd.DataFrame, max_pairs: int = 20_000, seed: int = 0) -> tuple | None:
    """Sets the head's map from dot products to scores, score = sigmoid_range(scale x query . document + bias), to
    the one whose scores of the judged `pairs` (at most `max_pairs`, a seeded sample) are closest to theirs (MSE,
    L-BFGS over the two numbers), and returns `(scale, bias)`; None, changing nothing, when the pairs cannot tell
    (fewer than 2, scores or dot products that do not vary, or dot products that fall as the scores rise). The
    order of the model's scores stays as it was (scale > 0; the logits change by at most 20 per standard deviation of
    the dot products, `SLOPE_BOUNDS`): only how they read on the user's scale changes.

    The judgment start makes the dense cosine of a judged pair near its score on [0, 1], but the untrained map
    (scale 1, the bias at the training mean) reads every cosine as a score near that mean, and relevance training did
    not undo it: with BM25's term weights fixed, the demo's rmse rose from 1.063 to 1.293 (README, The lexical
    channel).

    >>> scale, bias = fit_score_map(learn, triples[~triples['is_valid']])  # doctest: +SKIP
    """
    head, dls = learn.model.head, learn.dls
    if len(pairs) < 2: return None
    if len(pairs) > max_pairs: pairs = pairs.sample(max_pairs, random_state=seed)
    targets = _targets(pairs, dls, 'pairs').double()
    cosines, lexical = _pair_products(learn, pairs)
    dots = cosines if lexical is None else cosines + lexical * head.log_lexical_scale.exp().item()
    if float(targets.max() - targets.min()) == 0 or np.ptp(dots) == 0: return None
    if np.corrcoef(dots, targets.numpy())[0, 1] <= 0: return None  # a map that keeps the order cannot follow them
    # fitted on the standardized dot products (a well-conditioned problem), then mapped back: scale > 0 keeps the order
    mean, spread = float(dots.mean()), float(dots.std())
    standard = torch.as_tensor((dots - mean) / spread, dtype=torch.float64)
    log_slope = (head.log_scale.detach().double() + np.log(spread)).clone().requires_grad_()
    intercept = (head.bias.detach().double() + head.log_scale.exp().item() * mean).clone().requires_grad_()
    optimizer = torch.optim.LBFGS([log_slope, intercept], max_iter=500, tolerance_grad=1e-12, tolerance_change=1e-15,
                                  line_search_fn='strong_wolfe')
    def closure():
        optimizer.zero_grad()
        slope = log_slope.clamp(*SLOPE_BOUNDS).exp()
        loss = F.mse_loss(sigmoid_range(standard * slope + intercept, *head.y_range), targets)
        loss.backward()
        return loss
    optimizer.step(closure)
    if not (torch.isfinite(log_slope).all() and torch.isfinite(intercept).all()): return None
    log_slope, intercept = log_slope.detach(), intercept.detach()
    scale = float(log_slope.clamp(*SLOPE_BOUNDS).exp()) / spread
    with torch.no_grad():
        head.log_scale.fill_(float(np.log(scale))); head.bias.fill_(float(intercept) - scale * mean)
    return scale, float(head.bias.detach())


def _pool(pool, dls, *frames) -> list:
    "The documents a query ranks when the lexical weight is chosen: `pool` (e.g. the collection) and those of the judged `frames`."
    return list(dict.fromkeys([*(pool if pool is not None else ()),
                               *(doc for frame in frames if frame is not None for doc in frame[dls.doc_col])]))


def _lexical_criterion(pairs: pd.DataFrame, dls) -> str:
    "'ndcg' when most queries of `pairs` have several distinct documents (a ranking task), else 'pearson'."
    return 'ndcg' if pairs.groupby(dls.query_col, sort=False)[dls.doc_col].nunique().median() >= 2 else 'pearson'


def _both_parts(learn, texts: list, side: str) -> tuple:
    """The dense vectors (n, d) and the lexical term weights (a sparse (n, vocab) matrix, without the current weight;
    None for a model without the lexical channel) of `texts`."""
    if not learn.model.head.n_lexical:
        return learn.encode(texts, side=side, progress=False).astype(np.float64), None
    vectors = learn.encode(texts, side=side, output='both', progress=False)
    lexical = vectors.lexical.astype(np.float64)
    if side == 'query': lexical = lexical / learn.model.head.log_lexical_scale.exp().item()  # the query side carries the weight
    return vectors.dense.astype(np.float64), lexical


def _pair_products(learn, pairs: pd.DataFrame) -> tuple:
    "Each pair's dense cosine and lexical product without the current weight (None without the lexical channel)."
    query_dense, query_lexical = _both_parts(learn, pairs[learn.dls.query_col].tolist(), 'query')
    doc_dense, doc_lexical = _both_parts(learn, pairs[learn.dls.doc_col].tolist(), 'doc')
    cosines = (query_dense * doc_dense).sum(axis=1)
    return cosines, None if query_lexical is None else np.asarray(query_lexical.multiply(doc_lexical).sum(axis=1)).ravel()


def _pair_correlation(learn, pairs, scales, max_pairs, seed, **_) -> np.ndarray | None:
    "Pearson of each pair's dense cosine + scale x lexical product with its score, for each of `scales`."
    dls = learn.dls
    if len(pairs) > max_pairs: pairs = pairs.sample(max_pairs, random_state=seed)
    targets = _targets(pairs, dls, 'pairs').numpy().astype(np.float64)
    cosines, lexical = _pair_products(learn, pairs)
    if np.ptp(targets) == 0 or (np.ptp(cosines) == 0 and np.ptp(lexical) == 0): return None
    combined = cosines[None] + scales[:, None] * lexical[None]
    return np.array([-np.inf if np.ptp(row) == 0 else np.corrcoef(row, targets)[0, 1] for row in combined])


def _ranking_quality(learn, pairs, scales, pool, max_pool, seed, k: int = 10, **_) -> np.ndarray | None:
    """Mean nDCG@`k` (linear gains: the judged scores on [0, 1]) of each query of `pairs` ranking the documents of
    `pool` by dense cosine + scale x lexical product, for each of `scales`, averaged with the grid's neighbours."""
    dls = learn.dls
    pool = pd.Series(_pool(pool, dls, pairs), dtype=object)
    pairs = pairs.assign(_gain=_targets(pairs, dls, 'pairs').numpy().astype(np.float64))
    gains = pairs[pairs['_gain'] > 0].groupby([dls.query_col, dls.doc_col], sort=False)['_gain'].max()
    if gains.empty: return None
    judged = gains.index.get_level_values(1).unique()
    others = pool[~pool.isin(judged)]
    if len(judged) + len(others) > max_pool: others = others.sample(max(max_pool - len(judged), 0), random_state=seed)
    docs = list(judged) + others.tolist()
    queries = list(gains.index.get_level_values(0).unique())
    column_of, row_of = {doc: j for j, doc in enumerate(docs)}, {query: i for i, query in enumerate(queries)}
    gain = np.zeros((len(queries), len(docs)))
    for (query, doc), value in gains.items(): gain[row_of[query], column_of[doc]] = value
    query_dense, query_lexical = _both_parts(learn, queries, 'query')
    doc_dense, doc_lexical = _both_parts(learn, docs, 'doc')
    cosines, lexical = query_dense @ doc_dense.T, (query_lexical @ doc_lexical.T).toarray()
    if np.ptp(cosines) == 0 and np.ptp(lexical) == 0: return None
    k = min(k, len(docs))
    discounts = 1 / np.log2(np.arange(2, k + 2))
    ideal = -np.sort(-gain, axis=1)[:, :k] @ discounts
    def ndcg(scores):
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
        top = np.take_along_axis(top, np.argsort(-np.take_along_axis(scores, top, axis=1), axis=1, kind='stable'), axis=1)
        return float(np.mean(np.take_along_axis(gain, top, axis=1) @ discounts / ideal))
    qualities = np.array([ndcg(cosines + scale * lexical) for scale in scales])
    return np.convolve(np.pad(qualities, 1, mode='edge'), np.ones(3) / 3, mode='valid')


def _targets(pairs: pd.DataFrame, dls, name: str) -> torch.Tensor:
    "The pairs' scores on [0, 1] as the learner scales them; missing or non-numeric scores are a clear error."
    scores = pd.to_numeric(pairs[dls.score_col], errors='coerce').to_numpy(dtype=float)
    if not np.isfinite(scores).all():
        raise ValueError(f"start_from_judgments: {int((~np.isfinite(scores)).sum())} of the {name}' scores ({dls.score_col!r}) "
                         "are missing or not numbers; check the rows with relcollab.check_triples first.")
    # outside the learner's score range a target is out of a cosine's reach: the nearest end of [0, 1]
    return torch.as_tensor(np.clip(np.asarray(dls.score_scaler(scores), dtype=np.float32), 0., 1.))


def _start_vectors(model, dls, weight: torch.Tensor, bias: torch.Tensor) -> TeacherVectors:
    "The start's unit vector of every training text of `dls` (queries by the query tower, documents by the document tower)."
    items = dls.train_ds.items
    keys, vectors = {}, []
    for column, tower in ((dls.query_col, model.query_tower), (dls.doc_col, model.doc_tower)):
        texts = list(dict.fromkeys(items[column].tolist()))
        ids = [torch.as_tensor(row) for row in numericalize_texts(texts, dls.tokenizer, dls.vocab)]
        new = [row for row in ids if _key(row) not in keys]
        if not new: continue
        for row, vector in zip(new, F.normalize(tower.mean_embedding_of(new) @ weight + bias, dim=-1)):
            if _key(row) not in keys: keys[_key(row)] = len(vectors); vectors.append(vector)
    return TeacherVectors(list(keys), torch.stack(vectors).cpu().numpy())
