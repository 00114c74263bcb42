"""Behaviour users rely on: batching, vocab, score units, predict/score_pairs, ULMFiT groups, encoders, export.

All models are tiny (see conftest.py); the whole file runs in well under a minute on two CPU cores.
"""
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
import torch
from fastai.torch_core import set_seed
from pandas.testing import assert_frame_equal

from conftest import PROJ_SZ, TINY, WORDS, make_pairs, tiny_learner, torch_threads, train_tiny
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import EncoderMismatchError

PAD = 1  # fastai's 'xxpad' index


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


# ----------------------------------------------------------------- helpers
def token_ids(dls, text: str) -> torch.Tensor:
    "The ids a user's text gets: the dataloaders' tokenizer, then `dls.vocab` (unknown words -> 0)."
    o2i = {tok: i for i, tok in enumerate(dls.vocab)}
    return torch.tensor([o2i.get(tok, 0) for tok in dls.tokenizer.tokenize_one(text)])


def pad_end(seqs, pad_idx: int = PAD) -> torch.Tensor:
    width = max(len(s) for s in seqs)
    return torch.stack([torch.cat([s, s.new_full((width - len(s),), pad_idx)]) for s in seqs])


def n_real(tokens: torch.Tensor, pad_idx: int = PAD) -> torch.Tensor:
    "Per-row count of non-pad tokens."
    return (tokens != pad_idx).sum(dim=1)


def assert_padded_at_end(tokens: torch.Tensor, pad_idx: int = PAD):
    "Every row is its real tokens, then only padding."
    lengths = n_real(tokens, pad_idx)
    positions = torch.arange(tokens.size(1))[None]
    assert torch.equal(tokens == pad_idx, positions >= lengths[:, None])


def some_texts(n_words, seed=1):
    rng = np.random.default_rng(seed)
    return [' '.join(rng.choice(WORDS, n)) for n in n_words]


FIXED_PAIRS = [('wing', 'wing heat flow over a slab'),
               ('shock wave', 'boundary layer on a flat plate'),
               ('jet nozzle drag', ' '.join(['jet nozzle'] * 50)),
               ('mach', ''),
               ('', 'panel beam shell')]


# ----------------------------------------------------------------- 1. batch-order invariance
@pytest.mark.parametrize('tower_name', ['doc_tower', 'query_tower'])
def test_tower_vector_does_not_depend_on_the_rest_of_the_batch(trained, tower_name):
    dls, model = trained.dls, trained.model
    tower = getattr(model, tower_name)
    # Lengths (in words) straddle fastai's bptt (72) so long texts are encoded in several chunks;
    # 0 words is an empty text, which is still one token (xxbos).
    texts = some_texts([5, 200, 1, 40, 100, 0, 71, 72, 73, 3])
    seqs = [token_ids(dls, t) for t in texts]
    assert max(len(s) for s in seqs) > 72 and min(len(s) for s in seqs) == 1
    model.eval()
    with torch.no_grad():
        alone = torch.cat([tower(s[None]) for s in seqs])            # batch of 1, no padding at all
        together = tower(pad_end(seqs))                               # mixed lengths, in this (unsorted) order
        for seed in range(3):
            perm = torch.randperm(len(seqs), generator=torch.Generator().manual_seed(seed))
            permuted = tower(pad_end([seqs[i] for i in perm]))
            torch.testing.assert_close(permuted, together[perm], atol=1e-5, rtol=0)
        shortest_first = sorted(range(len(seqs)), key=lambda i: len(seqs[i]))
        torch.testing.assert_close(tower(pad_end([seqs[i] for i in shortest_first])), together[shortest_first],
                                   atol=1e-5, rtol=0)
    assert alone.shape == together.shape == (len(texts), tower.out_features + tower.lexical_features)
    torch.testing.assert_close(together, alone, atol=1e-5, rtol=0)


def test_score_pairs_is_independent_of_row_order_and_batch_size(trained, pairs_df):
    learn = trained
    pairs = pairs_df[['query', 'doc']].iloc[:80]
    shuffled = pairs.sample(frac=1, random_state=3)
    scores = pd.Series(learn.score_pairs(pairs), index=pairs.index)
    np.testing.assert_allclose(learn.score_pairs(shuffled), scores.loc[shuffled.index].to_numpy(), atol=1e-5)
    np.testing.assert_allclose(learn.score_pairs(pairs, bs=1), scores.to_numpy(), atol=1e-5)
    np.testing.assert_allclose(learn.score_pairs(pairs, bs=7), scores.to_numpy(), atol=1e-5)


