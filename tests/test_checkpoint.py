"""Crash-safe training: atomic per-epoch checkpoints, resuming after a crash or a SIGKILL, deterministic training.

The kill test runs `relcollab fit` (tiny size, through tests/fit_driver.py) three times: uninterrupted, killed with
SIGKILL after its first checkpoint, then resumed. The resumed run must lose at most one epoch, skip the finished
language model, and end with exactly the uninterrupted run's model.
"""
import hashlib
import json
import os
import signal
import subprocess
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from fastai.callback.core import Callback
from fastai.torch_core import set_seed

from conftest import TINY, make_pairs, tiny_learner, torch_threads
from relcollab.core.atomic import atomic_save
from relcollab.training.checkpoint import (CHECKPOINT_FILE, CheckpointError, Stage, finished_lm, fit_stages,
                                           load_checkpoint, mark_lm_done, run_fingerprint, ulmfit_stages)
from relcollab.core.data import RelevanceDataLoaders

DRIVER = Path(__file__).parent/'fit_driver.py'
EPOCHS = 4  # ulmfit_stages(4): 1 (head) + 1 (last layer) + 2 (all) relevance epochs
PAIRS = [('wing', 'wing heat flow over a slab'), ('shock wave', 'boundary layer on a flat plate'), ('mach', '')]


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


def fresh_learner(df, path):
    "Dataloaders and an untrained tiny learner, exactly as a new process would build them."
    set_seed(0, reproducible=True)
    dls = RelevanceDataLoaders.from_df(df, 'query', 'doc', 'score', bs=16, seed=0, path=path)
    return tiny_learner(dls, path=path)


class CrashAtEpoch(Callback):
    "Raises at the start of the n-th epoch this learner begins (1-based), like a crash mid-run."
    def __init__(self, n): self.n, self.begun = n, 0
    def before_train(self):
        self.begun += 1
        if self.begun == self.n: raise RuntimeError('simulated crash')


def state_equal(first: dict, second: dict) -> bool:
    return first.keys() == second.keys() and all(torch.equal(first[k], second[k]) for k in first)


# ----------------------------------------------------------------- in-process
@pytest.fixture(scope='module')
def uninterrupted(tmp_path_factory):
    df = make_pairs(160, seed=2)
    path = tmp_path_factory.mktemp('uninterrupted')
    learn = fresh_learner(df, path)
    with learn.no_bar(): fit_stages(learn, ulmfit_stages(EPOCHS), checkpoint_dir=path/'ckpt')
    return df, learn


def test_a_checkpoint_after_every_epoch_holds_the_final_model(uninterrupted):
    _, learn = uninterrupted
    saved = load_checkpoint(learn.path/'ckpt'/CHECKPOINT_FILE)
    assert (saved['progress']['stage'], saved['progress']['epoch']) == (2, 1)  # the last epoch of the last stage
    assert state_equal(saved['model'], learn.model.state_dict())
    assert saved['progress']['vocab'] == list(learn.dls.vocab) and saved['progress']['hparams'] == learn.model.hparams
    assert [p.name for p in (learn.path/'ckpt').iterdir()] == [CHECKPOINT_FILE]  # no temporary file left


@pytest.mark.parametrize('crash_at', [2, 4])  # in stage 2 (after stage 1's last epoch); inside stage 3
def test_resuming_after_a_crash_gives_the_uninterrupted_model(uninterrupted, tmp_path, crash_at):
    df, reference = uninterrupted
    crashed = fresh_learner(df, tmp_path)
    crashed.add_cb(CrashAtEpoch(crash_at))
    with crashed.no_bar(), pytest.raises(RuntimeError, match='simulated crash'):
        fit_stages(crashed, ulmfit_stages(EPOCHS), checkpoint_dir=tmp_path/'ckpt')
    progress = load_checkpoint(tmp_path/'ckpt'/CHECKPOINT_FILE)['progress']
    finished = [1, 1, 2][:progress['stage']]
    assert sum(finished) + progress['epoch'] + 1 == crash_at - 1  # the checkpoint is the last finished epoch
    resumed = fresh_learner(df, tmp_path)
    with resumed.no_bar(): fit_stages(resumed, ulmfit_stages(EPOCHS), checkpoint_dir=tmp_path/'ckpt', resume=True)
    assert state_equal(resumed.model.state_dict(), reference.model.state_dict())
    np.testing.assert_array_equal(resumed.score_pairs(PAIRS), reference.score_pairs(PAIRS))


