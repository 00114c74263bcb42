"""Crash-safe training: an atomic checkpoint after every epoch, and resuming where a killed run stopped.

    fit_stages(learn, ulmfit_stages(epochs=4, lr=1e-2), checkpoint_dir='ckpt')       # ckpt/relevance.pth
    fit_stages(learn, ulmfit_stages(epochs=4, lr=1e-2), checkpoint_dir='ckpt', resume=True)  # after a kill

`fine_tune_relevance`, `train_relevance_model` and `relcollab fit` take the same `checkpoint_dir` / `resume`.
A checkpoint is one file, written under a temporary name, flushed to disk and renamed over the previous one
(`os.replace`), so a kill at any moment leaves the previous checkpoint whole. It holds the model and optimizer
state, where training is in the schedule (stage, epoch), the random number generators, the schedule, the
model's `hparams` and the vocabulary, and loads with `torch.load(weights_only=True)` (no pickled code runs).
Resuming restores all of it and continues with the next epoch: the result is the uninterrupted run's.
"""
import hashlib
import json
import random
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch
import fastai.callback.schedule  # noqa: F401  (fit_one_cycle)
from fastai.callback.core import Callback
from fastcore.foundation import L

from ..core.atomic import atomic_save, atomic_write, file_sha256, read_json
from ..core.validation import RelevanceDataError

__all__ = ['CheckpointError', 'Stage', 'ulmfit_stages', 'EpochCheckpoint', 'fit_stages', 'load_checkpoint',
           'CHECKPOINT_FILE']

CHECKPOINT_FILE, LM_MARKER_FILE = 'relevance.pth', 'lm.json'
CHECKPOINT_VERSION = 1


class CheckpointError(RelevanceDataError):
    "A checkpoint is unreadable, or was written by a run with other settings than the one resuming it."


@dataclass(frozen=True)
class Stage:
    "One `fit_one_cycle` of a schedule: train parameter groups `freeze_to:` (0: all) for `epochs` at `lr`."
    freeze_to: int
    epochs: int
    lr: object  # a float or a slice (discriminative learning rates)

    def describe(self) -> list:
        lr = [self.lr.start, self.lr.stop] if isinstance(self.lr, slice) else self.lr
        return [self.freeze_to, self.epochs, repr(lr)]


def ulmfit_stages(epochs=4, lr=1e-2, freeze_epochs=1) -> list:
    """ULMFiT's schedule: the head alone, then the last LSTM layer too, then everything (discriminative lrs).

    >>> [(s.freeze_to, s.epochs) for s in ulmfit_stages(epochs=4)]
    [(-1, 1), (-2, 1), (0, 2)]
    """
    return [Stage(-1, freeze_epochs, lr), Stage(-2, 1, slice(lr / (2.6 ** 4), lr / 2)),
            Stage(0, max(epochs - freeze_epochs - 1, 1), slice(lr / 10 / (2.6 ** 4), lr / 10))]


# ----------------------------------------------------------------- random generators
def rng_state(learn) -> dict:
    "Every random generator training draws from (dropout, batch order), as tensors and ints."
    kind, keys, position, has_gauss, gauss = np.random.get_state()
    return {'torch': torch.get_rng_state(), 'python': random.getstate(), 'train_dl': learn.dls.train.rng.getstate(),
            'numpy': [kind, torch.from_numpy(keys.astype(np.int64)), position, has_gauss, gauss]}


def set_rng_state(learn, state: dict):
    torch.set_rng_state(state['torch'])
    random.setstate(state['python'])
    learn.dls.train.rng.setstate(state['train_dl'])
    kind, keys, position, has_gauss, gauss = state['numpy']
    np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))


# ----------------------------------------------------------------- checkpoints
def _plain(value):
    "numpy scalars (fastai's scheduled hyper-parameters) as Python numbers, `L`s as lists: weights_only loads them."
    if isinstance(value, np.generic): return value.item()
    if isinstance(value, dict): return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, tuple): return tuple(_plain(v) for v in value)
    if isinstance(value, (list, L)): return [_plain(v) for v in value]
    return value


