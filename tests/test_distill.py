"""Distillation from a teacher's vectors into the towers (`relcollab.training.distill`), with a stand-in teacher: a
fixed random projection of each text's bag of words (so there is something consistent to learn)."""
import importlib.util

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import spearmanr

from fastai.torch_core import set_seed

from conftest import PROJ_SZ, TINY, make_pairs, torch_threads
from test_training_improves import N_TOPICS, topic_pairs
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.distill import (TeacherDistillation, TeacherVectors, embedding_distillation_loss,
                                        fit_teacher_stage, margin_mse_loss, teacher_stage_rows)
from relcollab.retrieval.encode import numericalize_texts
from relcollab.training.learner import relevance_learner

TEACHER_DIM = 12


def bag_of_words_teacher(texts, dim=TEACHER_DIM, seed=0) -> np.ndarray:
    "Unit vectors: the sum of a fixed random vector per word."
    rng, table = np.random.default_rng(seed), {}
    rows = [sum((table.setdefault(w, rng.standard_normal(dim)) for w in text.split()), np.zeros(dim)) for text in texts]
    rows = np.stack(rows).astype(np.float32)
    return rows / np.maximum(np.linalg.norm(rows, axis=1, keepdims=True), 1e-6)


@pytest.fixture(scope='module')
def dls(tmp_path_factory):
    with torch_threads(1):
        return RelevanceDataLoaders.from_df(make_pairs(400, seed=11), 'query', 'doc', 'score', bs=16, seed=0,
                                            path=tmp_path_factory.mktemp('distill'))


def teacher_vectors(dls, dim=TEACHER_DIM):
    items = dls.train_ds.items
    texts = list(dict.fromkeys(items['query'].tolist() + items['doc'].tolist()))
    return TeacherVectors.from_texts(texts, bag_of_words_teacher(texts, dim), dls), texts


def test_lookup_finds_each_text_by_the_token_ids_its_batch_carries(dls):
    vectors, texts = teacher_vectors(dls)
    query_tokens, doc_tokens, _ = dls.train.one_batch()
    pad_idx = dls.vocab.index('xxpad')
    found_vectors, found = vectors.lookup(doc_tokens, pad_idx)
    assert found.all()
    ids = numericalize_texts(texts, dls.tokenizer, dls.vocab)
    by_tokens = {tuple(t.tolist()): i for i, t in enumerate(ids)}
    for row, tokens in enumerate(doc_tokens):
        text_row = by_tokens[tuple(t for t in tokens.tolist() if t != pad_idx)]
        torch.testing.assert_close(found_vectors[row], vectors.vectors[text_row])
    unknown = torch.tensor([[dls.vocab.index('xxbos'), 5, 5, 5, 5, 5, 5, 5, 5]])
    assert not vectors.lookup(unknown, pad_idx)[1].any()


def test_the_losses_on_known_values():
    assert embedding_distillation_loss(torch.eye(3), torch.eye(3)).item() == 0
    assert embedding_distillation_loss(torch.tensor([[1., 0.]]), torch.tensor([[0., 1.]])).item() == pytest.approx(2.)
    teacher = torch.tensor([[0.9, 0.1], [0.3, 0.8]])
    assert margin_mse_loss(teacher + 0.5, teacher).item() == pytest.approx(0.)  # a shift keeps every margin
    student = torch.tensor([[0.9, 0.4], [0.3, 0.8]])  # query 0's negative 0.3 closer to its positive than the teacher's
    assert margin_mse_loss(student, teacher).item() == pytest.approx(0.3 ** 2 / 2)


def topic_teacher(texts, dim=TEACHER_DIM, seed=0) -> np.ndarray:
    "A teacher that knows topics: each text's unit vector is its topic's (the digit in its words: `q3w1`, `d3w0`)."
    topics = np.random.default_rng(seed).standard_normal((N_TOPICS, dim))
    rows = np.stack([topics[int(text.split()[0][1])] for text in texts]).astype(np.float32)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)


