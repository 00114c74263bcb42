"""relcollab: learn text relevance the fastai way (two AWD-LSTM towers and a dot product)."""
__version__ = "0.1.0"
