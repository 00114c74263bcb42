"""relcollab: learn text relevance the fastai way (two AWD-LSTM towers and a dot product)."""
__version__ = "0.1.0"

# Attach encode / index / search / rank (relcollab.retrieval) and save_pretrained to RelevanceLearner, so a
# learner from `load_learner` has them too.
from . import pretrained, retrieval  # noqa: E402,F401