# ----------------------------------------------------------------- 2. per-field padding
def test_one_batch_pads_queries_and_documents_separately_at_the_end(trained):
    dls = trained.dls
    assert dls.vocab[PAD] == 'xxpad'
    for dl in (dls.train, dls.valid):
        queries, docs, target = dl.one_batch()
        assert queries.shape[0] == docs.shape[0] == target.shape[0] == dls.bs
        # Each field is as wide as its own longest text in this batch.
        assert queries.shape[1] == n_real(queries).max()
        assert docs.shape[1] == n_real(docs).max()
        assert queries.shape[1] < docs.shape[1]  # 1-3 word queries vs documents of up to 60 words
        assert_padded_at_end(queries, dls.vocab.index('xxpad'))
        assert_padded_at_end(docs, dls.vocab.index('xxpad'))
        assert (queries[:, 0] == dls.vocab.index('xxbos')).all() and (docs[:, 0] == dls.vocab.index('xxbos')).all()


# ----------------------------------------------------------------- 3. one shared vocabulary
def test_pool_is_last_max_mean_over_real_tokens_and_the_old_name_is_an_alias():
    from relcollab.core.model import masked_concat_pool, masked_last_max_mean_pool
    output = torch.arange(12.).reshape(1, 3, 4)
    pooled = masked_last_max_mean_pool(output, torch.tensor([[False, False, True]]))  # the padding is at the end
    torch.testing.assert_close(pooled, torch.cat([output[0, 1], output[0, 1], output[0, :2].mean(0)])[None])
    assert masked_concat_pool is masked_last_max_mean_pool


def test_batches_show_as_a_relevance_pair_through_fastais_show_batch(trained):
    from fastai.data.core import show_batch
    from relcollab.core.data import RelevancePair
    x, y, samples = trained.dls.valid._pre_show_batch(trained.dls.valid.one_batch(), max_n=3)
    assert isinstance(x, RelevancePair) and len(x) == 2
    table = show_batch(x, y, samples, max_n=3, display=False)  # fastai's dispatch finds relcollab's method
    assert list(table.columns) == ['query', 'document', 'score'] and len(table) == 3


def test_both_fields_use_the_one_shared_vocab(trained):
    dls = trained.dls
    # 'gust' only ever occurs in documents, yet a query containing it gets the same (known) id.
    assert 'gust' in dls.vocab
    query, doc = 'gust wing', 'rivet gust heat'
    q, d = dls.test_dl([(query, doc)]).one_batch()
    assert [dls.vocab[i] for i in q[0]] == dls.tokenizer.tokenize_one(query) == ['xxbos', 'gust', 'wing']
    assert [dls.vocab[i] for i in d[0]] == dls.tokenizer.tokenize_one(doc)
    assert q[0, 1] == d[0, 2] == dls.vocab.index('gust')
    # A word the vocab does not know is xxunk (0) on both sides.
    q, d = dls.test_dl([('zeppelin', 'zeppelin')]).one_batch()
    assert q[0, 1] == d[0, 1] == 0


def test_passing_vocab_makes_dls_vocab_that_exact_list(trained, pairs_df, tmp_path):
    vocab = list(trained.dls.vocab)
    custom = vocab[:9] + vocab[9:][::-1]  # same tokens, a different order: ids must follow this list
    assert custom != vocab
    dls = RelevanceDataLoaders.from_df(pairs_df, 'query', 'doc', 'score', vocab=custom, bs=16, seed=0, path=tmp_path)
    assert list(dls.vocab) == custom
    q, d = dls.test_dl([('wing heat', 'heat wing')]).one_batch()
    assert q[0].tolist() == [custom.index(t) for t in ['xxbos', 'wing', 'heat']]
    assert d[0].tolist() == [custom.index(t) for t in ['xxbos', 'heat', 'wing']]


# ----------------------------------------------------------------- 4. score normalization
def test_targets_are_scaled_by_the_data_min_and_max(trained, pairs_df):
    dls = trained.dls
    lo, hi = pairs_df['score'].min(), pairs_df['score'].max()
    assert (dls.score_scaler.lo, dls.score_scaler.hi) == (lo, hi) == (0.0, 3.0)
    for dl in (dls.train, dls.valid):
        target = dl.one_batch()[2]
        assert target.min() >= 0 and target.max() <= 1
    targets = torch.tensor([float(y) for ds in (dls.train_ds, dls.valid_ds) for *_, y in ds])
    torch.testing.assert_close(targets.sort().values,
                               torch.tensor(((pairs_df['score'] - lo) / (hi - lo)).sort_values().to_numpy()).float())
    assert targets.min() == 0 and targets.max() == 1


