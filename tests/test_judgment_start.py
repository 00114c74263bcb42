"""The judgment start (`relcollab.training.judgment_start`): without a teacher, the dense vectors start as the map of the
pooled word vectors fitted to the judgments, and training keeps near it."""
import numpy as np
import pandas as pd
from scipy.stats import spearmanr
import pytest
import torch
import torch.nn.functional as F

from fastai.torch_core import set_seed

from conftest import TINY, make_pairs, torch_threads
from relcollab.core.text import numericalize_texts
from relcollab.training.distill import TeacherDistillation
import relcollab.training.judgment_start as judgment_start_module
from relcollab.training.judgment_start import (LEXICAL_SCALES, choose_lexical_scale, finish_from_judgments, fit_pair_map,
                                              fit_score_map, start_from_judgments)
from relcollab.training.learner import relevance_learner
from test_word_pool import DIM, _dls, _mapping


def _cosine_error(q, d, targets, weight=None, bias=0.):
    if weight is not None: q, d = q @ weight + bias, d @ weight + bias
    return float(F.mse_loss(F.cosine_similarity(q, d, dim=-1), targets))


def test_fit_pair_map_learns_the_map_under_which_cosines_are_the_scores():
    rng = np.random.default_rng(0)
    q, d = (torch.tensor(rng.normal(size=(400, 6)), dtype=torch.float32) for _ in range(2))
    hidden = torch.tensor(rng.normal(size=(6, 6)) * np.array([3., 2., 1., .1, .1, .1]), dtype=torch.float32)
    targets = F.cosine_similarity(q @ hidden, d @ hidden, dim=-1)
    weight, bias = fit_pair_map(q, d, targets, steps=1000, lr=1e-2)
    assert weight.shape == (6, 6) and bias.shape == (6,)
    # the identity (the plain word pool) is far from the scores; the fitted map is close, on pairs it never saw too
    assert _cosine_error(q, d, targets, weight, bias) < 0.1 * _cosine_error(q, d, targets)
    q2, d2 = (torch.tensor(rng.normal(size=(200, 6)), dtype=torch.float32) for _ in range(2))
    unseen = F.cosine_similarity(q2 @ hidden, d2 @ hidden, dim=-1)
    assert _cosine_error(q2, d2, unseen, weight, bias) < 0.2 * _cosine_error(q2, d2, unseen)
    assert fit_pair_map(q, d, targets, dim=3, steps=1)[0].shape == (6, 3)  # to another size: the leading dimensions
    # past max_pairs, a seeded sample of the pairs is fitted
    sampled = fit_pair_map(q, d, targets, steps=20, lr=1e-2, max_pairs=100)
    torch.testing.assert_close(sampled[0], fit_pair_map(q, d, targets, steps=20, lr=1e-2, max_pairs=100)[0])
    assert not torch.allclose(sampled[0], fit_pair_map(q, d, targets, steps=20, lr=1e-2)[0])


def test_fit_pair_map_refines_a_given_map():
    "From `init` (e.g. the teacher start's map), not the identity: 0 steps give the same map back, steps improve it."
    rng = np.random.default_rng(1)
    q, d = (torch.tensor(rng.normal(size=(300, 5)) + 2., dtype=torch.float32) for _ in range(2))
    hidden = torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32)
    targets = F.cosine_similarity(q @ hidden, d @ hidden, dim=-1)
    init = (torch.tensor(rng.normal(size=(5, 4)), dtype=torch.float32), torch.tensor(rng.normal(size=4), dtype=torch.float32))
    same = fit_pair_map(q, d, targets, steps=0, init=init)
    torch.testing.assert_close(q @ same[0] + same[1], q @ init[0] + init[1], atol=1e-5, rtol=1e-5)
    weight, bias = fit_pair_map(q, d, targets, steps=300, lr=1e-2, init=init)
    assert weight.shape == (5, 4) and bias.shape == (4,)
    assert _cosine_error(q, d, targets, weight, bias) < 0.3 * _cosine_error(q, d, targets, *init)


