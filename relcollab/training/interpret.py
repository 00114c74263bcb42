"""`RelevanceInterpretation`: where a relevance model is right and where it is wrong, as tables and figures.

    interp = RelevanceInterpretation.from_learner(learn)      # the validation set, predicted once
    interp.plot_score_hist()      # do relevant and irrelevant pairs get different scores?
    interp.plot_pred_vs_true()    # predicted vs true, rmse and Spearman in the title
    interp.top_losses_table(5)    # the worst pairs: query, doc, true, predicted, loss
    interp.top_losses(5)          # fastai's: (losses, indexes) of the worst pairs
    interp.per_query()            # n, rmse, Spearman, nDCG for each query

Plots return a matplotlib `Figure`, already closed in pyplot: a notebook shows it once, when it is the cell's
last expression (or with `display(fig)`), and `fig.savefig('hist.png')` saves it.
"""
import numpy as np
import matplotlib.pyplot as plt
import pandas as pd
from fastai.interpret import Interpretation
from matplotlib.figure import Figure

from ..core.metrics import pair_rmse, pair_spearman
from .learner import _PREDICT_LOCK, RelevanceLearner

__all__ = ['RelevanceInterpretation', 'score_groups', 'ndcg_of_order']

MAX_GRADES = 10  # true scores with at most this many distinct values are grades; more are binned by quantile


def score_groups(true, max_grades: int = MAX_GRADES, n_bins: int = 4) -> tuple:
    """Groups true scores: each distinct value when there are at most `max_grades`, else `n_bins` quantile bins.

    Returns (group number per score, group names), groups in increasing score order.

    >>> score_groups([0, 4, 4, 1])
    (array([0, 2, 2, 1]), ['0', '1', '4'])
    """
    true = np.asarray(true, dtype=np.float64)
    values = np.unique(true)
    if len(values) <= max_grades:
        return np.searchsorted(values, true), [f'{v:g}' for v in values]
    edges = np.unique(np.quantile(true, np.linspace(0, 1, n_bins + 1)))
    groups = np.clip(np.searchsorted(edges, true, side='right') - 1, 0, len(edges) - 2)
    names = [f'[{lo:.3g}, {hi:.3g}{"]" if i == len(edges) - 2 else ")"}' for i, (lo, hi) in enumerate(zip(edges, edges[1:]))]
    return groups, names


def ndcg_of_order(predicted, gains) -> float:
    """nDCG of the items ordered by `predicted` (best first; ties keep the given order), no cutoff.

    DCG = sum over ranks i of gain_i / log2(i + 1) (linear gains, as ranx's `ndcg`), divided by the DCG of the
    items ordered by gain. NaN when every gain is 0.

    >>> ndcg_of_order([0.9, 0.1], [1, 0]), ndcg_of_order([0.1, 0.9], [1, 0]) < 1
    (1.0, True)
    """
    predicted, gains = np.asarray(predicted, dtype=np.float64), np.asarray(gains, dtype=np.float64)
    discounts = 1 / np.log2(np.arange(2, len(gains) + 2))
    ideal = float(np.sort(gains)[::-1] @ discounts)
    if ideal <= 0: return float('nan')
    return float(gains[np.argsort(-predicted, kind='stable')] @ discounts) / ideal


def _new_figure(figsize) -> tuple:
    """A figure with one axes, closed in pyplot at once: the caller gets it, and a notebook shows it once (as the
    returned value) instead of twice (pyplot's open figures are shown at the end of a cell too)."""
    fig, ax = plt.subplots(figsize=figsize, layout='constrained')
    plt.close(fig)
    return fig, ax


def _short(text: str, n: int) -> str:
    text = ' '.join(str(text).split())
    return text if len(text) <= n else text[:n - 1] + '…'


def _labelled_dl(learn: RelevanceLearner, df: pd.DataFrame):
    "A test loader with targets over `df`, which needs the learner's query, doc and score columns."
    score_col = learn.dls.score_col
    missing = [c for c in (learn.dls.query_col, learn.dls.doc_col, score_col) if c not in df.columns]
    if missing:
        raise KeyError(f"The DataFrame lacks the column(s) {missing} this learner was trained with; it has "
                       f"{list(df.columns)}. Rename them (df.rename(columns={{...}})).")
    return learn.dls.test_dl(df, with_labels=True)


