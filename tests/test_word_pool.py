"""The towers' word pool at the word vectors' own size (`relevance_learner(word_pool=...)`): fixed vectors, idf
weights, and dense vectors that start as the centred idf-weighted mean of a text's word vectors."""
import numpy as np
import pytest
import torch

from conftest import TINY, WORDS, make_pairs, torch_threads
from relcollab.core.data import RelevanceDataLoaders
from relcollab.core.model import document_idf, get_relevance_model, relevance_split
from relcollab.training.learner import relevance_learner
from relcollab.training.word_vectors import pool_vectors

DIM = 6


def _mapping(dim=DIM, seed=0) -> dict:
    "Word vectors with one dominant direction, so the principal axes have a clear order."
    rng = np.random.default_rng(seed)
    scale = np.array([5., 3., 2., 1., .5, .2][:dim])
    return {w: (rng.normal(size=dim) * scale).astype(np.float32) for w in WORDS}


def _dls(tmp_path, n=80, seed=0):
    df = make_pairs(n, seed=seed).assign(is_valid=lambda d: np.arange(len(d)) % 5 == 0)
    return df, RelevanceDataLoaders.from_df(df, valid_col='is_valid', bs=8, seed=0, path=tmp_path)


def _unit(rows): return rows / np.linalg.norm(rows, axis=1, keepdims=True)


def test_pool_vectors_are_the_words_principal_axes_largest_first():
    vocab = ['xxunk', 'xxpad'] + WORDS
    vectors, found = pool_vectors(_mapping(), vocab)
    assert vectors.shape == (len(vocab), DIM) and found.tolist() == [False, False] + [True] * len(WORDS)
    assert not vectors[:2].any()  # fastai's own tokens: no vector, so they do not count in the pool
    spread = vectors[found].std(axis=0)
    assert (np.diff(spread) <= 1e-6).all()  # largest first: the first k dimensions are the best k-dimensional summary
    raw = np.stack([_mapping()[w] for w in WORDS])
    raw = raw - raw.mean(axis=0)
    np.testing.assert_allclose(vectors[found] @ vectors[found].T, raw @ raw.T, rtol=1e-4, atol=1e-3)  # a rotation
    with pytest.raises(ValueError, match='cover 1 of the vocabulary'):
        pool_vectors({'wing': [1., 2.]}, vocab)


@pytest.mark.parametrize('pool_skip', [False, True], ids=['pass-through', 'skip'])
def test_untrained_dense_vectors_are_the_centred_idf_mean_of_the_word_vectors(tmp_path, pool_skip):
    df, dls = _dls(tmp_path)
    documents = list(dict.fromkeys(df.loc[~df['is_valid'], 'doc']))
    learn = relevance_learner(dls, config=TINY, proj_sz=DIM, word_pool=_mapping(), pool_skip=pool_skip, documents=documents)
    tower = learn.model.doc_tower
    assert tower.word_pool == DIM and tower.out_features == 3 * TINY['emb_sz'] + DIM
    matrix = tower.word_vectors.numpy()
    idf = document_idf(dls, documents=documents).numpy()
    o2i = {w: i for i, w in enumerate(dls.vocab)}
    def pooled(texts):
        rows = []
        for tokens in dls.tokenizer(texts):
            ids = np.array([o2i.get(t, 0) for t in tokens])
            rows.append((matrix[ids] * idf[ids, None]).sum(0) / idf[ids].sum())
        return np.array(rows)
    centre = pooled(documents).mean(axis=0)
    texts = df['doc'].tolist()[:6] + ['shock wave on a wing']
    with torch_threads(1):
        dense = learn.encode(texts, side='doc', progress=False)[:, :DIM]
        queries = learn.encode(['drag lift', 'heat slab'], side='query', progress=False)[:, :DIM]
    np.testing.assert_allclose(dense, _unit(pooled(texts) - centre), atol=1e-4)
    np.testing.assert_allclose(queries, _unit(pooled(['drag lift', 'heat slab']) - centre), atol=1e-4)


def test_the_word_pool_stays_fixed_its_weights_train_and_it_survives_save_and_load(tmp_path):
    from relcollab.retrieval.pretrained import load_pretrained
    from fastai.learner import load_learner
    _, dls = _dls(tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=4, word_pool=_mapping(), pool_skip=True)
    assert not any('skip_weight' in key for key in learn.model.state_dict())  # no teacher map: saved as before
    before = learn.model.query_tower.word_vectors.clone()
    weights_before = learn.model.query_tower.embedding_pool.word_weight.detach().clone()
    assert not any(p is before for group in relevance_split(learn.model) for p in group)  # a buffer, in no group
    with torch_threads(1), learn.no_bar(): learn.fit_one_cycle(1, 1e-2)
    assert torch.equal(learn.model.query_tower.word_vectors, before)
    assert not torch.equal(learn.model.query_tower.embedding_pool.word_weight.detach(), weights_before)
    texts = ['shock wave on a wing', 'heat in a slab']
    with torch_threads(1):
        expected = learn.encode(texts, side='doc', progress=False)
        loaded = load_pretrained(learn.save_pretrained(tmp_path/'model'))
        np.testing.assert_allclose(loaded.encode(texts, side='doc', progress=False), expected, atol=1e-6)
        learn.export(tmp_path/'export.pkl')
        exported = load_learner(tmp_path/'export.pkl')
        np.testing.assert_allclose(exported.encode(texts, side='doc', progress=False), expected, atol=1e-6)
    assert (loaded.model.hparams['word_pool'], loaded.model.hparams['pool_skip']) == (DIM, True)