def test_resuming_a_finished_run_trains_nothing(uninterrupted, tmp_path):
    df, reference = uninterrupted
    learn = fresh_learner(df, tmp_path)
    class Forbid(Callback):
        def before_train(self): raise AssertionError('trained again')
    learn.add_cb(Forbid())
    fit_stages(learn, ulmfit_stages(EPOCHS), checkpoint_dir=reference.path/'ckpt', resume=True)
    assert state_equal(learn.model.state_dict(), reference.model.state_dict())


def test_resuming_without_a_checkpoint_starts_from_the_beginning(uninterrupted, tmp_path):
    df, reference = uninterrupted
    learn = fresh_learner(df, tmp_path)
    with learn.no_bar(), pytest.warns(UserWarning, match='No checkpoint .* training from the start'):
        fit_stages(learn, ulmfit_stages(EPOCHS), checkpoint_dir=tmp_path/'ckpt', resume=True)
    assert state_equal(learn.model.state_dict(), reference.model.state_dict())


@pytest.mark.parametrize('change, message', [
    ('schedule', r'another schedule \(epochs, lr\)'),
    ('size', r"another model \(size, options: config \{.*'emb_sz': 16.*\} in the checkpoint, \{.*'emb_sz': 24.*\} now\)"),
    ('vocab', r'another vocabulary'),
])
def test_resuming_with_other_settings_is_refused(uninterrupted, tmp_path, change, message):
    df, reference = uninterrupted
    stages = ulmfit_stages(EPOCHS)
    if change == 'schedule': stages = ulmfit_stages(EPOCHS + 1)
    set_seed(0, reproducible=True)
    vocab = list(reference.dls.vocab)
    if change == 'vocab': vocab[9], vocab[10] = vocab[10], vocab[9]
    dls = RelevanceDataLoaders.from_df(df, bs=16, seed=0, path=tmp_path, vocab=vocab)
    learn = tiny_learner(dls, path=tmp_path, **({'config': dict(TINY, emb_sz=24)} if change == 'size' else {}))
    with pytest.raises(CheckpointError, match=message + r'.*same options, or use a new checkpoint directory'):
        fit_stages(learn, stages, checkpoint_dir=reference.path/'ckpt', resume=True)


@pytest.mark.parametrize('damage, message', [
    (lambda p: p.write_bytes(p.read_bytes()[:1000]), 'not a readable checkpoint'),
    (lambda p: p.write_bytes(b'garbage'), 'not a readable checkpoint'),
    (lambda p: torch.save({'model': {}}, p), 'not a relcollab checkpoint'),
], ids=['truncated', 'garbage', 'foreign'])
def test_a_damaged_checkpoint_is_a_clear_error(uninterrupted, tmp_path, damage, message):
    df, reference = uninterrupted
    (tmp_path/'ckpt').mkdir()
    path = tmp_path/'ckpt'/CHECKPOINT_FILE
    path.write_bytes((reference.path/'ckpt'/CHECKPOINT_FILE).read_bytes())
    damage(path)
    with pytest.raises(CheckpointError, match=message + '.*Delete it to train from the start'):
        fit_stages(fresh_learner(df, tmp_path), ulmfit_stages(EPOCHS), checkpoint_dir=tmp_path/'ckpt', resume=True)


def test_a_crash_while_saving_leaves_the_previous_checkpoint_whole(tmp_path, monkeypatch):
    path = tmp_path/'checkpoint.pth'
    atomic_save({'epoch': 1, 'weights': torch.ones(3)}, path)
    def dies_half_way(obj, handle):
        handle.write(b'half a checkpoint')
        raise KeyboardInterrupt  # or SIGKILL: the rename below it never happens
    monkeypatch.setattr(torch, 'save', dies_half_way)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({'epoch': 2, 'weights': torch.zeros(3)}, path)
    monkeypatch.undo()
    assert torch.load(path, weights_only=True)['epoch'] == 1
    assert [p.name for p in tmp_path.iterdir()] == ['checkpoint.pth']