def test_score_range_maps_scores_into_0_1(pairs_df, tmp_path):
    dls = RelevanceDataLoaders.from_df(pairs_df, 'query', 'doc', 'score', score_range=(0, 10), bs=16, seed=0,
                                       path=tmp_path)
    scaler = dls.score_scaler
    assert scaler(5.0) == pytest.approx(0.5)
    assert scaler(0.0) == 0 and scaler(10.0) == 1
    for value in (0.0, 2.5, 7.0, 10.0):
        assert scaler.decode(scaler(value)) == pytest.approx(value)
    targets = dls.one_batch()[2]
    assert targets.max() <= 0.3 + 1e-6  # data scores are at most 3 of 10
    learn = tiny_learner(dls, path=tmp_path)
    scores = learn.score_pairs(FIXED_PAIRS)
    assert ((scores >= 0) & (scores <= 10)).all()
    score = learn.predict(*FIXED_PAIRS[0])[0]
    assert isinstance(score, float) and 0 <= score <= 10


def test_predictions_come_back_in_original_units(trained, pairs_df):
    learn = trained
    lo, hi = pairs_df['score'].min(), pairs_df['score'].max()
    score, normalized, normalized2 = learn.predict('wing heat', 'wing heat flow')
    assert type(score) is float
    assert lo <= score <= hi
    assert 0 <= float(normalized) <= 1 and torch.equal(torch.as_tensor(normalized), torch.as_tensor(normalized2))
    assert score == pytest.approx(float(learn.dls.score_scaler.decode(normalized)), abs=1e-6)
    scores = learn.score_pairs(pairs_df)
    assert ((scores >= lo) & (scores <= hi)).all()
    assert scores.std() > 0  # not a constant


# ----------------------------------------------------------------- 5. predict
def test_predict_accepts_two_strings_or_one_pair(trained):
    learn = trained
    query, doc = 'shock wave', 'shock wave on a wing at mach speed'
    separate, paired = learn.predict(query, doc), learn.predict((query, doc))
    assert len(separate) == len(paired) == 3
    assert separate[0] == paired[0]


def test_same_pair_scores_the_same_whatever_was_scored_before(trained, pairs_df):
    learn = trained
    query, doc = 'boundary layer', 'boundary layer on a plate'
    before = learn.predict(query, doc)[0]
    learn.score_pairs([(q, ' '.join([d] * 4)) for q, d in zip(pairs_df['query'][:20], pairs_df['doc'][:20])])
    learn.predict('jet nozzle vortex', ' '.join(['vortex'] * 150))
    after = learn.predict(query, doc)[0]
    assert after == before


@pytest.mark.parametrize('bad', ['only one string', ('a', 'b', 'c'), ('wing', 3), [('a', 'b')]])
def test_predict_rejects_anything_but_two_strings(trained, bad):
    with pytest.raises(TypeError, match='two strings'):
        trained.predict(bad)


def test_predict_rejects_a_single_two_character_string(trained):
    with pytest.raises(TypeError, match='two strings'):
        trained.predict('ab')


# ----------------------------------------------------------------- 6. score_pairs
def test_score_pairs_accepts_frames_and_tuples_and_matches_predict(trained):
    learn = trained
    frame = pd.DataFrame(FIXED_PAIRS, columns=['query', 'doc'])
    from_frame, from_tuples = learn.score_pairs(frame), learn.score_pairs(FIXED_PAIRS)
    for scores in (from_frame, from_tuples):
        assert isinstance(scores, np.ndarray) and scores.dtype == np.float32 and scores.shape == (len(FIXED_PAIRS),)
    np.testing.assert_allclose(from_frame, from_tuples, atol=1e-6)
    one_by_one = np.array([learn.predict(q, d)[0] for q, d in FIXED_PAIRS])
    np.testing.assert_allclose(from_frame, one_by_one, atol=1e-5)
    assert learn.score_pairs(FIXED_PAIRS[0]) == pytest.approx(one_by_one[:1], abs=1e-5)  # one bare tuple