def checkpoint_state(learn, stage: int, epoch: int, schedule: list) -> dict:
    "What a checkpoint holds: model, optimizer, random generators and where training is."
    return {'model': learn.model.state_dict(), 'opt': _plain(learn.opt.state_dict()), 'rng': rng_state(learn),
            'progress': {'version': CHECKPOINT_VERSION, 'stage': stage, 'epoch': epoch, 'schedule': schedule,
                         'hparams': getattr(learn.model, 'hparams', None), 'vocab': list(learn.dls.vocab),
                         'data': data_fingerprint(learn.dls)}}


def data_fingerprint(dls) -> str:
    "sha256 of the training and validation rows (query, document, score, in order) and the score range."
    score_col = dls.score_col
    digest = hashlib.sha256(repr([dls.score_scaler.lo, dls.score_scaler.hi]).encode())
    for items in (dls.train_ds.items, dls.valid_ds.items):
        rows = items[[dls.query_col, dls.doc_col, score_col]]
        digest.update(repr(len(rows)).encode())
        digest.update(pd.util.hash_pandas_object(rows, index=False).to_numpy().tobytes())
    return digest.hexdigest()


class EpochCheckpoint(Callback):
    "After every finished epoch, atomically saves model, optimizer, generators and (stage, epoch) to `path`."
    order = 65  # after the Recorder (50) has the epoch's metrics; before fastai's SkipToEpoch (70)

    def __init__(self, path, stage: int, schedule: list):
        self.path, self.stage, self.schedule, self.skipped = Path(path), stage, schedule, False

    def before_epoch(self): self.skipped = False
    def after_cancel_epoch(self): self.skipped = True  # an epoch skipped on resume is not a finished epoch

    def after_epoch(self):
        if not self.skipped: atomic_save(checkpoint_state(self.learn, self.stage, self.epoch, self.schedule), self.path)


def load_checkpoint(path) -> dict:
    "A checkpoint written by `EpochCheckpoint`, loaded with `weights_only=True`; a clear error when unreadable."
    path = Path(path)
    try:
        state = torch.load(path, map_location='cpu', weights_only=True)
    except Exception as error:  # truncated or foreign files fail in many ways inside torch
        raise CheckpointError(f"{path}: not a readable checkpoint (truncated, corrupted or not written by relcollab: "
                              f"{type(error).__name__}). Delete it to train from the start.") from None
    if not isinstance(state, dict) or not {'model', 'opt', 'rng', 'progress'} <= set(state):
        raise CheckpointError(f"{path}: not a relcollab checkpoint. Delete it to train from the start.")
    if state['progress'].get('version', 0) > CHECKPOINT_VERSION:
        raise CheckpointError(f"{path}: written by a newer relcollab (checkpoint version "
                              f"{state['progress']['version']}). Upgrade relcollab, or delete it to start over.")
    return state


def _check_matches(path: Path, progress: dict, learn, schedule: list):
    "Refuses to resume a checkpoint from another schedule, architecture, vocabulary or data."
    pairs = [('another schedule (epochs, lr)', progress['schedule'], schedule),
             ('another model (size, options)', progress['hparams'], getattr(learn.model, 'hparams', None)),
             ('another vocabulary', progress['vocab'], list(learn.dls.vocab))]
    if 'data' in progress:  # checkpoints written before the data was recorded cannot be checked for it
        pairs.append(('other data (training or validation rows, scores or score range)', progress['data'],
                      data_fingerprint(learn.dls)))
    differences = [name if not isinstance(saved, dict) or not isinstance(now, dict) else _with_options(name, saved, now)
                   for name, saved, now in pairs if _as_json(saved) != _as_json(now)]
    if differences:
        same = 'data and options' if differences[-1].startswith('other data') else 'options'
        raise CheckpointError(f"{path} was written by a run with {' and '.join(differences)}: resume with "
                              f"the same {same}, or use a new checkpoint directory (or delete this one).")


def _as_json(value): return json.dumps(value, sort_keys=True, default=str)


def _with_options(name: str, saved: dict, now: dict, most: int = 5) -> str:
    """`name` with the options that differ, e.g. "another model (size, options: lexical True in the checkpoint,
    'bm25' now)": a default that changed between versions then says what to pass."""
    keys = [key for key in sorted(set(saved) | set(now)) if _as_json(saved.get(key)) != _as_json(now.get(key))]
    shown = '; '.join(f"{key} {saved.get(key)!r} in the checkpoint, {now.get(key)!r} now" for key in keys[:most])
    return f"{name[:-1]}: {shown}{'; ...' if len(keys) > most else ''})" if keys else name


