"""The in-batch score matrix, its loss, pseudo-queries and term-identity pooling."""
import numpy as np
import pandas as pd
import pytest
import torch

from conftest import PROJ_SZ, TINY, make_pairs, torch_threads
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import relevance_learner
from relcollab.core.losses import InBatchLoss, in_batch_targets
from relcollab.core.model import InBatchScores, same_rows
from relcollab.training.pseudo import pseudo_queries, sentences


def test_in_batch_targets_reuse_known_pairs_and_zero_the_rest():
    # rows: (q0, d0, 1.0), (q0, d1, 0.5), (q1, d0, 0.25)
    queries = torch.tensor([[5, 6], [5, 6], [7, 1]])
    docs = torch.tensor([[8, 9, 9], [9, 8, 1], [8, 9, 9]])
    targets = in_batch_targets(torch.tensor([1., .5, .25]), same_rows(queries), same_rows(docs))
    expected = torch.tensor([[1., .5, 1.],     # q0 with d0 (pair 0), d1 (pair 1), d0 again (pair 0)
                             [1., .5, 1.],
                             [.25, 0., .25]])  # q1 with d0 (pair 2), d1 (unjudged -> 0), d0 (pair 2)
    assert torch.equal(targets, expected)


def test_in_batch_loss_is_mse_on_pair_scores_in_evaluation():
    loss = InBatchLoss()
    pred, target = torch.tensor([[0.2], [0.9]]), torch.tensor([0., 1.])
    assert torch.isclose(loss(pred, target), torch.tensor((0.04 + 0.01) / 2))
    loss.reduction = 'none'  # fastai's get_preds(with_loss=True) sets this
    assert torch.allclose(loss(pred, target), torch.tensor([0.04, 0.01]))


def _scores(cosines, same_query=None, same_doc=None):
    eye = torch.eye(len(cosines), dtype=torch.bool)
    return InBatchScores(cosines * 5, cosines, eye if same_query is None else same_query, eye if same_doc is None else same_doc)


def test_contrastive_term_rewards_ranking_the_own_document_first():
    loss = InBatchLoss(offdiag_weight=0., contrastive_weight=1.)
    target = torch.tensor([1., 1.])
    right = loss(_scores(torch.tensor([[.9, -.5], [-.5, .9]])), target)
    wrong = loss(_scores(torch.tensor([[-.5, .9], [.9, -.5]])), target)
    assert right < wrong


def test_contrastive_term_does_not_push_away_an_equally_relevant_document():
    # both rows share the query: each document is as relevant as the other, so neither is a negative
    loss = InBatchLoss(offdiag_weight=0., contrastive_weight=1.)
    same = torch.ones(2, 2, dtype=torch.bool)
    cosines = torch.tensor([[.1, .9], [.9, .1]])
    contrastive = loss(_scores(cosines, same_query=same), torch.tensor([1., 1.])) - \
        torch.nn.functional.mse_loss(torch.sigmoid(cosines.diagonal() * 5), torch.tensor([1., 1.]))
    assert torch.isclose(contrastive, torch.tensor(0.), atol=1e-6)


def test_in_batch_learner_trains_and_scores_pairs_in_evaluation(tmp_path):
    df = make_pairs(200, seed=3)
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(df, bs=16, seed=0, path=tmp_path)
        learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, in_batch=True, pool_embeddings=True)
        batch = dls.one_batch()
        learn.model.train()
        out = learn.model(*batch[:2])
        assert isinstance(out, InBatchScores) and out.logits.shape == (16, 16)
        with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
        scores = learn.score_pairs(df.head(5))
    assert scores.shape == (5,) and np.isfinite(scores).all()
    assert ((scores >= df.score.min()) & (scores <= df.score.max())).all()


def test_pseudo_queries_are_spans_of_their_document():
    docs = ['the lift of a wing rises with the angle of attack . drag grows with speed squared . rivets hold panels',
            'too short']
    kept = pseudo_queries(docs, n_per_doc=3, remove=0., seed=0)
    assert len(kept) == 3 and (kept.doc == docs[0]).all()
    assert all(q in docs[0] for q in kept['query'])
    cut = pseudo_queries(docs, n_per_doc=3, remove=1., seed=0)
    for query, doc in zip(cut['query'], cut['doc']):
        assert len(doc.split()) == len(docs[0].split()) - len(query.split())  # the span is cut out of its document
    assert pseudo_queries(docs, seed=0).equals(pseudo_queries(docs, seed=0))