def test_word_pool_options_that_cannot_work_fail_before_training(tmp_path):
    _, dls = _dls(tmp_path)
    with pytest.raises(ValueError, match="pass pool_embeddings='idf'"):
        relevance_learner(dls, config=TINY, proj_sz=4, word_pool=_mapping(), pool_embeddings=True)
    with pytest.raises(ValueError, match="pool_skip=True .* needs pool_embeddings='idf'"):
        get_relevance_model(len(dls.vocab), TINY, proj_sz=4, pool_skip=True)
    with pytest.raises(ValueError, match="word_pool=6 pools word vectors: it needs pool_embeddings"):
        get_relevance_model(len(dls.vocab), TINY, proj_sz=4, word_pool=6)
    old = get_relevance_model(len(dls.vocab), TINY, proj_sz=4, pool_embeddings='idf')
    assert 'word_pool' not in old.hparams and 'pool_skip' not in old.hparams  # older exports rebuild as they were


def test_ridge_regression_recovers_a_linear_map():
    from relcollab.core.model import ridge_regression
    rng = np.random.default_rng(0)
    x = torch.tensor(rng.normal(size=(200, 5)), dtype=torch.float32)
    weight, bias = torch.tensor(rng.normal(size=(5, 3)), dtype=torch.float32), torch.tensor([1., -2., .5])
    fitted_weight, fitted_bias = ridge_regression(x, x @ weight + bias, alpha=1e-8)
    torch.testing.assert_close(fitted_weight, weight, atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(fitted_bias, bias, atol=1e-4, rtol=1e-4)
    shrunk, _ = ridge_regression(x, x @ weight + bias, alpha=10.)
    assert shrunk.norm() < 0.5 * weight.norm()  # alpha shrinks, scale-free


@pytest.mark.parametrize('pool_skip', [False, True], ids=['pass-through', 'skip'])
def test_start_from_teacher_makes_the_untrained_dense_vectors_the_teachers(tmp_path, pool_skip):
    "A teacher that is a linear function of the pooled word vectors is copied exactly, on texts the fit never saw."
    from relcollab.training.distill import TeacherVectors, start_from_teacher
    from relcollab.core.text import numericalize_texts
    df, dls = _dls(tmp_path)
    teacher_dim = 8
    learn = relevance_learner(dls, config=TINY, proj_sz=teacher_dim, word_pool=_mapping(), pool_skip=pool_skip)
    tower = learn.model.doc_tower
    mixing = torch.tensor(np.random.default_rng(1).normal(size=(DIM, teacher_dim)), dtype=torch.float32)
    def teacher(texts):
        ids = numericalize_texts(texts, dls.tokenizer, dls.vocab)
        with torch.no_grad():
            pooled = torch.cat([tower.mean_embedding(t[None]) for t in ids])
        return (pooled @ mixing + 0.3).numpy()
    fitted = list(dict.fromkeys(df.loc[~df['is_valid'], 'doc'].tolist() + df.loc[~df['is_valid'], 'query'].tolist()))
    unseen = ['shock wave on a wing', 'heat in a slab of metal', 'drag lift']
    with torch_threads(1):
        before = learn.encode(unseen, side='doc', progress=False)[:, :teacher_dim]
        start_from_teacher(learn, TeacherVectors.from_texts(fitted, teacher(fitted), dls), alpha=1e-7)
        docs = learn.encode(unseen, side='doc', progress=False)[:, :teacher_dim]
        queries = learn.encode(unseen, side='query', progress=False)[:, :teacher_dim]
    expected = _unit(teacher(unseen))
    if pool_skip:  # the map is the skip's, a buffer that the saved weights and hparams carry
        assert learn.model.hparams['pool_map'] and 'head.doc_proj.skip_weight' in learn.model.state_dict()
        fresh = relevance_learner(dls, config=TINY, proj_sz=teacher_dim, word_pool=_mapping(), pool_skip=True)
        fresh.model.load_state_dict(learn.model.state_dict())  # strict: a checkpoint with the map brings it along
        with torch_threads(1):
            np.testing.assert_allclose(fresh.encode(unseen, side='doc', progress=False)[:, :teacher_dim], docs, atol=1e-6)
    np.testing.assert_allclose(docs, expected, atol=1e-3)
    np.testing.assert_allclose(queries, expected, atol=1e-3)
    assert np.abs(before - expected).max() > 0.1  # not so before the start
    with pytest.raises(ValueError, match='proj_sz=8'):
        start_from_teacher(relevance_learner(dls, config=TINY, proj_sz=4, word_pool=_mapping()),
                           TeacherVectors.from_texts(fitted, teacher(fitted), dls))