def test_a_finished_language_model_is_reused_only_for_the_same_run(tmp_path):
    encoder = tmp_path/'models'/'lm_enc.pth'
    encoder.parent.mkdir()
    encoder.write_bytes(b'encoder weights')
    lm = types.SimpleNamespace(encoder_path=encoder, encoder_name='lm_enc', vocab=['xxunk', 'xxpad', 'wing'])
    df = make_pairs(20)
    run = run_fingerprint(df, ['more text'], 'small', 1, 0)
    mark_lm_done(tmp_path/'ckpt', lm, run)
    assert finished_lm(tmp_path/'ckpt', run)['vocab'] == lm.vocab
    changed = df.assign(score=df['score'].where(df.index != 3, 9.0))
    for other in (run_fingerprint(changed, ['more text'], 'small', 1, 0), run_fingerprint(df, [], 'small', 1, 0),
                  run_fingerprint(df, ['more text'], 'base', 1, 0)):
        with pytest.raises(CheckpointError, match='holds a run on other data or options'):
            finished_lm(tmp_path/'ckpt', other)
    encoder.write_bytes(b'another encoder')  # overwritten by another run: train the language model again
    assert finished_lm(tmp_path/'ckpt', run) is None


def test_resume_needs_a_checkpoint_dir(trained):
    with pytest.raises(ValueError, match='resume=True needs the checkpoint_dir'):
        fit_stages(trained, [Stage(-1, 1, 1e-3)], resume=True)


# ----------------------------------------------------------------- SIGKILL
def fit_command(folder: Path, log: Path, sleep_s: float, *extra):
    return [sys.executable, str(DRIVER), str(log), str(sleep_s), 'fit', str(folder.parent/'triples.csv'),
            '--size', 'tiny', '--lm-epochs', '1', '--epochs', str(EPOCHS), '--bs', '16', '--checkpoint-dir', 'ckpt',
            '--pretrained', 'model', *extra]


def run_fit(folder: Path, log: Path, *extra, sleep_s=0.):
    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    done = subprocess.run(fit_command(folder, log, sleep_s, *extra), cwd=folder, env=env, capture_output=True,
                          text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def epochs_begun(log: Path, learner='RelevanceLearner') -> int:
    return sum(line.split()[:2] == ['begin', learner] for line in log.read_text().splitlines()) if log.exists() else 0


def weights_sha(folder: Path) -> str:
    return json.loads((folder/'model'/'config.json').read_text())['weights_sha256']


def test_sigkill_mid_training_then_resume_loses_at_most_one_epoch(tmp_path):
    make_pairs(160, seed=1).to_csv(tmp_path/'triples.csv', index=False)
    reference, killed = tmp_path/'reference', tmp_path/'killed'
    reference.mkdir(), killed.mkdir()
    run_fit(reference, tmp_path/'reference.log')
    assert epochs_begun(tmp_path/'reference.log') == EPOCHS

    env = dict(os.environ, OMP_NUM_THREADS='1', MKL_NUM_THREADS='1')
    process = subprocess.Popen(fit_command(killed, tmp_path/'run1.log', 0.5), cwd=killed, env=env,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    checkpoint = killed/'ckpt'/CHECKPOINT_FILE
    deadline = time.time() + 240
    while not checkpoint.exists() and process.poll() is None and time.time() < deadline: time.sleep(0.02)
    process.send_signal(signal.SIGKILL)
    assert process.wait(timeout=60) == -signal.SIGKILL
    assert not (killed/'model').exists()  # it really died mid-run

    progress = load_checkpoint(checkpoint)['progress']  # the checkpoint it left is whole
    checkpointed = sum([1, 1, 2][:progress['stage']]) + progress['epoch'] + 1
    begun = epochs_begun(tmp_path/'run1.log')
    assert 1 <= checkpointed < EPOCHS and begun - checkpointed <= 1  # at most one epoch lost
    digest = hashlib.sha256(checkpoint.read_bytes()).hexdigest()

    done = run_fit(killed, tmp_path/'run2.log', '--resume')
    assert f"resuming after stage {progress['stage'] + 1}, epoch {progress['epoch'] + 1}" in done.stdout
    assert epochs_begun(tmp_path/'run2.log', 'LMLearner') == 0  # the finished language model is not trained again
    assert epochs_begun(tmp_path/'run2.log') == EPOCHS - checkpointed
    assert hashlib.sha256(checkpoint.read_bytes()).hexdigest() != digest  # training went on from it
    assert weights_sha(killed) == weights_sha(reference)  # exactly the uninterrupted run's model


def test_an_unreadable_language_model_record_means_training_it_again(tmp_path):
    (tmp_path/'lm.json').write_text('{"data": "abc", "enc')  # cut short
    assert finished_lm(tmp_path, 'abc') is None
    (tmp_path/'lm.json').write_bytes(b'\xff\xfe{}')  # not UTF-8
    assert finished_lm(tmp_path, 'abc') is None
