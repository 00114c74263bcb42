"""`relcollab fit` with the tests' tiny model size, logging every epoch: the subprocess that test_checkpoint.py kills.

    python tests/fit_driver.py EPOCH_LOG SLEEP_S fit triples.csv --size tiny --checkpoint-dir ckpt ...

Registers the size 'tiny' (conftest's TINY sizes) and adds a callback to every Learner that appends
`begin <Learner class> <epoch>` / `end ...` lines to EPOCH_LOG and sleeps SLEEP_S at the start of each relevance
epoch (a wide window for the kill to land mid-epoch). Not collected by pytest (no test_ prefix).
"""
import sys
import time

import torch
import fastai.callback.progress  # noqa: F401  (defines defaults.callbacks)
from fastai.callback.core import Callback
from fastcore.basics import defaults

from relcollab.app.cli import main
from relcollab.core.model import MODEL_SIZES

TINY_SIZE = dict(emb_sz=16, n_hid=32, n_layers=2)


class EpochLog(Callback):
    "Appends one line per epoch begun and finished to the log file; sleeps at the start of relevance epochs."
    log_path, sleep_s = None, 0.

    def before_train(self):
        self._write('begin')
        if type(self.learn).__name__ == 'RelevanceLearner': time.sleep(self.sleep_s)

    def after_train(self): self._write('end')

    def _write(self, what):
        with open(self.log_path, 'a') as log:
            log.write(f"{what} {type(self.learn).__name__} {self.epoch}\n")


if __name__ == '__main__':
    torch.set_num_threads(1)
    EpochLog.log_path, EpochLog.sleep_s = sys.argv[1], float(sys.argv[2])
    MODEL_SIZES['tiny'] = TINY_SIZE
    defaults.callbacks = list(defaults.callbacks) + [EpochLog]
    sys.exit(main(sys.argv[3:]))
