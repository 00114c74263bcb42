"""Hybrid search (relcollab.retrieval.hybrid): BM25 feedback on the query vectors, then z-score fusion with BM25."""
import numpy as np
import pandas as pd
import pytest

from conftest import make_pairs, torch_threads, train_tiny
from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.retrieval.evaluate import evaluate_run
from relcollab.retrieval.hybrid import HybridSearch, hybrid_scores, load_hybrid_parts, rocchio, zscore_per_query
from relcollab.retrieval.index import DocIndex, IndexFileError, IndexMismatchError
from relcollab.retrieval.trec import run_frame

QUERIES = ['wing heat', 'shock wave drag', 'mach', 'zebra']  # 'zebra': no word BM25 knows


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@pytest.fixture(scope='module')
def docs():
    texts = make_pairs(60, seed=5)['doc'].tolist()
    return pd.DataFrame({'id': [f'd{i:02d}' for i in range(60)], 'text': texts})


@pytest.fixture(scope='module')
def parts(trained, docs):
    "The learner, its index and a BM25 index of the same documents."
    return trained, trained.index(docs), BM25Baseline().index(docs['id'], docs['text'])


def by_hand(learn, docs, bm25, queries, weight, depth, beta):
    "The hybrid scores computed from whole vectors, without HybridSearch."
    q = learn.encode(queries, side='query')
    d = learn.encode(docs['text'].tolist(), side='doc')
    dense = learn.model.head.dense_features
    lexical_scores = bm25.scores(queries)
    for row, query_scores in enumerate(lexical_scores):
        if depth and query_scores.max() > 0:
            top = np.argsort(-query_scores, kind='stable')[:depth]
            q[row, :dense] += beta * d[top, :dense].mean(0)
    model = q @ d.T
    z = lambda s: (s - s.mean(1, keepdims=True)) / np.where(s.std(1, keepdims=True) > 0, s.std(1, keepdims=True), 1)
    return weight * z(model.astype(np.float64)) + (1 - weight) * z(lexical_scores.astype(np.float64))


def test_rocchio_adds_the_mean_of_the_chosen_documents():
    queries = np.array([[1., 0.], [0., 1.]])
    docs = np.array([[2., 0.], [0., 4.], [2., 2.]])
    assert rocchio(queries, docs, np.array([[1, 2], [0, 0]]), weight=0.5).tolist() == [[1.5, 1.5], [1., 1.]]
    assert rocchio(queries, docs, np.zeros((2, 0))).tolist() == queries.tolist()


def test_zscore_per_query_centres_and_scales_each_row():
    scores = np.array([[1., 2., 3., 6.], [5., 5., 5., 5.]])
    z = zscore_per_query(scores)
    np.testing.assert_allclose(z[0].mean(), 0, atol=1e-12)
    np.testing.assert_allclose(z[0].std(), 1)
    assert (z[1] == 0).all()


@pytest.mark.parametrize('weight, depth, beta', [(0.7, 3, 1.0), (0.4, 5, 0.5), (1.0, 0, 1.0)])
def test_hybrid_scores_are_the_fused_z_scores_of_the_moved_queries(parts, docs, weight, depth, beta):
    learn, index, bm25 = parts
    hybrid = HybridSearch(learn, index, bm25, weight=weight, feedback_depth=depth, feedback_weight=beta)
    np.testing.assert_allclose(hybrid.scores(QUERIES), by_hand(learn, docs, bm25, QUERIES, weight, depth, beta),
                               rtol=1e-4, atol=1e-4)


def test_feedback_moves_the_ranking_except_for_a_query_bm25_cannot_read(parts):
    learn, index, bm25 = parts
    with_feedback = HybridSearch(learn, index, bm25, weight=1.0, feedback_depth=3, feedback_weight=2.0).scores(QUERIES)
    without = HybridSearch(learn, index, bm25, weight=1.0, feedback_depth=0).scores(QUERIES)
    assert not np.allclose(with_feedback[:3], without[:3], atol=1e-3)
    np.testing.assert_allclose(with_feedback[3], without[3], atol=1e-4)  # (float32 rounding)


def test_the_weights_ends_give_bm25_alone_and_the_model_alone(parts):
    learn, index, bm25 = parts
    only_bm25 = HybridSearch(learn, index, bm25, weight=0.0).search(QUERIES[:3], k=5)
    assert (only_bm25.ids == bm25.search(QUERIES[:3], k=5).ids).all()
    only_model = HybridSearch(learn, index, bm25, weight=1.0, feedback_depth=0).search(QUERIES, k=5)
    assert (only_model.ids == learn.search(QUERIES, index, k=5).ids).all()


