"""Named model sizes for the language model and the relevance towers."""
from fastai.text.models.awdlstm import awd_lstm_clas_config, awd_lstm_lm_config

__all__ = ['MODEL_SIZES', 'lm_config', 'relevance_config']

MODEL_SIZES = {
    'base': dict(emb_sz=400, n_hid=1152, n_layers=3),  # ULMFiT's AWD-LSTM (WT103 weights fit this)
    'small': dict(emb_sz=128, n_hid=384, n_layers=2),  # for CPUs and tests
}


def _sized(template: dict, size: str) -> dict:
    if size not in MODEL_SIZES:
        raise ValueError(f"Unknown model size {size!r}: choose one of {sorted(MODEL_SIZES)}.")
    return {**template, **MODEL_SIZES[size]}


def lm_config(size: str = 'small') -> dict:
    """AWD-LSTM language-model config of a named size.

    >>> lm_config('base')['n_hid']
    1152
    """
    return _sized(awd_lstm_lm_config, size)


def relevance_config(size: str = 'small') -> dict:
    """AWD-LSTM encoder config (classifier dropouts) of a named size, for `relevance_learner`.

    >>> relevance_config('small')['emb_sz']
    128
    """
    return _sized(awd_lstm_clas_config, size)
