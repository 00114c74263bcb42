"""README claims that had no test that could fail (issue 12, item 4): one test each, checking what the README promises.

1. the untrained lexical channel scores as bm25s does (README, Results: "the untrained lexical channel is BM25 over
   relcollab's tokens");
2. `--valid-pct` / `valid_pct` holds out whole queries and the language model never reads a validation query;
3. pseudo-queries come from training documents only, at the top score, none for validation rows;
4. `fit --corpus` reads `.txt` and CSV/TSV corpora (and the texts reach the language model and the pseudo-queries);
5. resuming a relevance checkpoint on other data is refused by the library API too (`fine_tune_relevance`);
6. `relcollab fuse` writes the fused run it should (content, not the exit code);
7. `shared=True`, `in_batch=False`, `pool_embeddings=True` and `lexical=False` train, save, load and score identically.
(8. local pretrained LM files map each word to its own row: tests/test_lm.py,
   test_fine_tuning_from_local_pretrained_files_keeps_the_known_words.)

Nothing here trains a language model: the recipe tests replace `language_model_stage` and stop at the relevance data.
"""
import re
import types

import numpy as np
import pandas as pd
import pytest
from fastai.torch_core import set_seed

from conftest import PROJ_SZ, TINY, make_pairs, torch_threads
from relcollab.training import recipe
from relcollab.app.cli import main
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import relevance_learner
from test_cranfield import CRANFIELD_DIR


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


# ----------------------------------------------------------------- 1. the untrained lexical channel is bm25s's BM25
needs_cranfield = pytest.mark.skipif(not (CRANFIELD_DIR/'cran.all.1400').is_file(),
                                     reason=f"Cranfield not found at {CRANFIELD_DIR} (set RELCOLLAB_CRANFIELD)")
N_QUERIES, N_DOCS = 20, 200


@pytest.fixture(scope='module')
def cranfield_slice():
    """The first 20 judged Cranfield queries, their judged documents plus random others (200 in all), their qrels,
    and an untrained default learner whose training rows hold every one of the 200 documents."""
    from relcollab.datasets.cranfield import load_cranfield
    cran = load_cranfield(CRANFIELD_DIR)
    query_ids = list(pd.unique(cran.qrels.query_id))[:N_QUERIES]
    qrels = cran.qrels[cran.qrels.query_id.isin(query_ids)]
    rng = np.random.default_rng(0)
    others = rng.permutation(sorted(set(cran.docs.doc_id) - set(qrels.doc_id)))[:N_DOCS - qrels.doc_id.nunique()]
    docs = cran.docs[cran.docs.doc_id.isin(set(qrels.doc_id) | set(others))].reset_index(drop=True)
    queries = cran.queries[cran.queries.query_id.isin(query_ids)].reset_index(drop=True)
    rows = pd.DataFrame({'query': rng.choice(queries.text, len(docs)), 'doc': docs.text,
                         'score': rng.integers(0, 5, len(docs)).astype(float), 'is_valid': False})
    rows = pd.concat([rows, rows.head(8).assign(is_valid=True)], ignore_index=True)  # validation: the same documents
    dls = RelevanceDataLoaders.from_df(rows, valid_col='is_valid', bs=16, seed=0, score_range=(0, 4))
    learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ)  # the default: two towers with the lexical channel
    with learn.no_bar():
        lexical = (learn.encode(queries.text.tolist(), side='query')[:, PROJ_SZ:] @
                   learn.encode(docs.text.tolist(), side='doc')[:, PROJ_SZ:].T)
    lexical /= learn.model.head.log_lexical_scale.exp().item()  # the query side carries the learned lexical scale
    return types.SimpleNamespace(docs=docs, queries=queries, qrels=qrels, learn=learn, lexical=lexical)