@pytest.mark.parametrize('empty', [[], pd.DataFrame({'query': [], 'doc': []})])
def test_score_pairs_of_nothing_is_an_empty_array(trained, empty):
    scores = trained.score_pairs(empty)
    assert isinstance(scores, np.ndarray) and scores.shape == (0,) and scores.dtype == np.float32


def test_score_pairs_follows_the_dataloaders_column_names(pairs_df, tmp_path):
    df = pairs_df.rename(columns={'query': 'q', 'doc': 'd', 'score': 's'})
    dls = RelevanceDataLoaders.from_df(df, 'q', 'd', 's', bs=16, seed=0, path=tmp_path)
    learn = tiny_learner(dls, path=tmp_path)
    from_tuples = learn.score_pairs(FIXED_PAIRS)
    from_frame = learn.score_pairs(pd.DataFrame(FIXED_PAIRS, columns=['q', 'd']))
    np.testing.assert_allclose(from_tuples, from_frame, atol=1e-6)
    assert learn.predict(*FIXED_PAIRS[1])[0] == pytest.approx(float(from_tuples[1]), abs=1e-5)


# ----------------------------------------------------------------- 7. test_dl
def test_test_dl_on_a_raw_frame_and_get_preds(trained, pairs_df):
    learn = trained
    raw = pairs_df[['query', 'doc']].iloc[:40].sample(frac=1, random_state=0)  # only the two text columns
    untouched = raw.copy(deep=True)
    dl = learn.dls.test_dl(raw)
    preds, targets = learn.get_preds(dl=dl)
    assert targets is None
    assert preds.shape == (len(raw), 1) and ((preds >= 0) & (preds <= 1)).all()
    assert_frame_equal(raw, untouched)  # no cached-token columns added, nothing reordered
    np.testing.assert_allclose(learn.dls.score_scaler.decode(preds[:, 0]).numpy(), learn.score_pairs(raw), atol=1e-5)


def test_building_dataloaders_does_not_touch_the_callers_frame(pairs_df, tmp_path):
    df = pairs_df.iloc[:60].copy()
    df['score'] = df['score'].astype(int)
    untouched = df.copy(deep=True)
    RelevanceDataLoaders.from_df(df, 'query', 'doc', 'score', bs=16, seed=0, path=tmp_path)
    assert_frame_equal(df, untouched)


def test_from_df_checks_the_frame_unless_told_it_is_checked(pairs_df, tmp_path, monkeypatch):
    import relcollab.core.data as data
    calls = []
    monkeypatch.setattr(data, 'check_triples', lambda *args, **kwargs: calls.append(args))
    RelevanceDataLoaders.from_df(pairs_df.iloc[:40], bs=16, seed=0, path=tmp_path)
    RelevanceDataLoaders.from_df(pairs_df.iloc[:40], bs=16, seed=0, path=tmp_path, check=False)
    assert len(calls) == 1


def test_inference_dataloaders_hold_no_rows_and_batch_like_the_training_ones(trained):
    pairs = [('wing heat', 'heat flow over a slab'), ('mach', '')]
    dls = RelevanceDataLoaders.for_inference(trained.dls.vocab, (0, 3), bs=16)
    assert len(dls.train_ds) == len(dls.valid_ds) == 0
    assert (dls.query_col, dls.doc_col, dls.score_col, dls.vocab) == ('query', 'doc', 'score', trained.dls.vocab)
    assert (dls.score_scaler.lo, dls.score_scaler.hi, dls.tokenizer.max_tokens) == (0.0, 3.0, 512)
    for ours, theirs in zip(dls.test_dl(pairs).one_batch(), trained.dls.test_dl(pairs).one_batch()):
        assert type(ours) is type(theirs) and torch.equal(ours, theirs)
    with pytest.raises(ValueError, match='score_range'):
        RelevanceDataLoaders.for_inference(trained.dls.vocab, (3, 3))


# ----------------------------------------------------------------- 8. show_batch / show_results
def test_show_batch_returns_a_query_document_score_table(trained, pairs_df):
    table = trained.dls.show_batch(show=False)
    assert isinstance(table, pd.DataFrame)
    assert list(table.columns) == ['query', 'document', 'score']
    assert 0 < len(table) <= 9
    assert not table['query'].str.contains('xxpad').any() and not table['document'].str.contains('xxpad').any()
    # Scores are shown in the user's units, not the [0, 1] training scale.
    np.testing.assert_allclose(table['score'], table['score'].round(), atol=1e-5)
    assert set(table['score'].round()) <= set(pairs_df['score'])