def test_fit_pair_map_stops_where_held_out_pairs_say():
    "With `valid` pairs, the map of the step with the lowest held-out error comes back, the start included."
    rng = np.random.default_rng(3)
    q, d, q2, d2 = (torch.tensor(rng.normal(size=(300, 5)), dtype=torch.float32) for _ in range(4))
    hidden = torch.tensor(rng.normal(size=(5, 5)), dtype=torch.float32)
    targets = F.cosine_similarity(q @ hidden, d @ hidden, dim=-1)
    init = (torch.eye(5) + 0.3 * torch.tensor(rng.normal(size=(5, 5)), dtype=torch.float32), torch.zeros(5))
    # held-out pairs the start already scores exactly: every step only moves away, so the start comes back
    exact = F.cosine_similarity(q2 @ init[0], d2 @ init[0], dim=-1)
    weight, bias = fit_pair_map(q, d, targets, steps=100, lr=1e-2, init=init, valid=(q2, d2, exact))
    torch.testing.assert_close(q2 @ weight + bias, q2 @ init[0] + init[1], atol=1e-5, rtol=1e-5)
    # held-out pairs of the same kind as the training pairs: the fit goes on, and is at least as good there as the last step
    agreeing = F.cosine_similarity(q2 @ hidden, d2 @ hidden, dim=-1)
    stopped = fit_pair_map(q, d, targets, steps=100, lr=1e-2, init=init, valid=(q2, d2, agreeing))
    last = fit_pair_map(q, d, targets, steps=100, lr=1e-2, init=init)
    assert _cosine_error(q2, d2, agreeing, *stopped) <= _cosine_error(q2, d2, agreeing, *last) + 1e-6
    assert _cosine_error(q2, d2, agreeing, *stopped) < 0.5 * _cosine_error(q2, d2, agreeing, *init)
    # the last step is checked too when it is not a multiple of check_every (here the best: the error falls throughout)
    torch.testing.assert_close(fit_pair_map(q, d, targets, steps=25, lr=1e-2, init=init, valid=(q2, d2, agreeing))[0],
                               fit_pair_map(q, d, targets, steps=25, lr=1e-2, init=init)[0])
    # an empty held-out set is no held-out set; a bad check_every is a clear error
    torch.testing.assert_close(fit_pair_map(q, d, targets, steps=20, init=init, valid=(q2[:0], d2[:0], agreeing[:0]))[0],
                               fit_pair_map(q, d, targets, steps=20, init=init)[0])
    with pytest.raises(ValueError, match='check_every=0'):
        fit_pair_map(q, d, targets, valid=(q2, d2, agreeing), check_every=0)


def test_fit_pair_map_gives_up_after_patience_steps_without_progress(monkeypatch):
    "Once `patience` steps have not lowered the held-out error, the fit stops (without held-out pairs it runs 500)."
    rng = np.random.default_rng(4)
    q, d, q2, d2 = (torch.tensor(rng.normal(size=(100, 4)), dtype=torch.float32) for _ in range(4))
    targets = torch.rand(100)
    init = (torch.eye(4), torch.zeros(4))
    exact = F.cosine_similarity(q2, d2, dim=-1)  # the start is exact on them: no step can improve
    steps, step = [], torch.optim.Adam.step
    monkeypatch.setattr(torch.optim.Adam, 'step', lambda self, *a, **k: steps.append(1) or step(self, *a, **k))
    history = []
    fit_pair_map(q, d, targets, lr=1e-2, init=init, valid=(q2, d2, exact), patience=30, history=history)
    assert len(steps) == 30
    assert [step for step, _ in history] == [0, 10, 20, 30] and history[0][1] < 1e-10 < min(e for _, e in history[1:])
    steps.clear(); fit_pair_map(q, d, targets, lr=1e-2)
    assert len(steps) == 500


def test_start_from_judgments_stops_on_the_valid_pairs_it_is_given(tmp_path, monkeypatch):
    "valid_pairs reach fit_pair_map as held-out features and scaled targets; none or an empty frame: no early stopping."
    import relcollab.training.judgment_start as judgment_start
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=True)
    train, valid = df[~df['is_valid']], df[df['is_valid']]
    seen, fit = [], judgment_start.fit_pair_map
    monkeypatch.setattr(judgment_start, 'fit_pair_map', lambda *a, **k: seen.append(k.get('valid')) or fit(*a, **{**k, 'steps': 5}))
    with torch_threads(1):
        start_from_judgments(learn, train, valid_pairs=valid)
        start_from_judgments(learn, train, valid_pairs=valid.iloc[:0])
        start_from_judgments(learn, train)
    q, d, targets = seen[0]
    assert q.shape == d.shape == (len(valid), q.shape[1]) and len(targets) == len(valid)
    torch.testing.assert_close(targets, torch.tensor(dls.score_scaler(valid['score'].to_numpy(dtype=float)), dtype=torch.float32))
    assert seen[1:] == [None, None]
    with pytest.raises(ValueError, match="1 of the valid_pairs' scores"):
        start_from_judgments(learn, train, valid_pairs=valid.assign(score=valid['score'].where(valid.index != valid.index[0])))


