"""RelevanceInterpretation on the session's tiny trained model: tables, figures (axes, labels, titles), show_results."""
import matplotlib

matplotlib.use('Agg')  # tests only: no display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from scipy.stats import spearmanr

from relcollab.training.interpret import RelevanceInterpretation, ndcg_of_order, score_groups

from conftest import torch_threads

COLUMNS = ['query', 'doc', 'true', 'predicted', 'loss']


@pytest.fixture(scope='module')
def interp(trained):
    with torch_threads(1), trained.no_bar():
        return RelevanceInterpretation.from_learner(trained)


@pytest.fixture(scope='module')
def grouped(trained, pairs_df):
    "Interpretation over a labelled DataFrame with 5 queries of 6 documents each and a query_id column."
    docs = pairs_df['doc'].iloc[:6].tolist()
    queries = ['wing lift', 'heat slab', 'shock wave', 'jet nozzle', 'beam stress']
    df = pd.DataFrame([(i, q, d, float(sum(w in d.split() for w in q.split()))) for i, q in enumerate(queries)
                       for d in docs], columns=['query_id', 'query', 'doc', 'score'])
    with torch_threads(1), trained.no_bar():
        return RelevanceInterpretation.from_learner(trained, dl=df), df


# ----------------------------------------------------------------- predictions, computed once
def test_from_learner_predicts_the_validation_set_in_the_users_units(trained, interp):
    valid = trained.dls.valid.items
    assert list(interp.pairs.columns) == COLUMNS
    assert len(interp) == len(valid) == len(trained.dls.valid_ds)
    assert interp.pairs['query'].tolist() == valid['query'].tolist()
    np.testing.assert_allclose(interp.pairs['true'], valid['score'], atol=1e-5)
    with torch_threads(1), trained.no_bar():
        np.testing.assert_allclose(interp.pairs['predicted'], trained.score_pairs(valid), atol=1e-5)
    scaled = (interp.pairs[['predicted', 'true']] - interp.score_range[0]) / np.subtract(*interp.score_range[::-1])
    np.testing.assert_allclose(interp.pairs['loss'], (scaled['predicted'] - scaled['true']) ** 2, atol=1e-5)


def test_top_losses_table_is_a_sorted_table_of_the_worst_pairs(interp):
    top = interp.top_losses_table(5)
    assert list(top.columns) == COLUMNS and len(top) == 5
    assert top['loss'].is_monotonic_decreasing
    assert top['loss'].iloc[0] == interp.pairs['loss'].max()
    assert top.index.tolist() == interp.pairs['loss'].sort_values(ascending=False, kind='stable').index[:5].tolist()
    smallest = interp.top_losses_table(3, largest=False)
    assert smallest['loss'].is_monotonic_increasing and smallest['loss'].iloc[0] == interp.pairs['loss'].min()
    assert len(interp.top_losses_table()) == len(interp)


def test_it_is_a_fastai_interpretation_whose_top_losses_are_fastais(trained, interp):
    from fastai.interpret import Interpretation
    assert isinstance(interp, Interpretation) and interp.learn is trained and len(interp.losses) == len(interp)
    losses, idx = interp.top_losses(5)
    np.testing.assert_allclose(losses.numpy(), interp.top_losses_table(5)['loss'], rtol=1e-6)
    np.testing.assert_allclose(interp.pairs['loss'].to_numpy()[idx.numpy()], losses.numpy(), rtol=1e-6)
    losses, idx, items = interp.top_losses(2, largest=False, items=True)
    assert items['query'].tolist() == interp.pairs['query'].iloc[idx.numpy()].tolist()
    with torch_threads(1), trained.no_bar():
        inps, preds, targs, decoded, pair_losses = interp[idx]
        interp.show_results(idx.tolist())  # fastai's: dispatches to relcollab's show_results for RelevancePair
    assert len(inps) == 2 and len(preds) == len(targs) == 2
    np.testing.assert_allclose(trained.dls.score_scaler.decode(preds[:, 0]).numpy(),
                               interp.pairs['predicted'].to_numpy()[idx.numpy()], atol=1e-4)


def test_per_query_counts_every_pair_once(interp):
    table = interp.per_query()
    assert list(table.columns) == ['n', 'rmse', 'spearman', 'ndcg'] and table.index.name == 'query'
    assert table['n'].sum() == len(interp)
    assert set(table.index) == set(interp.pairs['query'])
    assert table.loc[table['n'] == 1, 'spearman'].isna().all()  # one pair has no rank correlation


def test_per_query_by_an_id_column_computes_what_its_docstring_says(grouped):
    interp, df = grouped
    table = interp.per_query(by='query_id')
    assert table.index.name == 'query_id' and table.index.tolist() == [0, 1, 2, 3, 4]
    assert (table['n'] == 6).all() and table['n'].sum() == len(df)
    lo = interp.score_range[0]
    for query_id, group in interp.pairs.groupby(df['query_id'].to_numpy()):
        row = table.loc[query_id]
        assert row['rmse'] == pytest.approx(np.sqrt(np.mean((group['predicted'] - group['true']) ** 2)))
        if group['true'].nunique() > 1:
            assert row['spearman'] == pytest.approx(spearmanr(group['predicted'], group['true']).statistic)
        assert row['ndcg'] == pytest.approx(ndcg_of_order(group['predicted'], group['true'] - lo), nan_ok=True)
    assert table['ndcg'].dropna().between(0, 1).all()
    with pytest.raises(KeyError, match='query_id'):
        interp.per_query(by='topic')