def test_tune_keeps_the_setting_best_on_the_judged_queries(parts):
    learn, index, bm25 = parts
    queries = {'q1': 'wing heat', 'q2': 'shock wave drag', 'q3': 'mach'}
    top = bm25.search(list(queries.values()), k=1).ids[:, 0]  # judged relevant: BM25's first document, so weight 0 wins
    qrels = pd.DataFrame({'qid': list(queries), 'docid': top, 'gain': [1, 1, 1]})
    grid = dict(weights=(1.0, 0.5, 0.0), feedback_depths=(0, 3), feedback_weights=(1.0,))  # the best is neither end
    chosen = HybridSearch(learn, index, bm25).tune(queries, qrels, **grid)
    scored = {}
    for depth in grid['feedback_depths']:  # tune's order: every weight without feedback, then with it
        for weight in grid['weights']:
            hybrid = HybridSearch(learn, index, bm25, weight=weight, feedback_depth=depth, feedback_weight=1.0)
            run = run_frame(list(queries), hybrid.search(list(queries.values()), k=60))
            scored[(weight, depth)] = evaluate_run(run, qrels, metrics=['ndcg@10'])['ndcg@10']
    assert max(scored.values()) == pytest.approx(1.0) and min(scored.values()) < 1
    assert chosen == {'weight': 0.0, 'feedback_depth': 0, 'feedback_weight': 0.0, 'ndcg@10': pytest.approx(1.0)}
    tuned = HybridSearch(learn, index, bm25)
    tuned.tune(pd.DataFrame({'qid': list(queries), 'text': list(queries.values())}), qrels, **grid)
    assert (tuned.weight, tuned.feedback_depth) == (0.0, 0)


def test_bad_inputs_are_clear_errors(parts, docs, tmp_path):
    learn, index, bm25 = parts
    other_docs = BM25Baseline().index(docs['id'][::-1], docs['text'][::-1])
    with pytest.raises(ValueError, match='different documents.*position 0.*same order'):
        HybridSearch(learn, index, other_docs)
    with pytest.raises(ValueError, match='call bm25.index'):
        HybridSearch(learn, index, BM25Baseline())
    with pytest.raises(ValueError, match=r"weight is the model's share.*\[0, 1\]; got 1.5"):
        HybridSearch(learn, index, bm25, weight=1.5)
    with pytest.raises(ValueError, match='feedback_depth.*got -1'):
        HybridSearch(learn, index, bm25, feedback_depth=-1)
    with pytest.raises(TypeError, match='DocIndex'):
        HybridSearch(learn, index.vectors, bm25)
    with torch_threads(1):
        other = train_tiny(make_pairs(120, seed=3), tmp_path, seed=3)
    with pytest.raises(IndexMismatchError, match='another model'):
        HybridSearch(other, index, bm25)
    hybrid = HybridSearch(learn, index, bm25)
    with pytest.raises(ValueError, match='None of the 1 queries has a judgment'):
        hybrid.tune({'q9': 'wing'}, pd.DataFrame({'qid': ['q1'], 'docid': ['d00'], 'gain': [1]}))
    with pytest.raises(ValueError, match="missing \\['text'\\]"):
        hybrid.tune(pd.DataFrame({'qid': ['q1']}), pd.DataFrame({'qid': ['q1'], 'docid': ['d00'], 'gain': [1]}))


def test_search_in_chunks_of_queries_gives_the_same_results(parts, monkeypatch):
    learn, index, bm25 = parts
    whole = HybridSearch(learn, index, bm25).search(QUERIES, k=7)
    monkeypatch.setattr('relcollab.retrieval.hybrid.QUERY_CHUNK', 3)
    chunked = HybridSearch(learn, index, bm25).search(QUERIES, k=7)
    assert (chunked.ids == whole.ids).all() and np.allclose(chunked.scores, whole.scores, atol=1e-6)
    assert chunked.ids.shape == (4, 7)


def test_feedback_comes_only_from_documents_bm25_matched():
    index = DocIndex(['a', 'b', 'c', 'd'], np.eye(4, dtype=np.float32))
    query, bm25 = np.array([[1., 0., 0., 0.]]), np.array([[0., 3., 0., 0.]])  # BM25 matches one document: 'b'
    fused = hybrid_scores(query, index, bm25, weight=1.0, feedback_depth=3, feedback_weight=1.0)
    np.testing.assert_allclose(fused, zscore_per_query(np.array([[1., 1., 0., 0.]])), atol=1e-6)  # q + e_b, not + mean(b, a, c)
    np.testing.assert_allclose(hybrid_scores(query, index, np.zeros((1, 4)), weight=1.0, feedback_depth=3),
                               zscore_per_query(query), atol=1e-6)  # no match: no feedback