def test_start_from_judgments_refines_a_fitted_skip_map(tmp_path):
    "After a teacher start (a fitted skip map), the judgments refine that map rather than start from the identity."
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=True)
    train = df[~df['is_valid']]
    rng = np.random.default_rng(2)
    start = (torch.tensor(rng.normal(size=(DIM, DIM)), dtype=torch.float32), torch.tensor(rng.normal(size=DIM), dtype=torch.float32))
    for proj in (learn.model.head.query_proj, learn.model.head.doc_proj): proj.fit_map(*start)
    texts = train['doc'].tolist()[:8]
    with torch_threads(1):
        before = learn.encode(texts, side='doc', progress=False)[:, :DIM]
        start_from_judgments(learn, train, steps=0)  # no steps: the map is the one it found
        np.testing.assert_allclose(learn.encode(texts, side='doc', progress=False)[:, :DIM], before, atol=1e-4)
        start_from_judgments(learn, train, steps=50, lr=1e-2)
        assert not np.allclose(learn.encode(texts, side='doc', progress=False)[:, :DIM], before, atol=1e-3)


def test_start_from_judgments_installs_the_fitted_map_and_anchors_training_on_it(tmp_path):
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=True)
    train = df[~df['is_valid']]
    queries, docs = train['query'].tolist(), train['doc'].tolist()
    targets = torch.tensor(dls.score_scaler(train['score'].to_numpy(dtype=float)), dtype=torch.float32)

    def dense_cosines():
        with torch_threads(1):
            q = learn.encode(queries, side='query', progress=False)[:, :DIM]
            d = learn.encode(docs, side='doc', progress=False)[:, :DIM]
        return torch.tensor(q), torch.tensor(d)

    before = _cosine_error(*dense_cosines(), targets)
    with torch_threads(1): anchor = start_from_judgments(learn, train, steps=300, lr=1e-2)
    q, d = dense_cosines()
    assert _cosine_error(q, d, targets) < 0.7 * before  # the dense cosines now follow the training scores (0.60 -> 0.34)
    for proj in (learn.model.head.query_proj, learn.model.head.doc_proj): assert proj.fitted
    assert learn.model.hparams['pool_map']  # a saved copy rebuilds the fixed map
    # the callback's targets are the start's own unit vectors, which the untrained model encodes
    assert isinstance(anchor, TeacherDistillation) and not anchor.always_map and anchor.embedding_weight == 10
    pad = learn.model.doc_tower.encoder.pad_idx
    tokens = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(t) for t in numericalize_texts(docs[:5], dls.tokenizer, dls.vocab)],
                                             batch_first=True, padding_value=pad)
    wanted, found = anchor.vectors.lookup(tokens, pad)
    assert bool(found.all())
    torch.testing.assert_close(wanted, F.normalize(d[:5], dim=-1), atol=1e-4, rtol=1e-4)
    tokens = torch.nn.utils.rnn.pad_sequence([torch.as_tensor(t) for t in numericalize_texts(queries[:5], dls.tokenizer, dls.vocab)],
                                             batch_first=True, padding_value=pad)
    torch.testing.assert_close(anchor.vectors.lookup(tokens, pad)[0], F.normalize(q[:5], dim=-1), atol=1e-4, rtol=1e-4)


def _term_products(learn, pairs) -> np.ndarray:
    "Each pair's lexical product (BM25), without the query side's weight."
    with torch_threads(1):
        q = learn.encode(pairs['query'].tolist(), side='query', output='lexical', progress=False)
        d = learn.encode(pairs['doc'].tolist(), side='doc', output='lexical', progress=False)
    return np.asarray(q.multiply(d).sum(axis=1)).ravel() / learn.model.head.log_lexical_scale.exp().item()


