"""`learn.encode_to_file`: vectors streamed to a .npy file in chunks equal the in-memory `learn.encode`."""
import numpy as np
import pytest

from conftest import make_pairs


@pytest.fixture(scope='module')
def texts():
    return make_pairs(23, seed=5)['doc'].tolist()


def test_file_equals_in_memory_encode(trained, texts, tmp_path):
    vectors = trained.encode_to_file(texts, tmp_path/'vectors.npy', side='doc', bs=3, chunk_size=7)
    assert isinstance(vectors, np.memmap) and vectors.dtype == np.float32
    np.testing.assert_allclose(vectors, trained.encode(texts, side='doc'), rtol=0, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path/'vectors.npy', allow_pickle=False), vectors)


def test_a_generator_with_its_length(trained, texts, tmp_path):
    vectors = trained.encode_to_file((t for t in texts), tmp_path/'q.npy', side='query', n=len(texts), chunk_size=10)
    np.testing.assert_allclose(vectors, trained.encode(texts, side='query'), rtol=0, atol=1e-6)
    assert trained.encode_to_file([], tmp_path/'empty.npy').shape == (0, vectors.shape[1])


def test_bad_input_leaves_no_file(trained, texts, tmp_path):
    with pytest.raises(TypeError, match=r'texts\[8\] is NoneType'):
        trained.encode_to_file(texts[:8] + [None], tmp_path/'bad.npy', chunk_size=4)
    with pytest.raises(ValueError, match='ran out after 23'):
        trained.encode_to_file(iter(texts), tmp_path/'short.npy', n=30, chunk_size=10)
    with pytest.raises(TypeError, match='pass the number of texts as n'):
        trained.encode_to_file(iter(texts), tmp_path/'no_len.npy')
    assert list(tmp_path.iterdir()) == []