@pytest.mark.parametrize('proj_sz', [TEACHER_DIM, PROJ_SZ])  # the teacher's size, or through a learned map
def test_distillation_brings_the_towers_to_the_teachers_similarities(proj_sz, tmp_path):
    """Trained on the teacher alone (relevance_weight=0), the towers' cosines of unseen (query, document) pairs follow
    the teacher's: queries and documents never share a word, so only the teacher can tell which go together."""
    train, held_out = topic_pairs(400, seed=0), topic_pairs(60, seed=1)
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(train, bs=16, seed=0, valid_pct=0.1, path=tmp_path)
        texts = list(dict.fromkeys(train['query'].tolist() + train['doc'].tolist()))
        vectors = TeacherVectors.from_texts(texts, topic_teacher(texts), dls)
        agreement = {}
        for taught in (False, True):
            set_seed(0, reproducible=True)
            learn = relevance_learner(dls, config=TINY, proj_sz=proj_sz, lexical=False, drop_mult=0.3)
            cbs = [TeacherDistillation(vectors, relevance_weight=0.)] if taught else []
            with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(5, 3e-2, cbs=cbs)
            queries = learn.encode(held_out['query'].tolist(), progress=False)
            docs = learn.encode(held_out['doc'].tolist(), side='doc', progress=False)
            student = (queries * docs).sum(axis=1)
            teacher = (topic_teacher(held_out['query'].tolist()) * topic_teacher(held_out['doc'].tolist())).sum(axis=1)
            agreement[taught] = spearmanr(student, teacher).statistic
    print(f"proj_sz {proj_sz}: Spearman of student vs teacher cosines on unseen pairs: {agreement}")
    assert agreement[True] > 0.6 and agreement[True] > agreement[False] + 0.1  # measured: 0.80 vs 0.58, 0.65 vs 0.49
    assert not any(isinstance(cb, TeacherDistillation) for cb in learn.cbs)  # nothing of the teacher is kept
    assert not learn.model.head.query_proj._forward_hooks and not learn.model.head.doc_proj._forward_hooks


def test_the_recipe_and_fit_learn_from_a_teacher_and_keep_none_of_it(tmp_path, monkeypatch, capsys):
    "train_relevance_model(teacher=DIR): vectors take the teacher's size, its vectors are cached, nothing of it is kept."
    if importlib.util.find_spec('sentence_transformers') is None: pytest.skip('needs sentence-transformers')
    from test_teacher import build_tiny_teacher  # imports sentence-transformers past the torchvision trap
    from relcollab.core.model import MODEL_SIZES
    import relcollab.training.learner as learner_module
    teacher_dir = build_tiny_teacher(tmp_path/'teacher', seed=0)
    monkeypatch.setitem(MODEL_SIZES, 'tiny', dict(emb_sz=16, n_hid=32, n_layers=2))
    pooled, pool_vectors = [], learner_module.pool_vectors
    monkeypatch.setattr(learner_module, 'pool_vectors', lambda source, *a, **k: pooled.append(source) or pool_vectors(source, *a, **k))
    import relcollab.training.recipe as recipe
    during, fine_tune = [], recipe.fine_tune_relevance
    def watched(learn, **kwargs):
        during.extend(cb for cb in learn.cbs if isinstance(cb, TeacherDistillation))
        return fine_tune(learn, **kwargs)
    monkeypatch.setattr(recipe, 'fine_tune_relevance', watched)
    with torch_threads(1):
        learn = recipe.train_relevance_model(make_pairs(80, seed=2), size='tiny', lm_epochs=1, epochs=2, bs=16,
                                             pseudo_per_doc=0, teacher=teacher_dir, path=tmp_path, teacher_epochs=1)
    assert learn.model.head.query_proj[-1].out_features == 32  # the tiny teacher's dimension
    # with a teacher, the word pool holds the teacher's encoding of each word beside the corpus vectors
    (source,) = pooled
    assert source[0] == 'corpus' and type(source[1]).__name__ == 'SentenceTransformer' and len(source) == 2
    assert list((tmp_path/'teacher_cache').glob('*/*.vectors.npy'))
    assert not any(isinstance(cb, TeacherDistillation) for cb in learn.cbs)
    out = capsys.readouterr().out
    assert 'relcollab: teacher vectors done' in out and 'relcollab: teacher done' in out  # the teacher stage ran
    assert 'epochs, lr 0.001)' in out  # TEACHER_LR
    # the dense vectors started in the teacher's space: a fixed skip map fitted to it, kept through save and load
    assert 'relcollab: teacher start done' in out
    # then the judgments refine that map (judgment_start=True), and training keeps near both start and teacher
    assert ', from the teacher start) ...' in out and 'relcollab: judgment start done' in out
    assert out.index('relcollab: teacher start done') < out.index('relcollab: judgment start (')
    assert [cb.always_map for cb in during] == [False, False]  # the teacher's distillation, then the start's anchor
    for proj in (learn.model.head.query_proj, learn.model.head.doc_proj): assert proj.fitted
    assert learn.model.hparams['pool_map']
    from relcollab.retrieval.pretrained import load_pretrained
    texts = ['shock wave on a wing', 'heat in a slab']
    with torch_threads(1):
        loaded = load_pretrained(learn.save_pretrained(tmp_path/'model'))
        np.testing.assert_allclose(loaded.encode(texts, side='doc', progress=False),
                                   learn.encode(texts, side='doc', progress=False), atol=1e-5)