@needs_cranfield
def test_untrained_lexical_channel_is_bm25s_on_relcollabs_tokens(cranfield_slice):
    """Exactly bm25s's BM25 (lucene idf, k1=1.2, b=0.75) over the same terms: relcollab's tokens (unknown words as
    xxunk), Snowball-stemmed independently here; the query counts each term once, as the channel does. bm25s's
    lucene variant leaves out BM25's constant factor (k1 + 1), so relcollab's scores are (k1 + 1) times bm25s's."""
    import bm25s
    import Stemmer
    s, stem = cranfield_slice, Stemmer.Stemmer('english').stemWord
    vocab, tokenizer = set(s.learn.dls.vocab), s.learn.dls.tokenizer
    terms = lambda text: [t if t.startswith('xx') else stem(t) for t in
                          (t if t in vocab else 'xxunk' for t in tokenizer.tokenize_one(text))]
    doc_tower = s.learn.model.doc_tower.term_weights
    k1, b = doc_tower.k1, doc_tower.b
    assert (k1, b) == (1.2, 0.75)
    retriever = bm25s.BM25(k1=k1, b=b, method='lucene')
    retriever.index([terms(text) for text in s.docs.text], show_progress=False)
    expected = np.stack([retriever.get_scores(sorted(set(terms(text)))) for text in s.queries.text])
    assert (expected > 0).mean() > 0.5  # most (query, document) pairs share a term: a real comparison
    np.testing.assert_allclose(s.lexical, (k1 + 1) * expected, rtol=1e-5, atol=1e-5)  # measured: rel. error <= 4e-7


def _top(scores, k=10): return set(np.argsort(-scores, kind='stable')[:k])


def _ndcg10(scores, s) -> float:
    from relcollab.retrieval.evaluate import evaluate_run
    from relcollab.retrieval.index import SearchResults
    from relcollab.retrieval.trec import run_frame
    order = np.argsort(-scores, axis=1, kind='stable')[:, :100]
    results = SearchResults(s.docs.doc_id.astype(str).to_numpy()[order], np.take_along_axis(scores, order, axis=1))
    qrels = s.qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'}).astype({'qid': str, 'docid': str})
    return evaluate_run(run_frame(s.queries.query_id.astype(str), results), qrels, metrics=['ndcg@10'])['ndcg@10']


@needs_cranfield
def test_untrained_lexical_channel_ranks_like_the_bm25_baseline(cranfield_slice):
    """Against the project's BM25 baseline (bm25s on raw words, English stopwords removed, k1=1.5), which differs
    in tokenization, stopwords and k1: the rankings agree closely and retrieve as well.

    Measured on this slice: top-10 overlap 0.835 (mean over the 20 queries), nDCG@10 0.712 vs BM25's 0.714. With the
    channel broken the overlap fell to 0.61 (idf left at 1), 0.74 (average length left at its default), 0.715 (no
    stemming), and nDCG@10 to 0.589, 0.641, 0.671."""
    from relcollab.retrieval.bm25 import BM25Baseline
    s = cranfield_slice
    bm25 = BM25Baseline().index(s.docs.doc_id.astype(str), s.docs.text).scores(s.queries.text.tolist())
    overlap = np.mean([len(_top(ours) & _top(theirs)) / 10 for ours, theirs in zip(s.lexical, bm25)])
    assert overlap >= 0.78, overlap
    assert _ndcg10(s.lexical, s) >= _ndcg10(bm25, s) - 0.03


# ----------------------------------------------------------------- the recipe, stopped before training
class Captured(Exception):
    "Raised instead of building the relevance data loaders: the recipe's inputs have been recorded."


@pytest.fixture
def captured(monkeypatch):
    """Replaces the recipe's language-model stage (records the texts it would read) and its data loaders (records
    the rows, then stops the run with `Captured`). Returns the namespace the records go into."""
    seen = types.SimpleNamespace()

    def language_model_stage(texts, **kwargs):
        seen.lm_texts = list(texts)
        return types.SimpleNamespace(vocab=['xxunk', 'xxpad'], encoder_name='lm_enc')

    def from_df(rows, *args, **kwargs):
        seen.rows, seen.from_df_kwargs = rows.copy(), kwargs
        raise Captured
    monkeypatch.setattr(recipe, 'language_model_stage', language_model_stage)
    monkeypatch.setattr(recipe, 'RelevanceDataLoaders', types.SimpleNamespace(from_df=from_df))
    return seen


def distinct_queries_and_docs(n=200, seed=7) -> pd.DataFrame:
    "make_pairs rows, without a document that is also a query's text (so 'the LM read a query' is unambiguous)."
    df = make_pairs(n, seed=seed)
    return df[~df['doc'].isin(set(df['query']))].reset_index(drop=True)


