"""Retrieval layer: learn.encode / score_vectors / index / search / rank, DocIndex files, BM25 (tiny models)."""
import json
import sys
import warnings

import numpy as np
import pandas as pd
import pytest
import torch

from conftest import make_pairs, tiny_learner, torch_threads, train_tiny
from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.retrieval.index import (DocIndex, IndexFileError, IndexMismatchError, SearchResults, exact_search,
                                       model_fingerprint, top_k)
import relcollab.retrieval.index  # noqa: F401  (patches learn.rank, and through it learn.encode, .index, .search)
from relcollab.core.validation import RelevanceDataError


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@pytest.fixture(scope='module')
def docs():
    "60 documents with string ids, texts from the synthetic vocabulary."
    texts = make_pairs(60, seed=5)['doc'].tolist()
    return pd.DataFrame({'id': [f'd{i:02d}' for i in range(60)], 'text': texts})


@pytest.fixture(scope='module')
def index(trained, docs):
    return trained.index(docs)


QUERIES = ['wing heat', 'shock wave drag', 'mach', '']


# ----------------------------------------------------------------- encode
def test_encode_then_score_vectors_equals_predict(trained):
    pairs = make_pairs(8, seed=11)
    queries = trained.encode(pairs['query'].tolist(), side='query')
    docs = trained.encode(pairs['doc'].tolist(), side='doc')
    from_vectors = trained.score_vectors(queries, docs)
    with trained.no_bar():
        predicted = np.array([trained.predict(q, d)[0] for q, d in zip(pairs['query'], pairs['doc'])])
    np.testing.assert_allclose(from_vectors, predicted, rtol=0, atol=1e-5)
    single = trained.score_vectors(trained.encode(pairs['query'][0]), trained.encode(pairs['doc'][0], side='doc'))
    assert isinstance(single, float) and abs(single - predicted[0]) < 1e-5


def test_encode_query_and_encode_document_are_encode_with_a_side(trained, docs):
    queries, texts = QUERIES[:3], docs['text'].tolist()[:7]
    np.testing.assert_array_equal(trained.encode_query(queries), trained.encode(queries, side='query'))
    np.testing.assert_array_equal(trained.encode_query('wing heat'), trained.encode('wing heat', side='query'))
    np.testing.assert_array_equal(trained.encode_document(texts, bs=3), trained.encode(texts, side='doc', bs=3))
    dense = trained.encode_document(texts, output='dense')
    np.testing.assert_array_equal(dense, trained.encode(texts, side='doc', output='dense'))
    assert not np.array_equal(trained.encode_document(queries), trained.encode_query(queries))  # the sides differ
    with pytest.raises(TypeError, match=r"encode_query reads texts as queries: call learn.encode\(texts, side"):
        trained.encode_query(queries, side='doc')


def test_index_search_and_rank_take_encodes_options(trained, docs):
    "bf16, progress and source reach the encoding (and the error messages) from every entry point."
    from relcollab.core.bf16 import Bf16FallbackWarning, bf16_support
    supported = bf16_support('cpu')[0]
    with warnings.catch_warnings():
        warnings.simplefilter('ignore', Bf16FallbackWarning)
        index = trained.index(docs, bf16=True, progress=False)
        found = trained.search(['wing heat'], index, k=3, bf16=True)
        ranked = trained.rank('wing heat', docs, k=3, bf16=True, progress=False)
    plain = trained.index(docs)
    if supported:  # bfloat16 vectors: close to float32's
        np.testing.assert_allclose(index.vectors, plain.vectors, atol=0.05)
    else:  # the float32 fallback: the same
        np.testing.assert_array_equal(index.vectors, plain.vectors)
        assert list(found.ids[0]) == list(trained.search(['wing heat'], plain, k=3).ids[0])
        assert list(ranked['id']) == list(trained.rank('wing heat', docs, k=3)['id'])
    with pytest.raises(Exception, match='my_docs.csv'):
        trained.rank('wing heat', docs.drop(columns=['text']), source='my_docs.csv')