def test_hybrid_scores_take_whole_vectors_or_the_split_parts(parts, docs):
    learn, index, bm25 = parts
    split = learn.encode(QUERIES, side='query', output='both')
    whole = learn.encode(QUERIES, side='query')
    lexical_scores = bm25.scores(QUERIES)
    np.testing.assert_allclose(hybrid_scores(whole, index, lexical_scores), hybrid_scores(split, index, lexical_scores), atol=1e-5)
    np.testing.assert_allclose(hybrid_scores(split.dense, index, lexical_scores, query_lexical=split.lexical),
                               hybrid_scores(split, index, lexical_scores), atol=1e-6)
    with pytest.raises(ValueError, match='dense dimensions and .* lexical ones'):
        hybrid_scores(split.dense, index, lexical_scores)
    with pytest.raises(ValueError, match=r'bm25_scores must be shaped \(queries, documents\) = \(4, 60\)'):
        hybrid_scores(split, index, lexical_scores[:, :10])
    with pytest.raises(ValueError, match='feedback_weight must be a finite number'):
        hybrid_scores(split, index, lexical_scores, feedback_weight=float('nan'))


def test_save_and_load_keep_the_index_bm25_and_the_settings(parts, tmp_path):
    learn, index, bm25 = parts
    hybrid = HybridSearch(learn, index, bm25, weight=0.4, feedback_depth=5, feedback_weight=2.0)
    hybrid.save(tmp_path/'hybrid')
    loaded = HybridSearch.load(learn, tmp_path/'hybrid')
    assert (loaded.weight, loaded.feedback_depth, loaded.feedback_weight) == (0.4, 5, 2.0)
    np.testing.assert_array_equal(loaded.bm25.scores(QUERIES), bm25.scores(QUERIES))
    before, after = hybrid.search(QUERIES, k=7), loaded.search(QUERIES, k=7)
    assert (after.ids == before.ids).all() and np.allclose(after.scores, before.scores, atol=1e-6)
    overridden = HybridSearch.load(learn, tmp_path/'hybrid', weight=0.9)
    assert (overridden.weight, overridden.feedback_depth) == (0.9, 5)
    index.save(tmp_path/'hybrid')  # vectors alone over the folder: its BM25 and settings described the earlier documents
    with pytest.raises(IndexFileError, match='no BM25 index in it.*relcollab index ... --bm25'):
        HybridSearch.load(learn, tmp_path/'hybrid')
    assert not (tmp_path/'hybrid'/'hybrid.json').exists()


def test_a_damaged_hybrid_folder_is_a_clear_error(parts, docs, tmp_path):
    learn, index, bm25 = parts
    folder = HybridSearch(learn, index, bm25).save(tmp_path/'hybrid')
    (folder/'hybrid.json').write_text('{"weight": 3, "feedback_depth": 3, "feedback_weight": 1}')
    with pytest.raises(IndexFileError, match=r"hybrid.json: needs weight.*share.*got 3.*Delete it"):
        load_hybrid_parts(folder)
    (folder/'hybrid.json').unlink()
    assert load_hybrid_parts(folder)[2] == {}  # no settings: HybridSearch's defaults
    BM25Baseline().index(docs['id'][::-1], docs['text'][::-1]).save(folder/'bm25')
    with pytest.raises(IndexFileError, match='different documents.*position 0'):
        load_hybrid_parts(folder)
    (folder/'bm25'/'bm25.json').write_text('{"format_version": 1')
    with pytest.raises(IndexFileError, match=r'bm25.json: not valid JSON'):
        load_hybrid_parts(folder)
    for broken, message in ((('"stemmer": "english"', '"stemmer": "klingon"'), "no stemmer for the language 'klingon'"),
                            (('"format_version": 1', '"format_version": "1"'), 'format_version must be a whole number')):
        bm25.save(folder/'bm25')
        meta = folder/'bm25'/'bm25.json'
        meta.write_text(meta.read_text().replace(*broken))
        with pytest.raises(IndexFileError, match=message):
            load_hybrid_parts(folder)
    bm25.save(folder/'bm25')
    params = folder/'bm25'/'params.index.json'
    params.write_text(params.read_text().replace('{', '{"a_newer_bm25s_parameter": 1, ', 1))
    with pytest.raises(IndexFileError, match="bm25s's files are missing, unreadable or from another bm25s version"):
        load_hybrid_parts(folder)
    bm25.save(folder/'bm25')
    (folder/'bm25'/'data.csc.index.npy').unlink()
    with pytest.raises(IndexFileError, match="bm25s's files are missing, unreadable"):
        load_hybrid_parts(folder)


@pytest.mark.parametrize('method,stemmer', [('lucene', 'english'), ('bm25+', 'english'), ('bm25l', 'french'), ('atire', 'english')])
def test_bm25_scores_the_same_after_save_and_load(docs, tmp_path, method, stemmer):
    bm25 = BM25Baseline(k1=1.2, b=0.6, method=method, stemmer=stemmer).index(docs['id'], docs['text'])
    loaded = BM25Baseline.load(bm25.save(tmp_path/'bm25'))
    queries = QUERIES + ['the', '', 'wings heating waves']  # a stopword only, nothing, plural forms
    np.testing.assert_array_equal(loaded.scores(queries), bm25.scores(queries))
    assert (loaded.language, loaded.retriever.method, loaded.retriever.k1, loaded.retriever.b) == (stemmer, method, 1.2, 0.6)
    assert loaded.ids.tolist() == docs['id'].tolist()