# ----------------------------------------------------------------- 2. validation holds out whole, unseen queries
@pytest.mark.parametrize('how', ['cli --valid-pct', 'library valid_col'])
def test_validation_holds_out_whole_queries_that_the_language_model_never_reads(captured, tmp_path, how):
    df = distinct_queries_and_docs()
    if how == 'cli --valid-pct':
        df.to_csv(tmp_path/'triples.csv', index=False)
        with pytest.raises(Captured):
            main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--valid-pct', '0.3'])
    else:
        chosen = set(pd.unique(df['query'])[::4])
        with pytest.raises(Captured):
            recipe.train_relevance_model(df.assign(held_out=df['query'].isin(chosen)), valid_col='held_out')
    valid_col = captured.from_df_kwargs['valid_col']
    rows = captured.rows.iloc[:len(df)]  # the caller's rows, in order; pseudo-queries follow them
    assert rows[['query', 'doc', 'score']].equals(df[['query', 'doc', 'score']])
    is_valid = rows[valid_col].astype(bool)
    valid_queries, train_queries = set(rows['query'][is_valid]), set(rows['query'][~is_valid])
    assert valid_queries and not valid_queries & train_queries  # whole queries: no query on both sides
    if how == 'cli --valid-pct':
        assert len(valid_queries) == round(0.3 * df['query'].nunique())  # the share of *distinct* queries
        assert is_valid.sum() > len(valid_queries)  # queries with several rows were held out with all of them
    else:
        assert valid_queries == chosen
    lm_texts = set(captured.lm_texts)
    assert not lm_texts & valid_queries  # the language model never reads a validation query
    assert train_queries | set(rows['doc'][~is_valid]) <= lm_texts  # it reads every text of the training rows


# ----------------------------------------------------------------- 3. pseudo-queries: training documents, top score
TRAIN_DOCS = ['the lift of a wing rises with the angle of attack . drag grows with the square of speed .',
              'heat flows through a slab ; its surface cools first . the core stays warm for hours',
              'a shock wave forms ahead of a blunt body at high mach number . the boundary layer thickens .']
VALID_ONLY_DOC = 'zebra giraffe okapi . zebra stripes confuse flies ; giraffe necks reach leaves .'


def _source_of(query: str, doc: str, sources: list):
    """The source text a pseudo-query row was cut from: `query` is a run of its words and `doc` is that text,
    whole or with the run cut out. None when no source fits."""
    words, doc_words = query.split(), doc.split()
    for source in sources:
        text = source.split()
        for start in range(len(text) - len(words) + 1):
            if text[start:start + len(words)] == words and doc_words in (text, text[:start] + text[start + len(words):]):
                return source
    return None


@pytest.mark.parametrize('score_range, top', [((0, 5), 5.0), (None, 3.0)])
def test_pseudo_queries_come_from_training_documents_at_the_top_score(score_range, top):
    df = pd.DataFrame({'query': ['wing lift', 'slab heat', 'shock', 'zebra', 'wing lift'],
                       'doc': TRAIN_DOCS + [VALID_ONLY_DOC, TRAIN_DOCS[2]],
                       'score': [3.0, 2.0, 1.0, 3.0, 0.0], 'is_valid': [False, False, False, True, True]})
    before = df.copy()
    corpus = ['rivets hold the panels of a fuselage . fatigue cracks start at rivet holes .']
    out = recipe.with_pseudo_queries(df, 'query', 'doc', 'score', 'is_valid', per_doc=3, score_range=score_range,
                                     seed=0, corpus=corpus)
    pd.testing.assert_frame_equal(df, before)  # the caller's frame is not changed
    assert out.iloc[:len(df)].equals(df)
    weak = out.iloc[len(df):]
    assert len(weak) == 3 * (len(TRAIN_DOCS) + len(corpus))  # per_doc for every distinct training document and text
    assert not weak['is_valid'].astype(bool).any()  # validation rows get none
    assert (weak['score'] == top).all()  # the top of score_range, else the highest score in the data
    sources = [_source_of(q, d, TRAIN_DOCS + corpus) for q, d in zip(weak['query'], weak['doc'])]
    assert None not in sources and set(sources) == set(TRAIN_DOCS + corpus)
    assert not weak['query'].str.contains('zebra|giraffe|okapi').any()  # nothing from the validation-only document