def test_encode_returns_unit_vectors_in_the_callers_order_whatever_the_batching(trained):
    long_texts = [' '.join([text] * 5) for text in make_pairs(3, seed=13)['doc']]  # several bptt chunks each
    texts = make_pairs(37, seed=12)['doc'].tolist() + long_texts
    vectors = trained.encode(texts, side='doc')
    head = trained.model.head
    assert vectors.shape == (40, head.out_features) and vectors.dtype == np.float32
    dense = head.doc_proj[-1].out_features  # [unit projection, term weights of the lexical channel]
    np.testing.assert_allclose(np.linalg.norm(vectors[:, :dense], axis=1), 1, atol=1e-5)
    assert vectors.shape[1] == dense + head.n_lexical
    permutation = np.random.default_rng(0).permutation(40)
    permuted = trained.encode([texts[i] for i in permutation], side='doc', bs=7, progress=True)
    np.testing.assert_allclose(permuted, vectors[permutation], rtol=0, atol=1e-6)
    one_by_one = np.stack([trained.encode(text, side='doc') for text in long_texts])
    np.testing.assert_allclose(one_by_one, vectors[-3:], rtol=0, atol=1e-6)


def test_one_string_gives_one_vector_and_tensors_on_request(trained):
    vector = trained.encode('wing heat flow', side='query')
    assert vector.shape == (trained.model.head.out_features,)
    np.testing.assert_allclose(vector, trained.encode(['wing heat flow', 'mach'])[0], atol=1e-6)
    tensor = trained.encode(pd.Series(['wing', 'mach']), convert_to='tensor')
    assert isinstance(tensor, torch.Tensor) and tensor.shape == (2, vector.shape[0])
    assert trained.encode([], side='doc').shape == (0, vector.shape[0])


def test_query_and_doc_sides_use_their_own_tower(trained):
    assert not np.allclose(trained.encode('wing heat', side='query'), trained.encode('wing heat', side='doc'))


def test_encode_leaves_the_model_in_the_mode_it_found(trained):
    was_training = trained.model.training
    try:
        trained.model.train()
        trained.encode(['wing'])
        assert trained.model.training
    finally:
        trained.model.train(was_training)


@pytest.mark.parametrize('kwargs, error, match', [
    (dict(texts=['wing'], side='title'), ValueError, "'query' or 'doc'"),
    (dict(texts=['wing', None, 'mach']), TypeError, r'texts\[1\]'),
    (dict(texts=['wing', 3.5]), TypeError, r'texts\[1\] is float'),
    (dict(texts=42), TypeError, 'string or a list'),
    (dict(texts=['wing'], convert_to='list'), ValueError, "'numpy' or 'tensor'"),
])
def test_encode_rejects_bad_arguments(trained, kwargs, error, match):
    with pytest.raises(error, match=match): trained.encode(**kwargs)


def test_score_vectors_rejects_mismatched_shapes(trained):
    with pytest.raises(ValueError, match='dimensions'): trained.score_vectors(np.ones(8), np.ones(4))
    with pytest.raises(ValueError, match='row-aligned'): trained.score_vectors(np.ones((2, 8)), np.ones((3, 8)))


# ----------------------------------------------------------------- exact search
def test_top_k_is_exact_and_breaks_ties_by_document_order():
    scores = np.array([[0.5, 0.9, 0.5, 0.5, 0.1], [0., 0., 0., 0., 0.]], dtype=np.float32)
    positions, values = top_k(scores, 3)
    assert positions.tolist() == [[1, 0, 2], [0, 1, 2]]
    np.testing.assert_array_equal(values, np.float32([[0.9, 0.5, 0.5], [0, 0, 0]]))


def test_exact_search_matches_a_full_sort():
    rng = np.random.default_rng(0)
    queries, docs = rng.normal(size=(37, 5)).astype(np.float32), rng.normal(size=(101, 5)).astype(np.float32)
    positions, dots = exact_search(queries, docs, k=10, chunk_size=8)
    expected = np.argsort(-(queries @ docs.T), axis=1, kind='stable')[:, :10]
    np.testing.assert_array_equal(positions, expected)
    np.testing.assert_allclose(dots, np.take_along_axis(queries @ docs.T, expected, axis=1), rtol=1e-6)


def test_learn_search_scores_are_the_models_scores_best_first(trained, index, docs):
    results = trained.search(QUERIES, index, k=5)
    assert isinstance(results, SearchResults)
    assert results.ids.shape == results.scores.shape == (len(QUERIES), 5) and results.scores.dtype == np.float32
    assert (np.diff(results.scores, axis=1) <= 1e-6).all()
    text_of = dict(zip(docs['id'], docs['text']))
    with trained.no_bar():
        best = [trained.predict(q, text_of[ids[0]])[0] for q, ids in zip(QUERIES, results.ids)]
    np.testing.assert_allclose(results.scores[:, 0], best, rtol=0, atol=1e-5)
    every = trained.score_pairs([(QUERIES[0], text) for text in docs['text']])
    assert results.ids[0, 0] == docs['id'][int(np.argmax(every))]