def test_show_results_adds_a_predicted_column(trained, pairs_df):
    learn = trained
    dl = learn.dls.valid
    b = dl.one_batch()
    _, _, preds = learn.get_preds(dl=[b], with_decoded=True)
    table = dl.show_results(b, preds, show=False)
    assert list(table.columns) == ['query', 'document', 'score', 'predicted']
    n = len(table)
    assert 0 < n <= 9
    np.testing.assert_allclose(table['predicted'], learn.dls.score_scaler.decode(preds[:n, 0]).numpy(), atol=1e-5)
    assert table['predicted'].between(pairs_df['score'].min(), pairs_df['score'].max()).all()
    # Learner.show_results (fastai's) builds the same table but does not return it; it must at least run.
    learn.show_results(max_n=3, show=False)


# ----------------------------------------------------------------- 9. ULMFiT parameter groups
def _trainable(model):
    return {id(p) for p in model.parameters() if p.requires_grad}


def _fixed_term_weights(model) -> set:
    "The parameters of BM25 term weights that never train (`lexical='bm25'`)."
    return {id(p) for t in (model.query_tower, model.doc_tower) if t.term_weights is not None and not t.term_weights.learned
            for p in t.term_weights.parameters()}


def _head_group(model) -> set:
    "The last ULMFiT group: the head, and the lexical term weights when the towers learn them."
    term_weights = [t.term_weights for t in (model.query_tower, model.doc_tower) if t.term_weights is not None]
    return {id(p) for m in (model.head, *term_weights) for p in m.parameters()} - _fixed_term_weights(model)


@pytest.mark.parametrize('options', [dict(shared=False), dict(shared=True), dict(lexical='bm25')])
def test_ulmfit_groups_freeze_and_unfreeze(trained, options):
    learn = tiny_learner(trained.dls, **options)
    learn.create_opt()
    groups = learn.opt.param_groups
    assert len(groups) == TINY['n_layers'] + 2
    # Every parameter is in exactly one group, but BM25's fixed term weights (lexical='bm25'; without a word pool the
    # default two towers learn theirs).
    fixed = _fixed_term_weights(learn.model)
    assert bool(fixed) == (options == dict(lexical='bm25'))
    in_groups = [id(p) for g in groups for p in g['params']]
    assert len(in_groups) == len(set(in_groups)) == len(list(learn.model.parameters())) - len(fixed)
    assert set(in_groups) == {id(p) for p in learn.model.parameters()} - fixed

    head = _head_group(learn.model)
    learn.freeze()
    assert _trainable(learn.model) == head
    learn.freeze_to(-2)  # ULMFiT's second step: the last LSTM layer (of both towers) and the head
    last_layers = {id(p) for t in (learn.model.query_tower, learn.model.doc_tower)
                   for p in t.awd_lstm.rnns[-1].parameters()}
    assert _trainable(learn.model) == head | last_layers
    learn.unfreeze()
    assert {id(p) for p in learn.model.parameters() if not p.requires_grad} == fixed


def test_shared_towers_are_one_module_with_fewer_parameters(trained):
    separate, shared = tiny_learner(trained.dls, lexical=False), tiny_learner(trained.dls, shared=True)
    assert shared.model.query_tower.term_weights is None  # a shared tower has no lexical channel by default
    assert shared.model.query_tower is shared.model.doc_tower
    assert separate.model.query_tower is not separate.model.doc_tower
    n_params = lambda m: sum(p.numel() for p in m.parameters())
    tower = n_params(separate.model.doc_tower)
    assert n_params(shared.model) == n_params(separate.model) - tower < n_params(separate.model)
    scores = shared.score_pairs(FIXED_PAIRS)
    assert scores.shape == (len(FIXED_PAIRS),) and np.isfinite(scores).all()


# ----------------------------------------------------------------- 10. load_encoder
def test_language_model_stage_warns_it_trains_from_scratch(lm_stage):
    assert lm_stage.warnings and 'FROM SCRATCH' in str(lm_stage.warnings[0].message)
    assert lm_stage.lm.encoder_path.exists()