def test_the_recipe_adds_pseudo_queries_from_training_rows_only(captured, tmp_path):
    df = distinct_queries_and_docs(120, seed=3)
    valid_doc = 'zebra ' + df['doc'][0]  # a document only validation rows hold
    df = pd.concat([df, pd.DataFrame({'query': ['zebra crossing'], 'doc': [valid_doc], 'score': [2.0]})],
                   ignore_index=True)
    with pytest.raises(Captured):
        recipe.train_relevance_model(df.assign(is_valid=df['query'] == 'zebra crossing'), valid_col='is_valid',
                                     pseudo_per_doc=2, score_range=(0, 4))
    weak = captured.rows.iloc[len(df):]
    long_enough = [d for d in pd.unique(df['doc'][:-1]) if len(d.split()) >= 4]  # pseudo_queries' min_words + 1
    assert len(weak) == 2 * len(long_enough) and (weak['score'] == 4.0).all() and not weak['is_valid'].any()
    assert not weak['doc'].str.contains('zebra').any()


# ----------------------------------------------------------------- 4. fit --corpus reads .txt, CSV and TSV
def test_fit_corpus_reads_txt_csv_and_tsv_files_into_the_language_model(captured, tmp_path, capsys):
    df = distinct_queries_and_docs(60, seed=4)
    df.to_csv(tmp_path/'triples.csv', index=False)
    txt = ['okapi herds graze near the river at dawn', 'a second line, with a comma; and "quotes"', 'ünïcödé wörds ok']
    (tmp_path/'extra.txt').write_text(txt[0] + '\n\n   \n' + txt[1] + '\r\n' + txt[2] + '\n', encoding='utf-8')
    csv = pd.DataFrame({'id': ['7', '8'], 'text': ['zebra stripes, as it turns out, confuse flies', 'NA']})
    csv.to_csv(tmp_path/'extra.csv', index=False)
    tsv = pd.DataFrame({'text': ['giraffe necks reach the high leaves, slowly', '1234'], 'source': ['zoo', 'x']})
    tsv.to_csv(tmp_path/'extra.tsv', sep='\t', index=False)
    with pytest.raises(Captured):
        main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'),
              '--corpus', str(tmp_path/'extra.txt'), str(tmp_path/'extra.csv'), str(tmp_path/'extra.tsv')])
    corpus = txt + csv['text'].tolist() + tsv['text'].tolist()  # one text per non-empty line; the `text` columns
    training_texts = set(df['doc']) | set(df['query'])
    assert [t for t in captured.lm_texts if t not in training_texts] == corpus  # exactly these, as strings, in order
    weak = captured.rows.iloc[len(df):]
    for text in corpus:  # each corpus text of 4+ words also gives pseudo-queries (spans of it)
        if len(text.split()) >= 4: assert any(_source_of(q, d, [text]) for q, d in zip(weak['query'], weak['doc'])), text
    (tmp_path/'no_text.csv').write_text('body\nsome words\n')
    assert main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'),
                 '--corpus', str(tmp_path/'no_text.csv')]) == 2
    assert 'needs a `text` column' in capsys.readouterr().err


def test_fit_passes_no_lexical_and_valid_pct_to_the_recipe(tmp_path, monkeypatch):
    "`--no-lexical` reaches `train_relevance_model` as lexical=False, `--learned-lexical` as 'learned', the default as 'auto'."
    calls = []
    def train(df, *args, **kwargs):
        calls.append(kwargs)
        return types.SimpleNamespace(export=lambda path: None)
    monkeypatch.setattr(recipe, 'train_relevance_model', train)
    make_pairs(20).to_csv(tmp_path/'triples.csv', index=False)
    for extra in ([], ['--no-lexical'], ['--learned-lexical']):
        assert main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--valid-pct', '0.4', *extra]) == 0
    assert [(c['lexical'], c['valid_pct']) for c in calls] == [('auto', 0.4), (False, 0.4), ('learned', 0.4)]
    with pytest.raises(SystemExit):  # one or the other
        main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--no-lexical', '--learned-lexical'])
    assert main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--no-lexical-choice']) == 0
    assert calls[-1]['choose_lexical'] is False and 'choose_lexical' not in calls[0]
    assert main(['fit', str(tmp_path/'triples.csv'), '--out', str(tmp_path/'m.pkl'), '--no-score-map']) == 0
    assert calls[-1]['fit_scores'] is False and 'fit_scores' not in calls[0]