class RelevanceInterpretation(Interpretation):
    """fastai's `Interpretation` for a `RelevanceLearner`: predictions, true scores and losses over one
    `DataLoader`, computed once.

    `losses`, `top_losses`, `show_results(idxs)` and `interp[idxs]` are fastai's. `pairs` is a DataFrame in the
    loader's item order: `query`, `doc`, `true` and `predicted` (in the user's score units, via
    `dls.score_scaler`) and `loss` (the learner's loss for that pair, on the [0, 1] training scale);
    `top_losses_table` sorts it by loss.
    """
    def __init__(self, learn: RelevanceLearner, dl, preds, targs, losses, act=None):
        super().__init__(learn, dl, losses.reshape(-1), act)
        scaler = learn.dls.score_scaler
        self.score_range = (scaler.lo, scaler.hi)
        items = dl.items
        self.pairs = pd.DataFrame({
            'query': items[learn.dls.query_col].to_numpy(), 'doc': items[learn.dls.doc_col].to_numpy(),
            'true': scaler.decode(targs.reshape(-1).double()).numpy(),
            'predicted': scaler.decode(preds.reshape(-1).double()).numpy(),
            'loss': losses.reshape(-1).double().numpy()})

    @classmethod
    def from_learner(cls, learn: RelevanceLearner, ds_idx: int = 1, dl=None, act=None):
        """Predicts `dl` (default: `learn.dls[ds_idx]`, the validation set) once, with each pair's loss.

        `dl` may also be a DataFrame with the learner's query, doc and score columns (scored with `test_dl`).

        >>> interp = RelevanceInterpretation.from_learner(learn)  # doctest: +SKIP
        """
        if isinstance(dl, pd.DataFrame): dl = _labelled_dl(learn, dl)
        if dl is None: dl = learn.dls[ds_idx].new(shuffle=False, drop_last=False)
        if not isinstance(getattr(dl, 'items', None), pd.DataFrame):
            raise TypeError("RelevanceInterpretation needs a DataLoader over a DataFrame of pairs (learn.dls.valid, "
                            "or learn.dls.test_dl(df, with_labels=True)), or such a DataFrame.")
        with _PREDICT_LOCK:
            preds, targs, losses = learn.get_preds(dl=dl, with_loss=True, act=act)
        return cls(learn, dl, preds, targs, losses, act)

    def __len__(self): return len(self.pairs)

    @property
    def rmse(self) -> float: return pair_rmse(self.pairs['predicted'], self.pairs['true'])

    @property
    def spearman(self) -> float: return pair_spearman(self.pairs['predicted'], self.pairs['true'])

    def top_losses_table(self, k: int | None = None, largest: bool = True) -> pd.DataFrame:
        """The `k` pairs with the largest (`largest=False`: smallest) loss, sorted by loss; all pairs when k is None.

        Columns query, doc, true, predicted, loss; the index is the pair's position in the loader. (fastai's
        `top_losses` gives the same pairs' losses and indexes as tensors; ties may come in another order.)

        >>> interp.top_losses_table(5)  # doctest: +SKIP
        """
        ordered = self.pairs.sort_values('loss', ascending=not largest, kind='stable')
        return ordered if k is None else ordered.head(k)

    def per_query(self, by: str | None = None) -> pd.DataFrame:
        """Metrics for each query's pairs, one row per query (indexed by the query text, or the column `by`).

        Columns: `n` pairs; `rmse` of predicted vs true scores (user units); `spearman` between them (NaN with
        fewer than 2 pairs or constant scores); `ndcg`: the query's pairs ordered by predicted score against
        the ideal order, gain = true score - the score range's low end (see `ndcg_of_order`; NaN when no pair
        scores above it). This re-ranks the query's pairs in this loader only; `evaluate_run` ranks a whole
        collection.

        >>> interp.per_query(by='query_id').sort_values('ndcg').head()  # doctest: +SKIP
        """
        keys = self.pairs['query'] if by is None else self._item_column(by)
        lo = self.score_range[0]
        rows = {key: {'n': len(group), 'rmse': pair_rmse(group['predicted'], group['true']),
                      'spearman': pair_spearman(group['predicted'], group['true']),
                      'ndcg': ndcg_of_order(group['predicted'], group['true'] - lo)}
                for key, group in self.pairs.groupby(keys.to_numpy(), sort=True)}
        frame = pd.DataFrame.from_dict(rows, orient='index')
        frame.index.name = by or 'query'
        return frame

    def _item_column(self, col: str) -> pd.Series:
        if col not in self.dl.items.columns:
            raise KeyError(f"No column {col!r} in the loader's items; choose one of "
                           f"{[c for c in self.dl.items.columns if not c.endswith('__tokens')]}.")
        return self.dl.items[col].reset_index(drop=True)

    def plot_score_hist(self, bins: int = 20, figsize=(7, 4)) -> Figure:
        """Histograms of the predicted scores, one per true grade (or per quantile bin of continuous scores).

        Each group's bars sum to 1, so a small group of relevant pairs is as visible as a large group of
        irrelevant ones; the bins span the predictions' range, and a dashed line marks each group's mean.
        Well-separated histograms mean the model tells the grades apart.
        """
        groups, names = score_groups(self.pairs['true'])
        graded = len(names) == len(np.unique(self.pairs['true']))
        fig, ax = _new_figure(figsize)
        predicted_all = self.pairs['predicted'].to_numpy()
        low, high = predicted_all.min(), predicted_all.max()
        edges = np.linspace(low, high, bins + 1) if high > low else np.linspace(*self.score_range, bins + 1)
        for number, name in enumerate(names):
            predicted = predicted_all[groups == number]
            color = f'C{number % 10}'
            ax.hist(predicted, bins=edges, weights=np.full(len(predicted), 1 / max(len(predicted), 1)),
                    histtype='step', linewidth=1.8, color=color, label=f'true {name} ({len(predicted)} pairs)')
            if len(predicted): ax.axvline(predicted.mean(), color=color, linestyle='--', linewidth=1)
        ax.set_xlabel('predicted score')
        ax.set_ylabel("share of the group's pairs")
        ax.set_title('Predicted scores by true ' + ('grade' if graded else 'score (quantile bins)'))
        ax.legend(fontsize='small')
        return fig

    def plot_pred_vs_true(self, figsize=(5, 5), jitter: float | None = None, seed: int = 0) -> Figure:
        """Predicted against true scores, the diagonal, each true group's mean prediction; rmse and Spearman
        in the title. `jitter` spreads points sideways (default: 0.15 of the grade spacing for graded
        scores, none for continuous ones) so that points on one grade do not hide each other."""
        true, predicted = self.pairs['true'].to_numpy(), self.pairs['predicted'].to_numpy()
        groups, names = score_groups(true)
        values = np.unique(true)
        graded = len(names) == len(values)
        if jitter is None: jitter = 0.15 * np.diff(values).min() if graded and len(values) > 1 else 0.
        x = true + np.random.default_rng(seed).uniform(-jitter, jitter, len(true))
        fig, ax = _new_figure(figsize)
        ax.scatter(x, predicted, s=8, alpha=0.35, label='pairs')
        ax.plot(self.score_range, self.score_range, color='grey', linestyle='--', linewidth=1, label='predicted = true')
        means = [(true[groups == g].mean(), predicted[groups == g].mean()) for g in range(len(names))]
        ax.plot(*zip(*means), color='C3', marker='o', label='mean prediction per ' + ('grade' if graded else 'bin'))
        ax.set_xlabel('true score')
        ax.set_ylabel('predicted score')
        ax.set_title(f'rmse {self.rmse:.3f}, Spearman {self.spearman:.3f} ({len(self)} pairs)')
        ax.legend(fontsize='small')
        return fig

    def plot_top_losses(self, k: int = 9, largest: bool = True, max_chars: int = 70, figsize=None) -> Figure:
        """The `k` worst pairs (see `top_losses_table`): one row each, labelled with the query and the start of the
        document, a line from the true score to the predicted one."""
        top = self.top_losses_table(k, largest=largest)
        fig, ax = _new_figure(figsize or (9, 0.9 + 0.55 * len(top)))
        rows = np.arange(len(top))[::-1]  # the worst pair on top
        ax.hlines(rows, top['true'], top['predicted'], color='grey', linewidth=1)
        ax.scatter(top['true'], rows, color='C2', label='true', zorder=3)
        ax.scatter(top['predicted'], rows, color='C3', marker='x', label='predicted', zorder=3)
        ax.set_yticks(rows, [f'Q: {_short(q, max_chars)}\nD: {_short(d, max_chars)}' for q, d in zip(top['query'], top['doc'])],
                      fontsize='small')
        lo, hi = self.score_range
        ax.set_xlim(lo - 0.03 * (hi - lo), hi + 0.03 * (hi - lo))
        ax.set_xlabel('score')
        for row, loss in zip(rows, top['loss']):
            ax.text(1.02, row, f'loss {loss:.3f}', transform=ax.get_yaxis_transform(), va='center', fontsize='small')
        ax.set_title(f"{'Largest' if largest else 'Smallest'} {len(top)} losses: true vs predicted score")
        ax.legend(fontsize='small', loc='lower right')
        return fig