@pytest.mark.parametrize('shared', [False, True])
def test_load_encoder_puts_the_lm_encoder_in_both_towers(lm_stage, pairs_df, shared):
    lm, path = lm_stage.lm, lm_stage.path
    dls = RelevanceDataLoaders.from_df(pairs_df, 'query', 'doc', 'score', vocab=lm.vocab, bs=16, seed=0, path=path)
    learn = tiny_learner(dls, path=path, shared=shared)
    lm_embedding = lm.learn.model[0].encoder.weight.detach()
    assert not torch.equal(learn.model.query_tower.awd_lstm.encoder.weight, lm_embedding)
    assert learn.load_encoder(lm.encoder_name) is learn
    lm_state = lm.learn.model[0].state_dict()
    for tower in (learn.model.query_tower, learn.model.doc_tower):
        assert torch.equal(tower.awd_lstm.encoder.weight, lm_embedding)
        for key, value in tower.awd_lstm.state_dict().items():
            assert torch.equal(value, lm_state[key]), key
    assert _trainable(learn.model) == _head_group(learn.model)  # frozen, ULMFiT-style
    assert np.isfinite(learn.score_pairs(FIXED_PAIRS)).all()


def test_load_encoder_with_another_size_says_which_config(lm_stage, pairs_df):
    lm, path = lm_stage.lm, lm_stage.path
    dls = RelevanceDataLoaders.from_df(pairs_df, 'query', 'doc', 'score', vocab=lm.vocab, bs=16, seed=0, path=path)
    learn = tiny_learner(dls, path=path, config=dict(TINY, emb_sz=24))
    with pytest.raises(EncoderMismatchError) as info:
        learn.load_encoder(lm.encoder_name)
    message = str(info.value)
    assert '16' in message and '24' in message and 'relevance_config' in message
    assert isinstance(info.value, ValueError)


def test_load_encoder_with_another_vocab_is_refused(lm_stage, pairs_df):
    lm, path = lm_stage.lm, lm_stage.path
    other = list(lm.vocab)
    other[9], other[10] = other[10], other[9]  # same tokens and size: only the ids differ
    dls = RelevanceDataLoaders.from_df(pairs_df, 'query', 'doc', 'score', vocab=other, bs=16, seed=0, path=path)
    learn = tiny_learner(dls, path=path)
    before = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with pytest.raises(EncoderMismatchError, match='vocab'):
        learn.load_encoder(lm.encoder_name)
    assert all(torch.equal(v, before[k]) for k, v in learn.model.state_dict().items())  # nothing half-loaded


def test_load_encoder_of_a_missing_file_says_how_to_save_one(trained, tmp_path):
    learn = tiny_learner(trained.dls, path=tmp_path)
    with pytest.raises(FileNotFoundError, match='save_encoder'):
        learn.load_encoder('no_such_encoder')


# ----------------------------------------------------------------- 11. export
SCORE_EXPORTED = """
import json, sys, torch
torch.set_num_threads(1)
from fastai.learner import load_learner
learn = load_learner(sys.argv[1], cpu=True)
pairs = json.loads(sys.argv[2])
with learn.no_bar():
    scores = learn.score_pairs([tuple(p) for p in pairs]).tolist()
    predicted = [learn.predict(q, d)[0] for q, d in pairs]
print(json.dumps({'scores': scores, 'predicted': predicted}))
"""


def test_exported_learner_scores_the_same_in_a_fresh_python(trained, tmp_path):
    learn = trained
    expected = learn.score_pairs(FIXED_PAIRS)
    learn.export(tmp_path/'m.pkl')
    np.testing.assert_array_equal(learn.score_pairs(FIXED_PAIRS), expected)  # export leaves the learner usable
    done = subprocess.run([sys.executable, '-c', SCORE_EXPORTED, str(tmp_path/'m.pkl'), json.dumps(FIXED_PAIRS)],
                          cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    np.testing.assert_allclose(result['scores'], expected, atol=1e-6, rtol=0)
    np.testing.assert_allclose(result['predicted'], expected, atol=1e-5, rtol=0)


# ----------------------------------------------------------------- 12. determinism
def test_same_seed_same_weights_and_scores(tmp_path):
    df = make_pairs(120, seed=5)
    first_learn, second_learn = train_tiny(df, tmp_path/'a', seed=0), train_tiny(df, tmp_path/'b', seed=0)
    first, second = first_learn.model.state_dict(), second_learn.model.state_dict()
    assert first.keys() == second.keys()
    for key in first:
        assert torch.equal(first[key], second[key]), key
    np.testing.assert_array_equal(first_learn.score_pairs(df), second_learn.score_pairs(df))
    other = train_tiny(df, tmp_path/'c', seed=1).model.state_dict()
    assert not all(torch.equal(first[key], other[key]) for key in first)  # the seed does matter
