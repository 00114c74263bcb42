"""`relcollab demo`: the small model on Cranfield, end to end, in about 5 minutes on 2 idle CPU cores."""
import time

import numpy as np
import pandas as pd

from ..datasets.cranfield import cranfield_split, cranfield_triples, load_cranfield
from ..core.metrics import pair_rmse, pair_spearman
from ..training.recipe import stage, train_relevance_model

__all__ = ['DEMO', 'demo_pairs', 'validation_report', 'run_demo']

# The demo's recipe, sized to finish within 5 minutes on 2 idle CPU cores (see README, "What the demo does"):
# two pseudo-queries per document (four cost 35% more time for an rmse of 1.08 instead of 1.18, the same Spearman).
DEMO = dict(lm_epochs=3, epochs=3, pseudo_per_doc=2, bs=32)


def validation_report(learn, df, score_col='score', train_mean=None) -> dict:
    """rmse (original units), Spearman, the rmse of always predicting `train_mean`, the predictions, and the mean
    prediction of each judged score (`by_score`: a Series, when the scores take at most 10 values), on `df`.

    >>> validation_report(learn, valid_df, train_mean=1.2)['rmse']  # doctest: +SKIP
    1.35
    """
    truth = df[score_col].to_numpy(dtype=np.float64)
    predicted = learn.score_pairs(df).astype(np.float64)
    if train_mean is None: train_mean = truth.mean()
    by_score = pd.Series(predicted).groupby(truth).mean() if len(np.unique(truth)) <= 10 else None
    return {'rmse': pair_rmse(predicted, truth), 'spearman': pair_spearman(predicted, truth),
            'mean_rmse': pair_rmse(train_mean, truth), 'n': len(df), 'predicted': predicted, 'by_score': by_score}


def demo_pairs(data, fold: int = 0, seed: int = 0) -> tuple:
    """`(triples, test)`: the demo's (query, document, score) pairs of the fold's training queries, with `is_valid`
    True for every fifth of them (validation: it picks the judgment start's step, the lexical weight and the score
    map, as bench/cranfield.py's split), and the pairs of the fold's test queries, which nothing in training sees.

    >>> triples, test = demo_pairs(load_cranfield('../shared/data/cranfield'))  # doctest: +SKIP
    >>> triples.loc[triples['is_valid'], 'query_id'].nunique(), test['query_id'].nunique()  # doctest: +SKIP
    (36, 45)
    """
    train_ids, test_ids = cranfield_split(data.queries, fold=fold)
    valid_ids = train_ids[::5]
    triples = cranfield_triples(data, negatives=1, seed=seed)
    test = triples[triples['query_id'].isin(test_ids)]
    triples = triples[~triples['query_id'].isin(test_ids)].assign(is_valid=lambda d: d['query_id'].isin(valid_ids))
    return triples, test


def _print_examples(df, predicted, n_queries=3, seed=0):
    rng = np.random.default_rng(seed)
    shown = df.assign(predicted=predicted)
    for query_id in rng.choice(shown['query_id'].unique(), size=min(n_queries, shown['query_id'].nunique()), replace=False):
        rows = shown[shown['query_id'] == query_id].sort_values('predicted', ascending=False)
        print(f"\nquery {query_id}: {rows['query'].iloc[0]}")
        for _, row in rows.head(4).iterrows():
            print(f"  true {row['score']:.0f}  predicted {row['predicted']:.2f}  doc {row['doc_id']}: {row['doc'][:70]}")


def run_demo(data_dir=None, lm_epochs=DEMO['lm_epochs'], epochs=DEMO['epochs'], out=None, fold=0,
             pseudo_per_doc=DEMO['pseudo_per_doc'], bs=DEMO['bs'], teacher=None):
    """Trains the `small` model on Cranfield (test-fold queries held out of everything) and prints what it learned,
    with the time of each stage. With a `teacher` (see `train_relevance_model`) the towers also learn from it.

    >>> run_demo('../shared/data/cranfield')  # doctest: +SKIP
    """
    start = time.time()
    data = load_cranfield(data_dir)
    print(f"relcollab demo: {data}")
    triples, test = demo_pairs(data, fold=fold)
    corpus = data.docs['text'].tolist()
    train, valid = triples[~triples['is_valid']], triples[triples['is_valid']]
    print(f"training on {len(train)} pairs of {train['query_id'].nunique()} queries (judged: gain 1..4, random "
          f"unjudged: 0); validating on {len(valid)} pairs of {valid['query_id'].nunique()} other queries; testing on "
          f"{len(test)} pairs of {test['query_id'].nunique()} queries held out of everything")
    learn = train_relevance_model(triples, corpus=corpus, size='small', lm_epochs=lm_epochs, epochs=epochs,
                                  valid_col='is_valid', score_range=(0, 4), pseudo_per_doc=pseudo_per_doc, bs=bs,
                                  teacher=teacher)
    with stage('test report'), learn.no_bar():
        report = validation_report(learn, test, train_mean=train['score'].mean())
    print(f"\ntest on unseen queries: rmse {report['rmse']:.3f} (predicting the training mean: "
          f"{report['mean_rmse']:.3f}), Spearman {report['spearman']:.3f}, {report['n']} pairs")
    if report['by_score'] is not None:
        print('mean prediction by judged score: ' + ', '.join(f'{score:g} -> {mean:.2f}' for score, mean in report['by_score'].items()))
    _print_examples(test, report['predicted'])
    if out is not None:
        learn.export(out.absolute())
        print(f"\nexported the learner to {out}")
    print(f"\nrelcollab demo finished in {time.time() - start:.0f}s")
    return learn, report