# ----------------------------------------------------------------- 5. resuming on other data is refused (library API)
def _learner(df, path, vocab=None):
    set_seed(0, reproducible=True)
    dls = RelevanceDataLoaders.from_df(df, bs=16, seed=0, path=path, vocab=vocab)
    set_seed(0, reproducible=True)
    return relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, path=path)


@pytest.mark.parametrize('change', ['scores', 'rows', 'validation split'])
def test_resuming_a_checkpoint_on_other_data_is_refused_by_the_library(tmp_path, change):
    from relcollab.training.checkpoint import CHECKPOINT_FILE, CheckpointError
    from relcollab.training.recipe import fine_tune_relevance
    df = make_pairs(120, seed=2).assign(is_valid=lambda d: d.index % 5 == 0)
    first = _learner(df.drop(columns='is_valid'), tmp_path)
    with first.no_bar(), first.no_logging(): fine_tune_relevance(first, epochs=2, checkpoint_dir=tmp_path/'ckpt')
    if change == 'scores': other = df.assign(score=df['score'].to_numpy()[::-1]).drop(columns='is_valid')
    elif change == 'rows': other = pd.concat([df, make_pairs(8, seed=9)], ignore_index=True).drop(columns='is_valid')
    else: other = df  # the same rows, another validation split (valid_col instead of valid_pct)
    vocab = list(first.dls.vocab)  # same vocabulary, sizes and schedule: only the data differs
    if change == 'validation split':
        set_seed(0, reproducible=True)
        dls = RelevanceDataLoaders.from_df(other, valid_col='is_valid', bs=16, seed=0, path=tmp_path, vocab=vocab)
        set_seed(0, reproducible=True)
        second = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, path=tmp_path)
    else: second = _learner(other, tmp_path, vocab=vocab)
    before = {k: v.clone() for k, v in second.model.state_dict().items()}
    path = tmp_path/'ckpt'/CHECKPOINT_FILE
    with pytest.raises(CheckpointError, match=re.escape(str(path)) + r' .*other data.*resume with the same data '
                                              r'and options, or use a new checkpoint directory'):
        fine_tune_relevance(second, epochs=2, checkpoint_dir=tmp_path/'ckpt', resume=True)
    assert all((before[k] == v).all() for k, v in second.model.state_dict().items())  # refused before loading anything


def test_resuming_on_the_same_data_rebuilt_from_scratch_is_accepted(tmp_path):
    "The data check does not refuse a genuine resume: the same rows, loaded again, finish the run."
    from relcollab.training.recipe import fine_tune_relevance
    df = make_pairs(120, seed=2)
    first = _learner(df, tmp_path)
    with first.no_bar(), first.no_logging(): fine_tune_relevance(first, epochs=2, checkpoint_dir=tmp_path/'ckpt')
    again = _learner(df.copy(), tmp_path)
    with again.no_bar(), again.no_logging():
        fine_tune_relevance(again, epochs=2, checkpoint_dir=tmp_path/'ckpt', resume=True)  # finished: restores it
    assert all((v == again.model.state_dict()[k]).all() for k, v in first.model.state_dict().items())


# ----------------------------------------------------------------- 6. relcollab fuse writes the fused run
RUN_A = 'q1 Q0 d1 1 3.0 a\nq1 Q0 d2 2 2.0 a\nq1 Q0 d3 3 1.0 a\nq2 Q0 d1 1 0.5 a\nq2 Q0 d4 2 0.4 a\n'
RUN_B = 'q1 Q0 d3 1 10.0 b\nq1 Q0 d1 2 9.0 b\nq1 Q0 d4 3 5.0 b\nq2 Q0 d4 1 1.0 b\nq2 Q0 d5 2 0.2 b\n'
# by hand: rrf with k=10, 1 / (10 + rank) summed over the runs; wsum 0.7 / 0.3 of the per-query min-max scores
RRF_K10 = {'q1': [('d1', 1/11 + 1/12), ('d3', 1/11 + 1/13), ('d2', 1/12), ('d4', 1/13)],
           'q2': [('d4', 1/12 + 1/11), ('d1', 1/11), ('d5', 1/12)]}
WSUM_07_03 = {'q1': [('d1', 0.7 * 1 + 0.3 * 0.8), ('d2', 0.7 * 0.5), ('d3', 0.3 * 1), ('d4', 0.0)],
              'q2': [('d1', 0.7 * 1), ('d4', 0.3 * 1), ('d5', 0.0)]}