def test_choose_lexical_scale_follows_what_the_judgments_say_about_shared_words(tmp_path):
    "Scores that rise with BM25 ask for the largest weight, scores that fall with it for the smallest; the head keeps it."
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM)
    products = _term_products(learn, df)
    assert np.ptp(products) > 1  # shared words vary: a real choice
    lo, hi = dls.score_scaler.lo, dls.score_scaler.hi
    follows = lo + (hi - lo) * (products - products.min()) / np.ptp(products)
    with torch_threads(1):
        assert choose_lexical_scale(learn, df.assign(score=follows)) == LEXICAL_SCALES[-1] == 1.
        assert learn.model.head.log_lexical_scale.exp().item() == pytest.approx(1.)
        assert choose_lexical_scale(learn, df.assign(score=hi + lo - follows)) == LEXICAL_SCALES[0] == 1e-4
        assert learn.model.head.log_lexical_scale.exp().item() == pytest.approx(1e-4)
        assert choose_lexical_scale(learn, df.assign(score=2.)) is None  # nothing to tell
        assert learn.model.head.log_lexical_scale.exp().item() == pytest.approx(1e-4)
        assert choose_lexical_scale(relevance_learner(dls, config=TINY, proj_sz=DIM, lexical=False), df) is None


def _rankings(df, learn, judged_by, queries=12, per_query=3):
    """For `queries` of `df`'s queries, `per_query` judged documents (score hi) of the pool of `df`'s documents: the
    ones with the largest BM25 product (`judged_by='bm25'`) or the smallest ('least')."""
    docs = list(dict.fromkeys(df['doc']))
    rows = []
    for query in list(dict.fromkeys(df['query']))[:queries]:
        products = _term_products(learn, pd.DataFrame({'query': [query] * len(docs), 'doc': docs}))
        order = np.argsort(-products if judged_by == 'bm25' else products, kind='stable')
        rows += [(query, docs[i], learn.dls.score_scaler.hi) for i in order[:per_query]]
    return pd.DataFrame(rows, columns=['query', 'doc', 'score'])


def test_choose_lexical_scale_ranks_the_pool_when_queries_have_several_documents(tmp_path):
    "Judged documents that BM25 ranks first ask for the largest weight; the ones it ranks last for a small one."
    df, dls = _dls(tmp_path, n=120)
    set_seed(0, reproducible=True)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM)
    with torch_threads(1):
        follows, against = _rankings(df, learn, 'bm25'), _rankings(df, learn, 'least')
        assert judgment_start_module._lexical_criterion(follows, dls) == 'ndcg'  # 3 documents per query
        assert judgment_start_module._lexical_criterion(df, dls) == 'pearson'  # (almost) one pair per query
        def qualities(pairs): return judgment_start_module._ranking_quality(learn, pairs, np.asarray(LEXICAL_SCALES),
                                                                            pool=df['doc'], max_pool=5000, seed=0)
        assert qualities(follows)[-1] > 0.9 > qualities(follows)[0]  # near BM25's own order: nDCG@10 near 1
        assert choose_lexical_scale(learn, follows, pool=df['doc']) > 0.1
        assert qualities(against)[-1] == 0 < qualities(against).max()  # BM25 fills the top 10 with unjudged documents
        assert choose_lexical_scale(learn, against, pool=df['doc']) < 0.1
        assert learn.model.head.log_lexical_scale.exp().item() < 0.1
        # the same pairs by Pearson: every judged pair has the same score, nothing to tell
        assert choose_lexical_scale(learn, follows, criterion='pearson') is None
        with pytest.raises(ValueError, match="criterion='spearman'"):
            choose_lexical_scale(learn, follows, criterion='spearman')