def test_sentences_split_after_punctuation():
    assert sentences('a b . c d ? e') == ['a b .', 'c d ?', 'e']


# ----------------------------------------------------------------- the lexical channel (term identity)
@pytest.fixture(scope='module')
def lexical_learner(tmp_path_factory):
    df = make_pairs(120, seed=5)
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(df, bs=16, seed=0, path=tmp_path_factory.mktemp('lexical'))
        return relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, in_batch=True, lexical=True)


def test_untrained_lexical_channel_scores_bm25(lexical_learner):
    from relcollab.training.learner import document_idf
    learn, vocab = lexical_learner, lexical_learner.dls.vocab
    query, doc = 'wing heat heat', 'wing wing heat flow slab gust'
    q, d = (torch.tensor([learn.dls.numericalize_text(t) if hasattr(learn.dls, 'numericalize_text') else
                          [vocab.index(w) for w in learn.dls.tokenizer.tokenize_one(t)]]) for t in (query, doc))
    model = learn.model.eval()
    with torch.no_grad():
        lexical = (model.encode_query(q)[:, PROJ_SZ:] * model.encode_doc(d)[:, PROJ_SZ:]).sum().item()
    lexical /= model.head.log_lexical_scale.exp().item()
    idf, tw = document_idf(learn.dls), model.doc_tower.term_weights
    doc_tokens = learn.dls.tokenizer.tokenize_one(doc)
    expected = 0.
    for word in set(learn.dls.tokenizer.tokenize_one(query)) & set(doc_tokens):
        tf = doc_tokens.count(word)
        norm = tw.k1 * (1 - tw.b + tw.b * len(doc_tokens) / tw.avg_len.item())
        expected += idf[vocab.index(word)].item() * tf * (tw.k1 + 1) / (tf + norm)
    assert lexical == pytest.approx(expected, rel=1e-4)


def test_lexical_vectors_rank_as_predict_scores(lexical_learner):
    learn = lexical_learner
    docs = ['wing heat flow', 'slab shock wave plate', 'gust rivet wing wing']
    with torch_threads(1), learn.no_bar():
        vectors = learn.encode(docs, side='doc')
        query = learn.encode('wing heat', side='query')
        from_vectors = learn.score_vectors(query, vectors)
        predicted = [learn.predict('wing heat', doc)[0] for doc in docs]
    assert vectors.shape == (3, PROJ_SZ + len(learn.dls.vocab))
    np.testing.assert_allclose(from_vectors, predicted, rtol=1e-5, atol=1e-5)
    assert list(np.argsort(-(vectors @ query))) == list(np.argsort(-np.asarray(predicted)))


def test_lexical_model_needs_two_towers(pairs_df, tmp_path):
    dls = RelevanceDataLoaders.from_df(pairs_df.head(40), bs=16, seed=0, path=tmp_path)
    with pytest.raises(ValueError, match='two towers'):
        relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical=True, shared=True)


@pytest.mark.parametrize('options', [{}, {'lexical': True}, {'lexical': 'learned'}, {'pool_embeddings': True}, {'shared': True}])
def test_every_parameter_trains_in_exactly_one_ulmfit_group(options):
    from relcollab.core.model import get_relevance_model, relevance_split
    model = get_relevance_model(50, TINY, proj_sz=PROJ_SZ, **options)
    grouped = [id(p) for group in relevance_split(model) for p in group]
    assert sorted(grouped) == sorted({id(p) for p in model.parameters()})


def test_fixed_bm25_term_weights_are_in_no_group_and_need_no_gradient():
    from relcollab.core.model import get_relevance_model, relevance_split
    model = get_relevance_model(50, TINY, proj_sz=PROJ_SZ, lexical='bm25')
    fixed = {id(p) for t in (model.query_tower, model.doc_tower) for p in t.term_weights.parameters()}
    grouped = [id(p) for group in relevance_split(model) for p in group]
    assert fixed and not fixed & set(grouped)
    assert sorted(grouped) == sorted({id(p) for p in model.parameters()} - fixed)
    assert not any(p.requires_grad for t in (model.query_tower, model.doc_tower) for p in t.term_weights.parameters())
    assert model.head.log_lexical_scale.requires_grad  # the channel's weight beside the dense cosine still trains