def test_k_larger_than_the_collection_returns_everything_with_a_warning(trained, index):
    with pytest.warns(UserWarning, match='returning all 60'):
        results = trained.search(QUERIES[:2], index, k=1000)
    assert results.ids.shape == (2, 60) and set(results.ids[0]) == set(index.ids)
    with pytest.raises(ValueError, match='at least 1'): trained.search(QUERIES, index, k=0)


def test_index_refuses_duplicate_ids_naming_the_rows(trained, docs):
    duplicated = docs.copy()
    duplicated.loc[[3, 7], 'id'] = 'same'
    with pytest.raises(RelevanceDataError, match=r"rows 3, 7.*'same'"): trained.index(duplicated)


def test_index_refuses_an_empty_collection(trained, docs):
    with pytest.raises(RelevanceDataError, match='empty'): trained.index(docs.iloc[:0])


def test_index_from_a_list_uses_positions_as_ids(trained, docs):
    index = trained.index(docs['text'].tolist()[:5])
    assert index.ids == ['0', '1', '2', '3', '4'] and len(index) == 5


# ----------------------------------------------------------------- DocIndex files
def test_save_load_round_trip_gives_identical_results(trained, index, tmp_path):
    index.save(tmp_path/'idx')
    assert sorted(p.name for p in (tmp_path/'idx').iterdir()) == ['ids.json', 'index.json', 'lexical.npz', 'vectors.npy']
    meta = json.loads((tmp_path/'idx'/'index.json').read_text())
    assert meta == {'format_version': 2, 'dim': index.dim, 'lexical_dim': len(trained.dls.vocab), 'count': 60,
                    'dtype': 'float32', 'fingerprint': model_fingerprint(trained)}
    loaded = DocIndex.load(tmp_path/'idx')
    assert loaded.ids == index.ids and loaded.fingerprint == index.fingerprint
    np.testing.assert_array_equal(loaded.vectors, index.vectors)
    assert (loaded.lexical != index.lexical).nnz == 0
    before, after = trained.search(QUERIES, index, k=7), trained.search(QUERIES, loaded, k=7)
    np.testing.assert_array_equal(before.ids, after.ids)
    np.testing.assert_array_equal(before.scores, after.scores)


def test_a_truncated_vectors_file_is_a_clear_error(index, tmp_path):
    index.save(tmp_path/'idx')
    path = tmp_path/'idx'/'vectors.npy'
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(IndexFileError, match=r'vectors\.npy.*(truncated|shape)'): DocIndex.load(tmp_path/'idx')


def test_vectors_that_disagree_with_index_json_are_refused(index, tmp_path):
    index.save(tmp_path/'idx')
    np.save(tmp_path/'idx'/'vectors.npy', index.vectors[:10])
    with pytest.raises(IndexFileError, match=r"shape \(10, .*index.json says \(60"): DocIndex.load(tmp_path/'idx')


def test_a_future_format_version_is_refused(index, tmp_path):
    index.save(tmp_path/'idx')
    meta = json.loads((tmp_path/'idx'/'index.json').read_text())
    (tmp_path/'idx'/'index.json').write_text(json.dumps(dict(meta, format_version=99)))
    with pytest.raises(IndexFileError, match='newer relcollab'): DocIndex.load(tmp_path/'idx')


def test_a_missing_index_says_what_it_expected(tmp_path):
    with pytest.raises(IndexFileError, match='index.json: missing'): DocIndex.load(tmp_path)


def test_search_refuses_an_index_built_by_another_model(trained, index):
    other = tiny_learner(trained.dls, seed=1)
    assert model_fingerprint(other) != model_fingerprint(trained)
    with pytest.raises(IndexMismatchError, match='another model'): other.search(QUERIES, index, k=3)


def test_an_index_without_fingerprint_searches_with_a_warning(trained, index):
    anonymous = DocIndex(index.ids, index.vectors, lexical=index.lexical)
    with pytest.warns(UserWarning, match='no model fingerprint'):
        results = trained.search(QUERIES, anonymous, k=3)
    np.testing.assert_array_equal(results.ids, trained.search(QUERIES, index, k=3).ids)