def test_fit_score_map_reads_the_dot_products_on_the_judgments_scale(tmp_path):
    "Scores made by a known map of the dot products: the fit finds that map, and the order of the scores stays."
    df, dls = _dls(tmp_path, n=120)
    set_seed(0, reproducible=True)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM)
    learn.model.eval()
    with torch_threads(1), torch.no_grad():
        before = learn.score_pairs(df).astype(np.float64)
        lo, hi = dls.score_scaler.lo, dls.score_scaler.hi
        dots = torch.logit(torch.as_tensor((before - lo) / (hi - lo)).clamp(1e-6, 1 - 1e-6))
        dots = (dots - learn.model.head.bias.item()) / learn.model.head.log_scale.exp().item()  # the model's query . doc
        scale, bias = 7., -2.
        wanted = lo + (hi - lo) * torch.sigmoid(scale * dots + bias).numpy()
        assert fit_score_map(learn, df.assign(score=wanted)) == (pytest.approx(scale, rel=1e-3), pytest.approx(bias, abs=1e-3))
        after = learn.score_pairs(df).astype(np.float64)
        np.testing.assert_allclose(after, wanted, atol=1e-3)
        assert spearmanr(after, before).statistic > 0.999  # the same order
        assert fit_score_map(learn, df.assign(score=2.)) is None  # nothing to tell
        assert fit_score_map(learn, df.assign(score=hi + lo - wanted)) is None  # only a reversed order would follow
        assert learn.model.head.log_scale.exp().item() == pytest.approx(scale, rel=1e-3)
        steep = lo + (hi - lo) * (dots > dots.median()).double().numpy()  # a step: the slope stops at its bound
        scale_bound = np.exp(judgment_start_module.SLOPE_BOUNDS[1]) / float(dots.double().std())
        assert fit_score_map(learn, df.assign(score=steep))[0] == pytest.approx(scale_bound, rel=1e-2)
    # a model without the lexical channel: its dot products are the dense cosines
    plain = relevance_learner(dls, config=TINY, proj_sz=DIM, lexical=False)
    with torch_threads(1):
        queries, _ = judgment_start_module._both_parts(plain, df['query'].tolist(), 'query')
        docs, _ = judgment_start_module._both_parts(plain, df['doc'].tolist(), 'doc')
        cosines = torch.as_tensor((queries * docs).sum(axis=1))
        standard = (cosines - cosines.mean()) / cosines.std()
        assert fit_score_map(plain, df.assign(score=lo + (hi - lo) * torch.sigmoid(2 * standard).numpy()))[0] == \
            pytest.approx(2 / float(cosines.std()), rel=1e-2)


def test_finish_from_judgments_chooses_the_weight_again_then_fits_the_scores(tmp_path, monkeypatch, capsys):
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM)
    train, valid = df[~df['is_valid']], df[df['is_valid']]
    calls = []
    monkeypatch.setattr(judgment_start_module, 'choose_lexical_scale', lambda learn, pairs, **kw: calls.append(('weight', len(pairs))) or 0.01)
    monkeypatch.setattr(judgment_start_module, 'fit_score_map', lambda learn, pairs: calls.append(('scores', len(pairs))) or (5., -1.))
    with torch_threads(1):
        finish_from_judgments(learn, train, valid_pairs=valid, verbose=True)
        finish_from_judgments(learn, train, choose_lexical=False)
        finish_from_judgments(learn, train, fit_scores=False)
    # both on the held-out pairs when given, else on the training pairs
    assert calls == [('weight', len(valid)), ('scores', len(valid)), ('scores', len(train)), ('weight', len(train))]
    out = capsys.readouterr().out
    assert "judgment finish: the lexical channel's weight is 0.01" in out
    assert 'sigmoid(5 x query . document -1) on the score range, fitted to the validation pairs' in out
    assert learn.model.training  # back in the mode it was in
    assert learn.score_map_pairs == 'training'  # the last call's map: no validation pairs given


def test_start_from_judgments_chooses_the_lexical_weight_on_the_valid_pairs(tmp_path, monkeypatch):
    import relcollab.training.judgment_start as judgment_start
    df, dls = _dls(tmp_path, n=120)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=True)
    train, valid = df[~df['is_valid']], df[df['is_valid']]
    seen = []
    monkeypatch.setattr(judgment_start, 'choose_lexical_scale', lambda learn, pairs, **kw: seen.append(pairs) or 0.01)
    with torch_threads(1):
        start_from_judgments(learn, train, valid_pairs=valid, steps=5)
        start_from_judgments(learn, train, steps=5)
        start_from_judgments(learn, train, steps=5, choose_lexical=False)
    assert [len(pairs) for pairs in seen] == [len(valid), len(train)]


def test_start_from_judgments_does_nothing_without_varying_scores_and_needs_the_word_pool(tmp_path):
    df, dls = _dls(tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=True)
    assert start_from_judgments(learn, df.assign(score=2.)) is None  # nothing to fit: the plain skip stays
    assert not learn.model.head.query_proj.fitted and not learn.model.hparams.get('pool_map')
    with pytest.raises(ValueError, match='word_pool'):
        start_from_judgments(relevance_learner(dls, config=TINY, proj_sz=DIM), df)
    with pytest.raises(ValueError, match="1 of the pairs' scores .'score'. are missing"):
        start_from_judgments(learn, df.assign(score=df['score'].where(df.index != 3)))
    assert not learn.model.head.query_proj.fitted


