"""The pickle-free model format: save_pretrained / load_pretrained round trips exactly, never unpickles, and every
damaged directory (missing file, truncated or corrupted weights, newer format, mismatched sizes) is a clear error."""
import json
import subprocess
import sys

import numpy as np
import pytest

from conftest import tiny_learner, torch_threads
from relcollab.retrieval.index import model_fingerprint
from relcollab.training.learner import RelevanceLearner
from relcollab.retrieval.pretrained import FORMAT_VERSION, PretrainedFormatError, load_pretrained

PAIRS = [('wing', 'wing heat flow over a slab'), ('shock wave', 'boundary layer on a flat plate'),
         ('jet nozzle drag', ' '.join(['jet nozzle'] * 50)), ('mach', ''), ('', 'panel beam shell')]


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


@pytest.fixture(scope='module')
def saved(trained, tmp_path_factory):
    "The session's trained learner saved once with save_pretrained."
    return trained.save_pretrained(tmp_path_factory.mktemp('pretrained')/'model')


@pytest.fixture
def copy_of(saved, tmp_path):
    "A fresh copy of the saved directory for a test to damage."
    def copy():
        target = tmp_path/'model'
        target.mkdir()
        for file in saved.iterdir(): (target/file.name).write_bytes(file.read_bytes())
        return target
    return copy


def test_files_are_safetensors_and_json_only(saved):
    assert sorted(p.name for p in saved.iterdir()) == ['config.json', 'model.safetensors', 'vocab.json']
    config = json.loads((saved/'config.json').read_text())
    assert config['format_version'] == FORMAT_VERSION
    assert {'hparams', 'tokenizer', 'score_range', 'columns', 'relcollab_version', 'weights_sha256'} <= set(config)
    assert config['tokenizer'] == {'max_tokens': 512} and config['score_range'] == [0.0, 3.0]
    header_size = int.from_bytes((saved/'model.safetensors').read_bytes()[:8], 'little')
    header = json.loads((saved/'model.safetensors').read_bytes()[8:8 + header_size])  # safetensors: JSON header + raw tensors
    assert all(spec['dtype'] == 'F32' for key, spec in header.items() if key != '__metadata__' and 'num_batches' not in key
               and 'term_of' not in key)  # step counters and the token -> term map are integers
    assert not any(p.name.startswith('.') for p in saved.parent.iterdir())  # no temporary directory left behind


def test_loaded_model_scores_exactly_like_the_original(trained, saved, pairs_df):
    loaded = load_pretrained(saved)
    assert isinstance(loaded, RelevanceLearner) and next(loaded.model.parameters()).device.type == 'cpu'
    pairs = pairs_df[['query', 'doc']].iloc[:60]
    with trained.no_bar(), loaded.no_bar():
        np.testing.assert_array_equal(loaded.score_pairs(pairs), trained.score_pairs(pairs))
        assert [loaded.predict(q, d)[0] for q, d in PAIRS] == [trained.predict(q, d)[0] for q, d in PAIRS]
    docs = pairs_df['doc'].tolist()[:40]
    np.testing.assert_array_equal(loaded.encode(docs, side='doc'), trained.encode(docs, side='doc'))
    np.testing.assert_array_equal(loaded.encode('wing', side='query'), trained.encode('wing', side='query'))
    index = trained.index(docs)  # an index built by the original searches with the loaded model
    assert model_fingerprint(loaded) == model_fingerprint(trained)
    np.testing.assert_array_equal(loaded.search(['wing heat'], index, k=5).scores, trained.search(['wing heat'], index, k=5).scores)
    assert (loaded.dls.query_col, loaded.dls.doc_col, list(loaded.dls.vocab)) == ('query', 'doc', list(trained.dls.vocab))


def test_from_pretrained_is_load_pretrained(trained, saved):
    learn = RelevanceLearner.from_pretrained(saved)
    assert learn.predict(*PAIRS[0])[0] == trained.predict(*PAIRS[0])[0]


NO_PICKLE = """
import json, pickle, sys, torch
torch.set_num_threads(1)
from relcollab.retrieval.pretrained import load_pretrained
def refuse(*args, **kwargs): raise AssertionError('something tried to unpickle')
class Refuse:
    def __init__(self, *args, **kwargs): refuse()
pickle.load = pickle.loads = refuse
pickle.Unpickler = Refuse
torch.load = refuse
learn = load_pretrained(sys.argv[1])
with learn.no_bar():
    print(json.dumps(learn.score_pairs([tuple(p) for p in json.loads(sys.argv[2])]).tolist()))
"""