@pytest.mark.parametrize('lexical', ['bm25', 'learned'])
def test_training_keeps_bm25_term_weights_and_moves_learned_ones(pairs_df, tmp_path, lexical):
    "A fit moves the lexical scale either way; the term weights themselves only with lexical='learned'."
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(pairs_df.head(64), bs=16, seed=0, path=tmp_path)
        learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical=lexical)
        before = {k: v.clone() for k, v in learn.model.state_dict().items() if '.term_weights.' in k}
        scale = learn.model.head.log_lexical_scale.item()
        learn.unfreeze()
        with learn.no_bar(), learn.no_logging(): learn.fit(1, 1e-2)
    after = {k: v for k, v in learn.model.state_dict().items() if '.term_weights.' in k}
    moved = [k for k in before if not torch.equal(before[k], after[k])]
    assert learn.model.head.log_lexical_scale.item() != scale
    if lexical == 'bm25': assert moved == []
    else: assert {'query_tower.term_weights.word_bias', 'doc_tower.term_weights.idf'} <= set(moved)


@pytest.mark.parametrize('lexical', ['bm25', 'learned'])
def test_a_saved_model_keeps_its_lexical_choice(pairs_df, tmp_path, lexical):
    from relcollab.retrieval.pretrained import load_pretrained
    dls = RelevanceDataLoaders.from_df(pairs_df.head(40), bs=16, seed=0, path=tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical=lexical)
    loaded = load_pretrained(learn.save_pretrained(tmp_path/'model'))
    assert loaded.model.hparams['lexical'] == lexical
    assert [t.term_weights.learned for t in (loaded.model.query_tower, loaded.model.doc_tower)] == [lexical == 'learned'] * 2


def test_an_unknown_lexical_choice_is_a_clear_error(pairs_df, tmp_path):
    from relcollab.training.recipe import train_relevance_model
    dls = RelevanceDataLoaders.from_df(pairs_df.head(40), bs=16, seed=0, path=tmp_path)
    with pytest.raises(ValueError, match="lexical='bm42'.*'bm25'.*'learned'"):
        relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical='bm42')
    with pytest.raises(ValueError, match="lexical='bm42'"):  # before the language model trains
        train_relevance_model(pairs_df.head(40), path=tmp_path/'recipe', lexical='bm42')
    assert not (tmp_path/'recipe'/'models').exists()


def test_auto_is_bm25_with_a_word_pool_and_learned_without(pairs_df, tmp_path):
    from test_word_pool import _dls, _mapping
    _, pooled = _dls(tmp_path)
    dls = RelevanceDataLoaders.from_df(pairs_df.head(40), bs=16, seed=0, path=tmp_path)
    learned = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical='auto').model.doc_tower.term_weights.learned
    fixed = relevance_learner(pooled, config=TINY, proj_sz=6, word_pool=_mapping(), lexical='auto').model.doc_tower.term_weights.learned
    assert (learned, fixed) == (True, False)


def test_tokens_with_one_stem_match_in_the_lexical_channel(tmp_path):
    df = pd.DataFrame({'query': ['wing', 'wings', 'heat', 'plate'] * 5,
                       'doc': ['the wings bend', 'a wing bends', 'heat flows', 'plates buckle'] * 5,
                       'score': [1., 1., 1., 0.] * 5})
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(df, bs=8, seed=0, path=tmp_path)
        stemmed = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical=True)
        unstemmed = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, lexical=True, stemmer=None)
        lexical = {name: (learn.encode('wing')[PROJ_SZ:] @ learn.encode('the wings bend', side='doc')[PROJ_SZ:])
                   for name, learn in [('stemmed', stemmed), ('unstemmed', unstemmed)]}
    # unstemmed, only the start token (idf ~0) is shared; stemmed, 'wing' matches 'wings' too
    assert lexical['stemmed'] > 5 * lexical['unstemmed']


def test_the_dense_part_of_a_lexical_model_is_asked_to_rank_on_its_own():
    """With dense cosines beside the full similarities, the loss adds their contrastive term: a dense part that
    ranks every query's own document last costs more than one that ranks it first (full similarities equal)."""
    eye = torch.eye(4, dtype=torch.bool)
    full = torch.eye(4) * 0.9
    good, bad = torch.eye(4) * 0.9, 1 - torch.eye(4)
    targets = torch.ones(4)
    loss = InBatchLoss()
    with_good = loss(InBatchScores(full * 5, full, eye, eye, good), targets)
    with_bad = loss(InBatchScores(full * 5, full, eye, eye, bad), targets)
    without = loss(InBatchScores(full * 5, full, eye, eye), targets)
    assert with_bad > with_good + 1 and with_good >= without
    assert InBatchLoss(dense_weight=0.)(InBatchScores(full * 5, full, eye, eye, bad), targets) == without