@pytest.mark.parametrize('judgment_start, anchor_weight, fit_scores', [(True, 10., True), (True, 0., True), (False, 10., True),
                                                                      (True, 10., False)],
                         ids=['start', 'start-without-anchor', 'no-start', 'start-without-score-map'])
def test_the_recipe_starts_from_the_judgments_without_a_teacher(tmp_path, monkeypatch, capsys, judgment_start, anchor_weight,
                                                                fit_scores):
    from relcollab.core.model import MODEL_SIZES
    import relcollab.training.recipe as recipe
    monkeypatch.setitem(MODEL_SIZES, 'tiny', dict(emb_sz=16, n_hid=32, n_layers=2))
    during, fine_tune = [], recipe.fine_tune_relevance
    def watched(learn, **kwargs):
        during.extend(cb for cb in learn.cbs if isinstance(cb, TeacherDistillation))
        return fine_tune(learn, **kwargs)
    monkeypatch.setattr(recipe, 'fine_tune_relevance', watched)
    held_out, start = [], recipe.start_from_judgments
    monkeypatch.setattr(recipe, 'start_from_judgments', lambda learn, pairs, **kw: held_out.append((pairs, kw['valid_pairs'])) or start(learn, pairs, **kw))
    choices = []
    monkeypatch.setattr(judgment_start_module, 'choose_lexical_scale', lambda learn, pairs, **kw: choices.append(len(pairs)) or 0.01)
    pairs = make_pairs(80, seed=2)
    with torch_threads(1):
        learn = recipe.train_relevance_model(pairs, size='tiny', lm_epochs=1, epochs=1, bs=16,
                                             pseudo_per_doc=0, path=tmp_path, judgment_start=judgment_start,
                                             anchor_weight=anchor_weight, fit_scores=fit_scores)
    out = capsys.readouterr().out
    assert ("relcollab: judgment start: the validation pairs' error was lowest after step" in out) == judgment_start
    if judgment_start:  # fitted on the training rows, stopped by the validation rows (the recipe's query split)
        (fitted, valid), = held_out
        valid_queries = set(pairs.loc[recipe.query_split(pairs), 'query'])
        assert set(valid['query']) == valid_queries and not set(fitted['query']) & valid_queries
        assert len(fitted) + len(valid) == len(pairs)
    assert ('relcollab: judgment start done' in out) == judgment_start
    assert ("relcollab: judgment start: the lexical channel's weight beside the dense cosine is 0.01" in out) == judgment_start
    # chosen on the validation rows at the start, and again after training (the judgment finish), which refits the scores
    assert choices == ([len(held_out[0][1])] * 2 if judgment_start else [])
    assert ("relcollab: judgment finish: the lexical channel's weight is 0.01" in out) == judgment_start
    assert ("relcollab: judgment start: score = sigmoid(" in out) == ("relcollab: judgment finish: score = sigmoid(" in out) \
        == (judgment_start and fit_scores)
    assert bool(learn.model.hparams.get('pool_map')) == judgment_start
    assert learn.model.head.doc_proj.fitted == judgment_start
    # the anchor trains with the relevance stage (weighted as asked), and is gone afterwards
    assert [cb.embedding_weight for cb in during] == ([anchor_weight] if judgment_start and anchor_weight else [])
    assert not any(isinstance(cb, TeacherDistillation) for cb in learn.cbs)


@pytest.mark.parametrize('value', ['no', 0, None])
def test_a_bad_fit_scores_fails_before_training(value, tmp_path):
    from relcollab.training.recipe import train_relevance_model
    with pytest.raises(ValueError, match='fit_scores=.*give True or False'):
        train_relevance_model(make_pairs(20, seed=1), path=tmp_path, fit_scores=value)


@pytest.mark.parametrize('weight', [-1., 'ten', True])
def test_a_bad_anchor_weight_fails_before_training(weight, tmp_path):
    from relcollab.training.recipe import train_relevance_model
    with pytest.raises(ValueError, match='anchor_weight=.*give a number, 0 or more'):
        train_relevance_model(make_pairs(20, seed=1), path=tmp_path, anchor_weight=weight)
    assert not (tmp_path/'models').exists()  # nothing trained