def test_loading_never_unpickles_and_scores_the_same_in_a_fresh_python(trained, saved):
    done = subprocess.run([sys.executable, '-c', NO_PICKLE, str(saved), json.dumps(PAIRS)], capture_output=True,
                          text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    np.testing.assert_array_equal(np.array(json.loads(done.stdout.strip().splitlines()[-1]), dtype=np.float32),
                                  trained.score_pairs(PAIRS))


def test_shared_towers_round_trip(pairs_df, tmp_path):
    from relcollab.core.data import RelevanceDataLoaders
    dls = RelevanceDataLoaders.from_df(pairs_df.iloc[:80], bs=16, seed=0, path=tmp_path)
    learn = tiny_learner(dls, path=tmp_path, shared=True)
    loaded = load_pretrained(learn.save_pretrained(tmp_path/'shared'))
    assert loaded.model.shared
    np.testing.assert_array_equal(loaded.score_pairs(PAIRS), learn.score_pairs(PAIRS))


def test_saving_again_replaces_the_model_and_other_directories_are_refused(trained, saved, tmp_path):
    first = {p.name: p.read_bytes() for p in saved.iterdir()}
    trained.save_pretrained(saved)  # over an existing saved model: replaced whole, and the same model gives the same bytes
    assert {p.name: p.read_bytes() for p in saved.iterdir()} == first
    (tmp_path/'notes').mkdir()
    (tmp_path/'notes'/'todo.txt').write_text('keep me')
    with pytest.raises(FileExistsError, match='not a model written by save_pretrained'):
        trained.save_pretrained(tmp_path/'notes')
    assert (tmp_path/'notes'/'todo.txt').read_text() == 'keep me'


def test_a_failed_save_leaves_the_previous_model_and_no_temporary_files(trained, copy_of, monkeypatch):
    import relcollab.retrieval.pretrained as pretrained
    target = copy_of()
    before = {p.name: p.read_bytes() for p in target.iterdir()}
    def crash(tensors, filename, metadata=None):
        open(filename, 'wb').write(b'half a file')
        raise KeyboardInterrupt
    monkeypatch.setattr(pretrained, 'save_file', crash)
    with pytest.raises(KeyboardInterrupt):
        trained.save_pretrained(target)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert sorted(p.name for p in target.parent.iterdir()) == ['model']


def _truncate(path): (path/'model.safetensors').write_bytes((path/'model.safetensors').read_bytes()[:5000])
def _flip_a_byte(path):
    data = bytearray((path/'model.safetensors').read_bytes())
    data[-10] ^= 0xFF
    (path/'model.safetensors').write_bytes(bytes(data))
def _edit_config(**changes):
    def edit(path):
        config = json.loads((path/'config.json').read_text())
        for key, value in changes.items():
            if key == 'emb_sz': config['hparams']['config']['emb_sz'] = value
            elif key == 'unknown_option': config['hparams']['unknown_option'] = value
            else: config[key] = value
        (path/'config.json').write_text(json.dumps(config))
    return edit
def _unchecked(edit):
    "Edits the weights and writes their new checksum, so only the shape check can catch the damage."
    def run(path):
        import hashlib
        edit(path)
        config = json.loads((path/'config.json').read_text())
        config['weights_sha256'] = hashlib.sha256((path/'model.safetensors').read_bytes()).hexdigest()
        (path/'config.json').write_text(json.dumps(config))
    return run


DAMAGE = {
    'missing-config': (lambda p: (p/'config.json').unlink(), r'config\.json: missing.*save_pretrained'),
    'missing-vocab': (lambda p: (p/'vocab.json').unlink(), r'vocab\.json: missing'),
    'missing-weights': (lambda p: (p/'model.safetensors').unlink(), r'model\.safetensors: missing'),
    'truncated-weights': (_truncate, r'sha256 is not the one in config\.json: the file is truncated or corrupted'),
    'corrupted-weights': (_flip_a_byte, r'sha256 is not the one in config\.json'),
    'truncated-weights-checksum-updated': (_unchecked(_truncate), r'not a readable safetensors file'),
    'truncated-config': (lambda p: (p/'config.json').write_text((p/'config.json').read_text()[:40]),
                         r'config\.json: not valid JSON.*truncated or corrupted'),
    'not-a-config': (lambda p: (p/'config.json').write_text('[1, 2]'), r'not a relcollab model configuration'),
    'future-format-version': (_edit_config(format_version=FORMAT_VERSION + 1),
                              rf'model format {FORMAT_VERSION + 1} .*reads format {FORMAT_VERSION} at most\. Upgrade relcollab'),
    'vocab-of-another-size': (lambda p: (p/'vocab.json').write_text(json.dumps(['xxunk', 'xxpad'])),
                              r'vocab\.json: expected a list of \d+ tokens.*got 2'),
    'sizes-do-not-match-weights': (_edit_config(emb_sz=24), r'does not fit the architecture in config\.json: .*file \(\d+, 16\) vs model \(\d+, 24\)'),
    'unknown-architecture-option': (_edit_config(unknown_option=True), r'cannot build the saved architecture.*unknown_option'),
}


@pytest.mark.parametrize('damage', list(DAMAGE))
def test_a_damaged_directory_is_a_clear_error(copy_of, damage):
    path = copy_of()
    edit, message = DAMAGE[damage]
    edit(path)
    with pytest.raises(PretrainedFormatError, match=message):
        load_pretrained(path)


def test_a_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(PretrainedFormatError, match='no such model directory'):
        load_pretrained(tmp_path/'nothing')
