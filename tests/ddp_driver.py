"""One rank of the 2-process CPU data-parallel test (test_distributed.py), launched as users launch it:

    OMP_NUM_THREADS=1 torchrun --standalone --nproc_per_node 2 tests/ddp_driver.py OUT_DIR

Every rank builds the same tiny learner (conftest's TINY sizes, in-batch loss, lexical channel) on the same
pairs, trains two stages inside `learn.distrib_ctx()` (gloo on CPU), and writes its final state_dict to
OUT_DIR/rank{R}.pth and what it trained on to OUT_DIR/rank{R}.json. Not collected by pytest (no test_ prefix).
"""
import json
import sys
from pathlib import Path

import torch
from fastai.callback.core import Callback
from fastai.torch_core import num_distrib, rank_distrib, set_seed

import relcollab.training.distributed  # noqa: F401  (learn.distrib_ctx on CPU)
from conftest import PROJ_SZ, TINY, make_pairs
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.learner import relevance_learner


class BatchLog(Callback):
    "Records the targets of every training batch this rank sees."
    def before_fit(self): self.targets = getattr(self, 'targets', [])
    def before_batch(self):
        if self.training: self.targets.append(self.y.tolist())


if __name__ == '__main__':
    torch.set_num_threads(1)
    out = Path(sys.argv[1])
    set_seed(0, reproducible=True)
    dls = RelevanceDataLoaders.from_df(make_pairs(120, seed=3), 'query', 'doc', 'score', bs=16, seed=0, path=out)
    learn = relevance_learner(dls, config=TINY, proj_sz=PROJ_SZ, in_batch=True, lexical=True, path=out, cbs=BatchLog())
    with learn.distrib_ctx(), learn.no_bar():
        learn.fit_one_cycle(1, 1e-2)
        learn.unfreeze()
        learn.fit_one_cycle(1, 1e-3)
    rank = rank_distrib()
    torch.save(learn.model.state_dict(), out/f'rank{rank}.pth')
    (out/f'rank{rank}.json').write_text(json.dumps({'world_size': num_distrib(), 'targets': learn.batch_log.targets,
                                                    'n_train_batches': len(dls.train)}))