def _restore(learn, state: dict):
    learn.model.load_state_dict(state['model'])
    learn.opt.load_state_dict(state['opt'])
    set_rng_state(learn, state['rng'])


def fit_stages(learn, stages: list, checkpoint_dir=None, resume=False):
    """Runs `stages` (each: `freeze_to`, then `fit_one_cycle`), checkpointing every epoch into `checkpoint_dir`.

    With `resume=True`, first restores the checkpoint in `checkpoint_dir` (if there is one) and continues with
    the epoch after it, giving the weights of an uninterrupted run. A checkpoint from another schedule, model
    size, vocabulary or data (rows, scores, validation split, score range) raises `CheckpointError`.

    >>> fit_stages(learn, ulmfit_stages(epochs=4), checkpoint_dir='ckpt', resume=True)  # doctest: +SKIP
    """
    if resume and checkpoint_dir is None: raise ValueError("resume=True needs the checkpoint_dir to resume from.")
    schedule = [stage.describe() for stage in stages]
    path = None if checkpoint_dir is None else Path(checkpoint_dir)/CHECKPOINT_FILE
    saved = _resumable(path, learn, schedule) if resume else None
    first_stage, first_epoch = (saved['progress']['stage'], saved['progress']['epoch'] + 1) if saved else (0, 0)
    for index, stage in enumerate(stages):
        if index < first_stage: continue
        learn.freeze_to(stage.freeze_to)  # also clears the optimizer state, as each ULMFiT stage does
        start_epoch = 0
        if saved is not None and index == first_stage:
            _restore(learn, saved)
            start_epoch = first_epoch
        if start_epoch >= stage.epochs: continue
        cbs = [] if path is None else [EpochCheckpoint(path, index, schedule)]
        learn.fit_one_cycle(stage.epochs, stage.lr, start_epoch=start_epoch, cbs=cbs)
    return learn


def _resumable(path: Path, learn, schedule: list):
    if not path.exists():
        warnings.warn(f"No checkpoint at {path} to resume from: training from the start.", stacklevel=3)
        return None
    saved = load_checkpoint(path)
    _check_matches(path, saved['progress'], learn, schedule)
    return saved


def checkpoint_progress(checkpoint_dir) -> dict | None:
    "(stage, epoch) of the checkpoint in `checkpoint_dir`, or None when there is none."
    path = Path(checkpoint_dir)/CHECKPOINT_FILE
    return load_checkpoint(path)['progress'] if path.exists() else None


# ----------------------------------------------------------------- the language-model stage
def run_fingerprint(df, corpus=(), *options) -> str:
    "sha256 of a run's data (the rows of `df`, the `corpus` texts) and `options` (anything with a stable repr)."
    digest = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
    digest.update(pd.util.hash_pandas_object(pd.Series(list(corpus), dtype=object), index=False).to_numpy().tobytes())
    digest.update(repr(options).encode())
    return digest.hexdigest()


def mark_lm_done(checkpoint_dir, lm, fingerprint: str):
    "Records (atomically) that the language model of this run is trained and where its encoder is."
    record = {'encoder': str(lm.encoder_path.absolute()), 'encoder_name': lm.encoder_name,
              'encoder_sha256': file_sha256(lm.encoder_path), 'vocab': list(lm.vocab), 'data': fingerprint}
    atomic_write(Path(checkpoint_dir)/LM_MARKER_FILE, lambda handle: handle.write(json.dumps(record).encode()))


def finished_lm(checkpoint_dir, fingerprint: str) -> dict | None:
    """The record of this run's finished language model in `checkpoint_dir` (its encoder file still as saved),
    else None. A record for other data raises `CheckpointError`."""
    path = Path(checkpoint_dir)/LM_MARKER_FILE
    if not path.exists(): return None
    try: record = read_json(path, CheckpointError)
    except (CheckpointError, OSError): return None  # unreadable: train the language model again
    if record.get('data') != fingerprint:
        raise CheckpointError(f"{path.parent} holds a run on other data or options: resume with the same data "
                              f"and options, or use a new checkpoint directory (or delete this one).")
    encoder = Path(record['encoder'])
    if not encoder.exists() or file_sha256(encoder) != record['encoder_sha256']: return None
    return record
