"""Pair metrics: how well predicted scores match the judged scores of the same (query, document) pairs."""
import numpy as np
from scipy.stats import pearsonr, spearmanr

__all__ = ['pair_metrics', 'pair_rmse', 'pair_spearman']


def pair_metrics(pred, true) -> dict:
    """Spearman and Pearson correlations between predicted and true scores of the same pairs (scipy).

    Constant inputs give NaN (scipy warns).

    >>> pair_metrics([0.1, 0.4, 0.9], [0, 1, 3])['spearman']
    1.0
    """
    pred, true = np.asarray(pred, dtype=np.float64).reshape(-1), np.asarray(true, dtype=np.float64).reshape(-1)
    if len(pred) != len(true): raise ValueError(f"{len(pred)} predictions for {len(true)} true scores.")
    if len(pred) < 2: raise ValueError("pair_metrics needs at least two pairs.")
    if not (np.isfinite(pred).all() and np.isfinite(true).all()): raise ValueError("scores must be finite numbers.")
    return {'spearman': pair_spearman(pred, true), 'pearson': float(pearsonr(pred, true).statistic), 'n': len(pred)}


def pair_rmse(pred, true) -> float:
    """Root mean squared error of predicted against true scores of the same pairs (in the scores' units).

    >>> pair_rmse([1, 2], [1, 4])
    1.4142135623730951
    """
    return float(np.sqrt(np.mean((np.asarray(pred, dtype=np.float64) - np.asarray(true, dtype=np.float64)) ** 2)))


def pair_spearman(pred, true) -> float:
    """Spearman's rank correlation of predicted and true scores of the same pairs (scipy); NaN, without scipy's
    warning, for fewer than 2 pairs or a constant side.

    >>> pair_spearman([0.1, 0.4, 0.9], [0, 1, 3]), pair_spearman([1, 1], [0, 1])
    (1.0, nan)
    """
    pred, true = np.asarray(pred, dtype=np.float64), np.asarray(true, dtype=np.float64)
    if len(pred) < 2 or np.ptp(pred) == 0 or np.ptp(true) == 0: return float('nan')
    return float(spearmanr(pred, true).statistic)
