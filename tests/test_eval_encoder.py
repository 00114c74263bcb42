"""The eval-mode encoder path gives exactly fastai's `SentenceEncoder` outputs at every real token, across its
own and fastai's chunk boundaries."""
import numpy as np
import pytest
import torch
from fastai.text.models.awdlstm import AWD_LSTM
from fastai.text.models.core import SentenceEncoder
from fastai.torch_core import set_seed

import relcollab.core.model as model_module
from relcollab.core.eval_encoder import eval_sentence_encoder, supports_eval_path
from relcollab.retrieval.encode import pad_batch
from conftest import torch_threads


def sorted_batch(lengths, vocab_sz=50, pad_idx=1) -> torch.Tensor:
    "Random token rows of `lengths` (longest first), padded at the end; token 0 is xxbos as in real texts."
    rows = [torch.cat([torch.tensor([2]), torch.randint(4, vocab_sz, (n - 1,))]) for n in sorted(lengths, reverse=True)]
    return pad_batch(rows, pad_idx)


@pytest.mark.parametrize('lengths', [[1], [7], [3, 3], [23, 17, 5, 5, 1], [40, 39, 10, 9, 8, 2], [33] + [20] * 12 + [3] * 9])
@pytest.mark.parametrize('bptt', [5, 8, 72])
def test_equals_fastai_sentence_encoder(lengths, bptt):
    set_seed(0)
    encoder = SentenceEncoder(bptt, AWD_LSTM(50, 8, 16, 3, weight_p=0.5, hidden_p=0.3, input_p=0.4, embed_p=0.1)).eval()
    tokens = sorted_batch(lengths)
    with torch_threads(1), torch.no_grad():
        expected, expected_mask = encoder(tokens)
        got, mask = eval_sentence_encoder(encoder, tokens)  # other chunks and shapes: equal up to rounding
    assert torch.equal(mask, expected_mask) and got.shape == expected.shape
    real = ~mask
    assert torch.allclose(got[real], expected[real], rtol=0, atol=1e-6)


def test_towers_give_the_same_vectors_with_and_without_it(trained, monkeypatch):
    texts = ['gust response of a wing', '', 'heat ' * 150, 'flutter', 'boundary layer transition at mach 3 ' * 4]
    with torch_threads(1):
        queries, docs = trained.encode(texts, side='query'), trained.encode(texts, side='doc')
        monkeypatch.setattr(model_module, 'supports_eval_path', lambda encoder: False)  # fastai's own path
        assert np.allclose(queries, trained.encode(texts, side='query'), rtol=0, atol=1e-6)
        assert np.allclose(docs, trained.encode(texts, side='doc'), rtol=0, atol=1e-6)


def test_only_the_encoders_it_reproduces():
    assert supports_eval_path(SentenceEncoder(72, AWD_LSTM(50, 8, 16, 2)))
    assert not supports_eval_path(SentenceEncoder(72, AWD_LSTM(50, 8, 16, 2, bidir=True)))
    assert not supports_eval_path(SentenceEncoder(72, AWD_LSTM(50, 8, 16, 2), max_len=20))
    assert not supports_eval_path(torch.nn.Identity())
