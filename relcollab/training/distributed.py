"""Data-parallel training past one machine, through fastai's own `distrib_ctx`, on GPUs (NCCL) and CPUs (gloo).

Write one script that builds the learner the same way in every process and trains inside `learn.distrib_ctx()`:

    import relcollab.training.distributed  # noqa: F401  (makes learn.distrib_ctx work on CPUs too)
    learn = relevance_learner(dls, config=relevance_config('small'))
    with learn.distrib_ctx():
        learn.fit_one_cycle(4, 1e-2)
    if rank_distrib() == 0: learn.export('rel.pkl')

then launch one process per GPU, or per group of CPU cores:

    torchrun --nproc_per_node 8 train.py                        # 8 GPUs of one machine (or: accelerate launch --multi_gpu)
    torchrun --nnodes 2 --node_rank R --master_addr HOST --nproc_per_node 8 train.py    # two machines
    OMP_NUM_THREADS=1 torchrun --nproc_per_node 2 train.py      # 2 CPU processes (gloo), one thread each

Each process trains on its share of every epoch's batches (fastai's `DistributedDL`); DDP averages the
gradients, so every process holds the same weights. fastai 2.8 assumes GPUs there; importing this module
fixes what breaks on CPUs:

- `DistributedDL._broadcast` sends the epoch's batch order as a CUDA tensor (NCCL only sends those): it now
  stays on the CPU unless the process group is NCCL.
- `Accelerator()` without `cpu=True` sees no GPU and silently trains every process alone: on a machine
  without CUDA, `learn.distrib_ctx()` passes `cpu=True`, so accelerate starts gloo.
- `sync_bn=True` swaps BatchNorm for `SyncBatchNorm`, which runs on GPUs only: on CPUs it is off, and
  after each fit every process takes rank 0's BatchNorm statistics (DDP syncs them only before a forward),
  so all processes end with the same state.

Needs `accelerate` (`pip install "relcollab[distributed]"`), as fastai's `distrib_ctx` does. Checkpoints
(`checkpoint_dir`) are not supported in distributed runs (untested).
"""
from contextlib import contextmanager

import torch
import torch.distributed as dist
from fastai.callback.core import Callback
from fastai.learner import Learner
from fastcore.basics import patch

try:
    from fastai.distributed import DistributedDL  # fastai.distributed needs accelerate at import time
except (ImportError, NameError) as error:
    raise ImportError("relcollab.training.distributed needs accelerate, as fastai's distrib_ctx does: "
                      "pip install accelerate (or pip install 'relcollab[distributed]').") from error
from fastai.torch_core import num_distrib

from .learner import RelevanceLearner

__all__ = ['SyncBuffers', 'sync_buffers']


@patch
def _broadcast(self: DistributedDL, t, rank):
    "Broadcasts the list `t` from `rank` to every rank (on CUDA for NCCL, on the CPU for gloo); returns it."
    tensor = torch.tensor(t, dtype=torch.long)
    if dist.get_backend() == dist.Backend.NCCL: tensor = tensor.cuda()
    dist.broadcast(tensor, rank)
    return tensor.cpu().tolist()


def sync_buffers(model: torch.nn.Module, src: int = 0):
    "Copies rank `src`'s buffers (BatchNorm running statistics) into every rank's `model`."
    for buffer in model.buffers(): dist.broadcast(buffer.data, src)


class SyncBuffers(Callback):
    "After fit, every rank takes rank 0's buffers, so that all ranks end with the same state."
    order = 11.5  # after fastai's DistributedTrainer (11) has unwrapped the model

    def after_fit(self):
        if dist.is_available() and dist.is_initialized(): sync_buffers(self.learn.model)


@patch
@contextmanager
def distrib_ctx(self: RelevanceLearner, sync_bn=None, in_notebook=False, **kwargs):
    """fastai's `Learner.distrib_ctx` (DDP through accelerate), also on CPUs: `sync_bn` defaults to whether CUDA is
    available, and without CUDA accelerate is told to use the CPU (gloo). Outside a distributed launch it does nothing.

    >>> with learn.distrib_ctx(): learn.fit_one_cycle(4, 1e-2)  # doctest: +SKIP
    """
    on_gpu = torch.cuda.is_available()
    if sync_bn is None: sync_bn = on_gpu
    if not on_gpu: kwargs.setdefault('cpu', True)
    with Learner.distrib_ctx(self, sync_bn=sync_bn, in_notebook=in_notebook and on_gpu, **kwargs):
        if num_distrib() <= 1 or sync_bn:
            yield self
            return
        with self.added_cbs(SyncBuffers()):
            yield self