@pytest.mark.parametrize('options, expected, k', [
    (['--method', 'rrf', '--rrf-k', '10'], RRF_K10, None),
    (['--method', 'wsum', '--weights', '0.7', '0.3'], WSUM_07_03, None),
    (['--method', 'wsum', '--weights', '0.7', '0.3', '--k', '2'], WSUM_07_03, 2),
], ids=['rrf-k10', 'wsum', 'wsum-top2'])
def test_fuse_writes_the_fused_run(tmp_path, capsys, options, expected, k):
    (tmp_path/'a.trec').write_text(RUN_A)
    (tmp_path/'b.trec').write_text(RUN_B)
    assert main(['fuse', str(tmp_path/'a.trec'), str(tmp_path/'b.trec'), *options, '--tag', 'both',
                 '--out', str(tmp_path/'fused.trec')]) == 0
    lines = [line.split() for line in (tmp_path/'fused.trec').read_text().splitlines()]
    assert all(len(f) == 6 and f[1] == 'Q0' and f[5] == 'both' for f in lines)
    got = {}
    for qid, _, docid, rank, score, _ in lines: got.setdefault(qid, []).append((docid, int(rank), float(score)))
    assert list(got) == ['q1', 'q2']  # queries in the order the runs list them
    for qid, ranking in expected.items():
        ranking = ranking[:k] if k else ranking
        assert [(d, r) for d, r, _ in got[qid]] == [(d, rank) for rank, (d, _) in enumerate(ranking, start=1)]
        np.testing.assert_allclose([s for _, _, s in got[qid]], [s for _, s in ranking], rtol=1e-12, atol=1e-12)


# ----------------------------------------------------------------- 7. options round trip through save_pretrained
ROUND_TRIP_PAIRS = [('wing', 'wing heat flow over a slab'), ('shock wave', 'boundary layer on a flat plate'),
                    ('jet nozzle drag', ' '.join(['jet nozzle'] * 50)), ('mach', ''), ('', 'panel beam shell'),
                    ('gust rivet', 'a rivet in the gust')]


@pytest.mark.parametrize('options', [{'shared': True}, {'in_batch': False}, {'pool_embeddings': True},
                                     {'lexical': False}], ids=lambda o: '-'.join(f'{k}={v}' for k, v in o.items()))
def test_options_train_save_load_and_score_identically(tmp_path, options):
    from relcollab.retrieval.pretrained import load_pretrained
    df = make_pairs(120, seed=6)
    set_seed(0, reproducible=True)
    dls = RelevanceDataLoaders.from_df(df, bs=16, seed=0, path=tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, path=tmp_path, **options)
    start = {k: v.clone() for k, v in learn.model.state_dict().items()}
    with learn.no_bar(), learn.no_logging(): learn.fit_one_cycle(1, 1e-2)
    assert any(not (start[k] == v).all() for k, v in learn.model.state_dict().items() if v.is_floating_point())
    model = learn.model
    assert (model.shared, model.in_batch, model.query_tower.pool_embeddings, model.query_tower.term_weights is not None) \
        == (options.get('shared', False), options.get('in_batch', True), options.get('pool_embeddings', False),
            options.get('lexical', not options.get('shared', False)))
    loaded = load_pretrained(learn.save_pretrained(tmp_path/'model'))
    assert loaded.model.hparams == model.hparams and loaded.model.shared == model.shared
    docs = df['doc'].tolist()[:30] + ['']
    with learn.no_bar(), loaded.no_bar():
        np.testing.assert_array_equal(loaded.score_pairs(ROUND_TRIP_PAIRS), learn.score_pairs(ROUND_TRIP_PAIRS))
        np.testing.assert_array_equal(loaded.score_pairs(df.iloc[:40]), learn.score_pairs(df.iloc[:40]))
        np.testing.assert_array_equal(loaded.encode(docs, side='doc'), learn.encode(docs, side='doc'))
        np.testing.assert_array_equal(loaded.encode('wing heat', side='query'), learn.encode('wing heat', side='query'))
        assert [loaded.predict(q, d)[0] for q, d in ROUND_TRIP_PAIRS] == [learn.predict(q, d)[0] for q, d in ROUND_TRIP_PAIRS]
