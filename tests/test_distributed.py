"""Data-parallel training on CPU: 2 processes (gloo, one thread each) through fastai's `distrib_ctx`, launched by
torchrun as users launch it (tests/ddp_driver.py), end with exactly the same weights after training on different
halves of every epoch."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

pytest.importorskip('accelerate')  # fastai's distrib_ctx needs it (relcollab[distributed], in the test extras)
DRIVER = Path(__file__).parent/'ddp_driver.py'


@pytest.fixture(scope='module')
def two_ranks(tmp_path_factory):
    out = tmp_path_factory.mktemp('ddp')
    env = {**os.environ, 'OMP_NUM_THREADS': '1', 'MKL_NUM_THREADS': '1'}
    command = [sys.executable, '-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', str(DRIVER), str(out)]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return [(torch.load(out/f'rank{r}.pth', weights_only=True), json.loads((out/f'rank{r}.json').read_text()))
            for r in (0, 1)]


def test_both_ranks_end_with_the_same_weights(two_ranks):
    (weights0, _), (weights1, _) = two_ranks
    assert list(weights0) == list(weights1)
    different = [name for name in weights0 if not torch.equal(weights0[name], weights1[name])]
    assert different == []


def test_each_rank_trained_on_its_own_half_of_the_batches(two_ranks):
    (_, log0), (_, log1) = two_ranks
    assert log0['world_size'] == log1['world_size'] == 2
    per_fit = -(-log0['n_train_batches'] // 2)  # DistributedDL: ceil(batches / ranks) each, per epoch
    assert len(log0['targets']) == len(log1['targets']) == 2 * per_fit  # two fits of one epoch
    assert log0['targets'] != log1['targets']


def test_without_a_launcher_distrib_ctx_trains_as_one_process(pairs_df, tmp_path):
    import relcollab.training.distributed  # noqa: F401
    from conftest import tiny_learner, torch_threads
    from relcollab.core.data import RelevanceDataLoaders
    with torch_threads(1):
        dls = RelevanceDataLoaders.from_df(pairs_df.head(64), 'query', 'doc', 'score', bs=16, seed=0, path=tmp_path)
        learn = tiny_learner(dls, path=tmp_path)
        with learn.distrib_ctx(), learn.no_bar(): learn.fit(1, 1e-3)
    assert not any(type(cb).__name__ in ('DistributedTrainer', 'SyncBuffers') for cb in learn.cbs)
    assert type(learn.model).__name__ == 'RelevanceModel' and len(learn.recorder.values) == 1