def test_a_teacher_without_word_vectors_keeps_the_default_lr_and_no_pool(tmp_path, monkeypatch, capsys):
    "TEACHER_LR goes with the teacher's words in the pool: without word vectors there is no pool and lr stays 1e-2."
    if importlib.util.find_spec('sentence_transformers') is None: pytest.skip('needs sentence-transformers')
    from test_teacher import build_tiny_teacher
    from relcollab.core.model import MODEL_SIZES
    from relcollab.training.recipe import train_relevance_model
    teacher_dir = build_tiny_teacher(tmp_path/'teacher', seed=0)
    monkeypatch.setitem(MODEL_SIZES, 'tiny', dict(emb_sz=16, n_hid=32, n_layers=2))
    with torch_threads(1):
        learn = train_relevance_model(make_pairs(60, seed=3), size='tiny', lm_epochs=1, epochs=1, bs=16,
                                      pseudo_per_doc=0, teacher=teacher_dir, path=tmp_path, word_vectors=None)
    assert 'epochs, lr 0.01)' in capsys.readouterr().out
    assert not learn.model.hparams.get('word_pool')


def test_fit_with_a_teacher_that_is_not_there_fails_before_training(tmp_path, capsys, monkeypatch):
    from relcollab.app.cli import main
    monkeypatch.chdir(tmp_path)
    make_pairs(20).to_csv('triples.csv', index=False)
    assert main(['fit', 'triples.csv', '--out', 'm.pkl', '--teacher', './no-such-teacher']) == 2
    err = capsys.readouterr().err
    assert 'no-such-teacher' in err and not (tmp_path/'models').exists()


def test_teacher_stage_rows_are_spans_of_each_document_plus_the_pairs():
    docs = ['the lift of a wing rises with the angle of attack', 'heat transfer in a slab of steel at high speed']
    rows = teacher_stage_rows(docs, pairs=make_pairs(3, seed=0), per_doc=2, seed=0)
    spans = rows.iloc[:-3]
    assert set(spans['doc']) == set(docs) and all(q in d for q, d in zip(spans['query'], spans['doc']))
    assert rows.iloc[-3:]['query'].tolist() == make_pairs(3, seed=0)['query'].tolist()
    assert not rows.duplicated().any()


def test_teacher_stage_brings_the_towers_to_the_teacher_before_relevance_training(tmp_path):
    """fit_teacher_stage: on spans of the documents alone, the towers' cosines of unseen pairs follow the teacher's
    (queries and documents share no word: only the teacher knows which go together); learn.dls is given back."""
    train, held_out = topic_pairs(300, seed=0), topic_pairs(60, seed=1)
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(train, bs=16, seed=0, valid_pct=0.1, path=tmp_path)
        agreement = {}
        for epochs in (0, 4):
            set_seed(0, reproducible=True)
            learn = relevance_learner(dls, config=TINY, proj_sz=TEACHER_DIM, lexical=False, drop_mult=0.3)
            with learn.no_bar(), learn.no_logging():
                if epochs: fit_teacher_stage(learn, topic_teacher, pd.unique(train['doc']), train[['query', 'doc']],
                                             epochs=epochs, per_doc=2, lr=3e-2, bs=16)
            assert learn.dls is dls
            queries = learn.encode(held_out['query'].tolist(), progress=False)
            docs = learn.encode(held_out['doc'].tolist(), side='doc', progress=False)
            teacher = (topic_teacher(held_out['query'].tolist()) * topic_teacher(held_out['doc'].tolist())).sum(axis=1)
            agreement[epochs] = spearmanr((queries * docs).sum(axis=1), teacher).statistic
    print(f"Spearman of student vs teacher cosines on unseen pairs, by teacher-stage epochs: {agreement}")
    assert agreement[4] > 0.6 and agreement[4] > agreement[0] + 0.1


@pytest.mark.parametrize('weight', [-1., 'ten', True])
def test_a_bad_embedding_weight_fails_before_training(weight, tmp_path):
    from relcollab.training.recipe import train_relevance_model
    with pytest.raises(ValueError, match='embedding_weight=.*give a number, 0 or more'):
        train_relevance_model(make_pairs(20, seed=1), path=tmp_path, embedding_weight=weight)
    assert not (tmp_path/'models').exists()  # nothing trained