def test_ndcg_of_order_uses_linear_gains_and_log2_discounts():
    assert ndcg_of_order([3, 2, 1], [2, 1, 0]) == 1.0
    dcg = 0 / np.log2(2) + 1 / np.log2(3) + 2 / np.log2(4)
    ideal = 2 / np.log2(2) + 1 / np.log2(3)
    assert ndcg_of_order([3, 2, 1], [0, 1, 2]) == pytest.approx(dcg / ideal)
    assert ndcg_of_order([1, 1], [0, 1]) == pytest.approx((1 / np.log2(3)) / 1)  # ties keep the given order
    assert np.isnan(ndcg_of_order([1, 2], [0, 0]))


def test_score_groups_are_grades_or_quantile_bins():
    groups, names = score_groups([0, 4, 4, 1])
    assert groups.tolist() == [0, 2, 2, 1] and names == ['0', '1', '4']
    continuous = np.linspace(0, 1, 101)
    groups, names = score_groups(continuous, n_bins=4)
    assert len(names) == 4 and names[0].startswith('[0,') and names[-1].endswith('1]')
    assert np.bincount(groups).tolist() == [25, 25, 25, 26]


# ----------------------------------------------------------------- figures
def _legend_texts(ax): return [t.get_text() for t in ax.get_legend().get_texts()]


def test_plot_score_hist_draws_one_histogram_per_true_grade(interp):
    before = plt.get_fignums()
    fig = interp.plot_score_hist(bins=10)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    assert plt.get_fignums() == before  # closed in pyplot: shown once in a notebook, no leak
    ax = fig.axes[0]
    assert ax.get_xlabel() == 'predicted score' and ax.get_ylabel() == "share of the group's pairs"
    assert ax.get_title() == 'Predicted scores by true grade'
    grades = sorted(interp.pairs['true'].round().unique())
    labels = _legend_texts(ax)
    assert [label.split(' (')[0] for label in labels] == [f'true {g:g}' for g in grades]
    assert sum(int(label.split('(')[1].split()[0]) for label in labels) == len(interp)
    assert len(ax.patches) == len(grades)
    fig.savefig(__import__('io').BytesIO(), format='png')  # renders


def test_plot_score_hist_bins_continuous_scores_by_quantile(trained, pairs_df):
    df = pairs_df.iloc[:40].copy()
    df['score'] = df['score'] + np.random.default_rng(0).uniform(0, 0.9, len(df))
    with torch_threads(1), trained.no_bar():
        interp = RelevanceInterpretation.from_learner(trained, dl=df)
    ax = interp.plot_score_hist().axes[0]
    assert ax.get_title() == 'Predicted scores by true score (quantile bins)'
    assert len(_legend_texts(ax)) == 4 and _legend_texts(ax)[0].startswith('true [')


def test_plot_pred_vs_true_titles_rmse_and_spearman(interp):
    fig = interp.plot_pred_vs_true()
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    assert ax.get_xlabel() == 'true score' and ax.get_ylabel() == 'predicted score'
    pred, true = interp.pairs['predicted'], interp.pairs['true']
    rmse = np.sqrt(np.mean((pred - true) ** 2))
    rho = spearmanr(pred, true).statistic
    assert ax.get_title() == f'rmse {rmse:.3f}, Spearman {rho:.3f} ({len(interp)} pairs)'
    assert _legend_texts(ax) == ['pairs', 'predicted = true', 'mean prediction per grade']
    assert len(ax.collections[0].get_offsets()) == len(interp)
    np.testing.assert_allclose(ax.collections[0].get_offsets()[:, 1], pred)


def test_plot_top_losses_labels_rows_with_the_query_and_document(interp):
    fig = interp.plot_top_losses(4, max_chars=30)
    assert isinstance(fig, Figure) and len(fig.axes) == 1
    ax = fig.axes[0]
    top = interp.top_losses_table(4)
    by_height = sorted(zip(ax.get_yticks(), (t.get_text() for t in ax.get_yticklabels())), reverse=True)
    labels = [label for _, label in by_height]  # the worst pair is drawn on top
    assert len(labels) == 4
    for label, (_, row) in zip(labels, top.iterrows()):
        query_line, doc_line = label.split('\n')
        assert query_line.startswith('Q: ') and doc_line.startswith('D: ')
        assert query_line[3:].rstrip('…') in row['query'] and len(doc_line) <= 3 + 30
    assert ax.get_xlabel() == 'score' and ax.get_title() == 'Largest 4 losses: true vs predicted score'
    assert _legend_texts(ax) == ['true', 'predicted']
    assert [t.get_text() for t in ax.texts] == [f"loss {v:.3f}" for v in top['loss']]


def test_from_learner_refuses_a_loader_without_a_dataframe_or_a_frame_without_scores(trained, pairs_df):
    with pytest.raises(TypeError, match='test_dl'):
        RelevanceInterpretation.from_learner(trained, dl=[trained.dls.valid.one_batch()])
    with pytest.raises(KeyError, match=r"\['score'\].*Rename"):
        RelevanceInterpretation.from_learner(trained, dl=pairs_df[['query', 'doc']].head(5))


# ----------------------------------------------------------------- show_results
def test_learner_show_results_returns_query_document_score_predicted(trained):
    with torch_threads(1), trained.no_bar():
        table = trained.show_results(max_n=4, show=False)
    assert list(table.columns) == ['query', 'document', 'score', 'predicted'] and len(table) == 4
    lo, hi = trained.dls.score_scaler.lo, trained.dls.score_scaler.hi
    assert table['predicted'].between(lo, hi).all() and table['score'].between(lo, hi).all()


def test_interpretation_is_in_relcollab_all():
    namespace = {}
    exec('from relcollab.all import *', namespace)
    assert namespace['RelevanceInterpretation'] is RelevanceInterpretation
