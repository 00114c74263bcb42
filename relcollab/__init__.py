"""relcollab: learn text relevance the fastai way (two AWD-LSTM towers and a dot product).

Layers (each imports only those before it; `relcollab.retrieval` also imports `relcollab.training.learner`, to
attach its methods to `RelevanceLearner`):

    relcollab.core       texts, data, the model, losses, metrics, checks
    relcollab.training   the learner, the language model, the ULMFiT recipe, distillation, self-supervision
    relcollab.retrieval  vectors, indexes, BM25, fusion, TREC runs and metrics, saved models
    relcollab.datasets   Cranfield, BEIR/TREC collections, documents alone
    relcollab.app        the `relcollab` command, the demo, the collection benchmark

The old flat paths (`relcollab.model`, `relcollab.recipe`, ...) still import, as the same modules (`_moved.py`).
"""
__version__ = "0.1.0"

from ._moved import install as _install_moved

_install_moved()

# Attach encode / index / search / rank and save_pretrained (relcollab.retrieval) to RelevanceLearner, so a
# learner from `load_learner` has them too.
from . import retrieval  # noqa: E402,F401


def __getattr__(name):
    "`relcollab.model` and the other old paths as attributes too (they were, once `import relcollab` ran)."
    from ._moved import MOVED
    if f'{__name__}.{name}' in MOVED:
        import importlib
        return importlib.import_module(f'{__name__}.{name}')
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
