"""The whole ULMFiT recipe in one call: language model on all texts, then the relevance towers."""
import numpy as np
import pandas as pd
from fastai.torch_core import set_seed

from .configs import relevance_config
from .data import RelevanceDataLoaders
from .learner import RelevanceLearner, relevance_learner
from .lm import language_model_stage
from .validation import check_triples

__all__ = ['query_split', 'fine_tune_relevance', 'train_relevance_model']


def query_split(df: pd.DataFrame, query_col='query', valid_pct=0.2, seed=0) -> pd.Series:
    """A boolean `is_valid` column that holds out whole queries, so validation measures unseen queries.

    >>> query_split(pd.DataFrame({'query': list('aabbccddee')}), valid_pct=0.2).sum()
    2
    """
    queries = pd.unique(df[query_col])
    n_valid = max(1, int(round(len(queries) * valid_pct))) if len(queries) > 1 else 0
    valid_queries = set(np.random.default_rng(seed).permutation(queries)[:n_valid])
    return df[query_col].isin(valid_queries).rename('is_valid')


def fine_tune_relevance(learn: RelevanceLearner, epochs=4, lr=1e-2, freeze_epochs=1):
    """ULMFiT's schedule: the head alone, then the last LSTM layer too, then everything with discriminative lrs.

    >>> fine_tune_relevance(learn, epochs=4, lr=1e-2)  # doctest: +SKIP
    """
    learn.freeze()
    learn.fit_one_cycle(freeze_epochs, lr)
    learn.freeze_to(-2)
    learn.fit_one_cycle(1, slice(lr / (2.6 ** 4), lr / 2))
    learn.unfreeze()
    remaining = max(epochs - freeze_epochs - 1, 1)
    learn.fit_one_cycle(remaining, slice(lr / 10 / (2.6 ** 4), lr / 10))
    return learn


def train_relevance_model(df, query_col='query', doc_col='doc', score_col='score', corpus=(), size='small',
                          lm_epochs=4, epochs=4, valid_pct=0.2, valid_col=None, bs=32, seed=0, score_range=None,
                          lr=1e-2, pretrained=None, path='.', source='data') -> RelevanceLearner:
    """Checks `df`, trains the LM on every query, document and `corpus` text, then the relevance model.

    Validation holds out `valid_pct` of the distinct queries (or uses the boolean `valid_col`). The language
    model reads the training rows' queries and documents plus `corpus`, never a validation query, so the
    validation scores measure queries the model has never seen. `source` (a file name) labels data errors.

    >>> learn = train_relevance_model(triples, size='small', lm_epochs=3, epochs=3)  # doctest: +SKIP
    """
    check_triples(df, query_col, doc_col, score_col, score_range=score_range, source=source)
    if valid_col is None:
        df = df.assign(is_valid=query_split(df, query_col, valid_pct, seed))
        valid_col = 'is_valid'
    train = df[~df[valid_col].astype(bool)]
    texts = list(pd.unique(pd.concat([train[doc_col], train[query_col], pd.Series(list(corpus), dtype=object)])))
    lm = language_model_stage(texts, size=size, epochs=lm_epochs, pretrained=pretrained, seed=seed, path=path)
    set_seed(seed, reproducible=True)
    dls = RelevanceDataLoaders.from_df(df, query_col, doc_col, score_col, vocab=lm.vocab, valid_col=valid_col,
                                       bs=bs, seed=seed, score_range=score_range, path=path)
    learn = relevance_learner(dls, config=relevance_config(size))
    learn.load_encoder(lm.encoder_name)
    return fine_tune_relevance(learn, epochs=epochs, lr=lr)
