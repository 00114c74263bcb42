"""The language-model stage: named sizes, fine-tuning from local pretrained files, lr_find on the relevance learner."""
import json
import pickle
import warnings

import pytest
import torch

from conftest import TINY_LM, make_pairs, torch_threads, train_tiny
from relcollab.core.model import MODEL_SIZES, lm_config, relevance_config
from relcollab.training.lm import FromScratchWarning, language_model_stage, load_pretrained_lm


def test_named_sizes_match_ulmfit_and_reject_unknown_names():
    assert {k: lm_config('base')[k] for k in ('emb_sz', 'n_hid', 'n_layers')} == dict(emb_sz=400, n_hid=1152, n_layers=3)
    assert relevance_config('small')['emb_sz'] == MODEL_SIZES['small']['emb_sz']
    with pytest.raises(ValueError, match="small"):
        relevance_config('huge')


def _embedding(learn):
    return learn.model[0].encoder.weight.detach().clone()


def test_fine_tuning_from_local_pretrained_files_keeps_the_known_words(lm_stage, tmp_path):
    """WT103-style files (weights .pth + vocabulary .pkl) load without any download and map words by name.

    The two vocabularies order the words differently, and a learning rate of 1e-7 keeps the fine-tuning's moves tiny
    (measured: at most 3.3e-6; Adam steps are about lr), so each known word's row must be its old row to 1e-4, while
    two different words' old rows lie 0.21 apart at the least: a word mapped to another word's row fails."""
    source = lm_stage.lm
    weights_file, vocab_file = tmp_path/'wgts.pth', tmp_path/'itos.pkl'
    torch.save(source.learn.model.state_dict(), weights_file)
    vocab_file.write_bytes(pickle.dumps(source.vocab))
    texts = make_pairs(60, seed=3)['doc'].tolist()
    with torch_threads(1), warnings.catch_warnings():
        warnings.simplefilter('error', FromScratchWarning)  # fine-tuning must not claim to start from scratch
        tuned = language_model_stage(texts, config=TINY_LM, epochs=0, lr=1e-7, bs=4, path=tmp_path,
                                     pretrained=(weights_file, vocab_file), encoder_name='tuned')
    known = [word for word in dict.fromkeys(tuned.vocab) if word in source.vocab and word != 'xxfake']
    assert len(known) >= 25 and [w for w in tuned.vocab if w in known] != [w for w in source.vocab if w in known]
    old = _embedding(source.learn)[[source.vocab.index(word) for word in known]]
    new = _embedding(tuned.learn)[[tuned.vocab.index(word) for word in known]]
    assert not torch.equal(new, old)  # the fine-tuning ran
    torch.testing.assert_close(new, old, rtol=0, atol=1e-4)
    assert torch.cdist(new, old).argmin(dim=1).tolist() == list(range(len(known)))  # each word nearest its own old row
    assert json.loads((tmp_path/'models'/'tuned.vocab.json').read_text()) == tuned.vocab


def test_pretrained_files_that_do_not_exist_fail_before_training(lm_stage, tmp_path):
    with pytest.raises(FileNotFoundError, match='wgts.pth'):
        load_pretrained_lm(lm_stage.lm.learn, tmp_path/'wgts.pth', tmp_path/'itos.pkl')


def test_lr_find_runs_on_the_relevance_learner_with_ulmfit_groups(tmp_path):
    learn = train_tiny(make_pairs(120, seed=2), tmp_path, epochs=1)
    with torch_threads(1), learn.no_bar(), learn.no_logging():
        suggestion = learn.lr_find(num_it=8, show_plot=False)
    assert suggestion.valley > 0
    assert len(learn.opt.param_groups) == TINY_LM['n_layers'] + 2