def test_raw_vector_search_returns_dot_products():
    index = DocIndex(['a', 'b', 'c'], np.array([[1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32))
    results = index.search(np.array([0., 1.], dtype=np.float32), k=2)
    assert results.ids.tolist() == [['b', 'c']]
    np.testing.assert_allclose(results.scores, [[1.0, 0.8]])


def test_faiss_backend_says_how_to_install_it(index, monkeypatch):
    monkeypatch.setitem(sys.modules, 'faiss', None)  # makes `import faiss` fail, as when it is not installed
    with pytest.raises(ImportError, match='pip install faiss-cpu'): DocIndex(index.ids, index.vectors, backend='faiss')
    with pytest.raises(ImportError, match='pip install faiss-cpu'): index.to_faiss()


# ----------------------------------------------------------------- rank
def test_rank_takes_a_frame_a_list_or_an_index_and_agrees(trained, docs, index):
    from_frame = trained.rank('wing heat', docs, k=4)
    assert from_frame.columns.tolist() == ['id', 'score', 'rank', 'text']
    assert from_frame['rank'].tolist() == [1, 2, 3, 4] and from_frame['score'].is_monotonic_decreasing
    from_list = trained.rank('wing heat', docs['text'].tolist(), k=4)
    assert [f'd{i:02d}' for i in from_list['id']] == from_frame['id'].tolist()
    from_index = trained.rank('wing heat', index, k=4)
    assert from_index.columns.tolist() == ['id', 'score', 'rank']
    assert from_index['id'].tolist() == from_frame['id'].tolist()
    np.testing.assert_allclose(from_index['score'], from_frame['score'], atol=1e-6)


def test_rank_uses_the_callers_column_names(trained, docs):
    renamed = docs.rename(columns={'id': 'doc_id', 'text': 'abstract'})
    ranked = trained.rank('mach', renamed, k=2, id_col='doc_id', text_col='abstract')
    assert ranked.columns.tolist() == ['doc_id', 'score', 'rank', 'abstract']


# ----------------------------------------------------------------- BM25
@pytest.fixture(scope='module')
def bm25():
    texts = ['Heat transfer in slabs heated from below', 'Supersonic flow over a flat plate',
             'Flutter of wings in transonic flow', 'the of and a an']
    return BM25Baseline().index(['h', 'p', 'w', 'stop'], texts)


def test_bm25_ranks_the_matching_document_first(bm25):
    results = bm25.search(['heating of a slab', 'wing flutter', 'flat plate flow'], k=2)
    assert results.ids[:, 0].tolist() == ['h', 'w', 'p']
    assert results.ids.shape == results.scores.shape == (3, 2) and (results.scores[:, 0] > 0).all()


def test_bm25_query_without_known_words_scores_zero_in_document_order(bm25):
    results = bm25.search('zebra the', k=4)
    assert results.ids.tolist() == [['h', 'p', 'w', 'stop']] and (results.scores == 0).all()


def test_bm25_k_larger_than_the_collection_warns(bm25):
    with pytest.warns(UserWarning, match='returning all 4'):
        assert bm25.search(['slab'], k=10).ids.shape == (1, 4)


def test_bm25_refuses_duplicate_ids():
    with pytest.raises(RelevanceDataError, match='unique'): BM25Baseline().index(['a', 'a'], ['x y', 'z w'])


def test_encode_does_not_disturb_training_afterwards(pairs_df, tmp_path):
    "encode runs under torch.inference_mode; the learner must still train (and predict the same) after it."
    learn = train_tiny(pairs_df.iloc[:64], tmp_path)
    learn.encode(['wing heat', 'mach'], side='doc')
    with warnings.catch_warnings(), learn.no_bar():
        warnings.simplefilter('ignore')
        learn.fit(1, 1e-3)
    assert np.isfinite(learn.encode('wing', side='doc')).all()
    assert all(torch.isfinite(p).all() for p in learn.model.parameters())


# ----------------------------------------------------------------- the sparse lexical part
def test_index_stores_the_lexical_part_sparse_and_ranks_as_whole_vectors(trained, index, docs):
    whole = trained.encode(docs['text'].tolist(), side='doc')
    dense, lexical = trained.encode(docs['text'].tolist(), side='doc', output='both')
    head = trained.model.head
    assert index.dim == dense.shape[1] == head.dense_features and index.lexical_dim == head.n_lexical
    np.testing.assert_allclose(index.vectors, whole[:, :index.dim], atol=1e-6)
    np.testing.assert_allclose(index.lexical.toarray(), whole[:, index.dim:], atol=1e-6)
    # only the terms a text contains are stored (the synthetic vocabulary has 40 words; each document uses ~16)
    assert index.lexical.nnz == np.count_nonzero(whole[:, index.dim:]) < whole[:, index.dim:].size / 2
    queries = trained.encode(QUERIES, side='query')
    old_layout = DocIndex(index.ids, whole)  # whole vectors, as indexes of format 1 held them
    np.testing.assert_array_equal(old_layout.search(queries, k=60).ids, index.search(queries, k=60).ids)
    np.testing.assert_allclose(old_layout.search(queries, k=60).scores, index.search(queries, k=60).scores, atol=1e-5)
    np.testing.assert_array_equal(trained.search(QUERIES, old_layout, k=10).ids, trained.search(QUERIES, index, k=10).ids)


def test_encode_gives_the_dense_part_the_lexical_part_or_both(trained, docs):
    texts = docs['text'].tolist()[:9]
    whole = trained.encode(texts, side='query')
    dense = trained.encode(texts, side='query', output='dense')
    lexical = trained.encode(texts, side='query', output='lexical')
    np.testing.assert_allclose(dense, whole[:, :dense.shape[1]], atol=1e-6)
    np.testing.assert_allclose(lexical.toarray(), whole[:, dense.shape[1]:], atol=1e-6)
    both = trained.encode(texts[0], side='query', output='both', convert_to='tensor')
    assert isinstance(both.dense, torch.Tensor) and both.dense.shape == (dense.shape[1],)
    assert both.lexical.shape == (1, lexical.shape[1])
    no_lexical = tiny_learner(trained.dls, lexical=False)
    assert no_lexical.encode(texts, output='both').lexical is None
    with pytest.raises(ValueError, match='no lexical channel'): no_lexical.encode(texts, output='lexical')
    with pytest.raises(ValueError, match='output must be one of'): trained.encode(texts, output='sparse')


def test_score_dots_is_the_models_map_from_dot_products_to_scores(trained):
    pairs = make_pairs(6, seed=21)
    queries, docs = trained.encode(pairs['query'].tolist()), trained.encode(pairs['doc'].tolist(), side='doc')
    np.testing.assert_allclose(trained.score_dots((queries * docs).sum(axis=1)), trained.score_vectors(queries, docs),
                               atol=1e-6)


def test_an_index_of_format_1_still_searches_and_says_to_rebuild_it(trained, index, tmp_path):
    whole = np.hstack([index.vectors, index.lexical.toarray()])
    DocIndex(index.ids, whole, fingerprint=index.fingerprint).save(tmp_path/'old')
    meta = json.loads((tmp_path/'old'/'index.json').read_text())
    del meta['lexical_dim']
    (tmp_path/'old'/'index.json').write_text(json.dumps(dict(meta, format_version=1)))
    with pytest.warns(UserWarning, match=r'format 1.*rebuild it'): old = DocIndex.load(tmp_path/'old')
    np.testing.assert_array_equal(trained.search(QUERIES, old, k=5).ids, trained.search(QUERIES, index, k=5).ids)


def test_a_missing_or_mismatched_lexical_file_is_a_clear_error(index, tmp_path):
    index.save(tmp_path/'idx')
    (tmp_path/'idx'/'lexical.npz').unlink()
    with pytest.raises(IndexFileError, match=r'lexical\.npz: missing.*rebuild'): DocIndex.load(tmp_path/'idx')
    import scipy.sparse
    scipy.sparse.save_npz(tmp_path/'idx'/'lexical.npz', index.lexical[:10])
    with pytest.raises(IndexFileError, match=r"lexical\.npz: shape \(10, .*index.json says \(60"): DocIndex.load(tmp_path/'idx')


def test_raw_search_of_a_lexical_index_needs_both_parts(trained, index):
    dense, lexical = trained.encode(QUERIES, output='both')
    np.testing.assert_array_equal(index.search(dense, k=3, query_lexical=lexical).ids,
                                  index.search(trained.encode(QUERIES), k=3).ids)
    with pytest.raises(ValueError, match='query_lexical'): index.search(dense, k=3)
    with pytest.raises(ValueError, match="faiss.*lexical part"): DocIndex(index.ids, index.vectors, lexical=index.lexical,
                                                                         backend='faiss')
