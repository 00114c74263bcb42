"""End to end on a real Cranfield slice with the `small` config: the recipe a user runs, held-out queries.

The absolute thresholds (Spearman > 0.3, nDCG@10 > 0.2) hold before any relevance training: the lexical
channel starts as BM25. So the trained model is also compared, on the same 25 unseen queries, with the same
model untrained (same vocabulary, dataloaders and language-model encoder, nothing fitted) and with BM25.
Measured when written (2 CPU cores; this fixture's small budget: LM 2 epochs, relevance 3, 90 queries):

| | Spearman, 426 validation pairs | nDCG@10, all 1400 documents ranked |
|---|---|---|
| trained | 0.624 | 0.405 |
| untrained (LM encoder loaded) | 0.553 | 0.418 |
| BM25 (`BM25Baseline`) | 0.662 | 0.450 |

At this budget training orders the judged pairs better but does not rank the collection better than the
untrained model (nor than BM25), so the margins below only ask that ranking does not get much worse.

The fixture trains without word vectors (`word_vectors=None`), the recipe these margins were measured on. With the
recipe's default since session 2026-12-03 (corpus word vectors, idf over the collection) the untrained twin starts
higher and training at this small budget loses more of it: nDCG@10 0.439 untrained, 0.384 trained, BM25 0.450
(Spearman 0.590 -> 0.683). The default is measured at a real budget in bench/cranfield.py (README).
"""
import json
import subprocess
import sys

import numpy as np
import pytest
from fastai.torch_core import set_seed
from scipy.stats import spearmanr

from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.datasets.cranfield import cranfield_split, cranfield_triples, load_cranfield
from relcollab.app.demo import validation_report
from relcollab.retrieval.evaluate import evaluate_run
from relcollab.training.learner import relevance_learner
from relcollab.training.recipe import train_relevance_model
from relcollab.retrieval.trec import run_frame

from test_cranfield import CRANFIELD_DIR

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (CRANFIELD_DIR/'cran.all.1400').exists(),
                                 reason=f"Cranfield not found at {CRANFIELD_DIR} (set RELCOLLAB_CRANFIELD)")]

# Margins from the table above (measured gaps in the comments).
SPEARMAN_GAIN = 0.035        # over the untrained model: half the measured +0.071
NDCG_DROP_SLACK = 0.04       # below the untrained model: measured -0.013
BM25_SPEARMAN_SLACK = 0.07   # below BM25: measured -0.038
BM25_NDCG_SLACK = 0.08       # below BM25: measured -0.045


@pytest.fixture(scope='module')
def cranfield_run(tmp_path_factory):
    "Trains the small model on 90 training queries; 25 unseen fold-0 test queries are the validation set."
    data = load_cranfield(CRANFIELD_DIR)
    train_ids, test_ids = cranfield_split(data.queries, fold=0)
    train_ids, valid_ids = train_ids[:90], test_ids[:25]
    triples = cranfield_triples(data, query_ids=train_ids + valid_ids, negatives=1, seed=0)
    triples['is_valid'] = triples['query_id'].isin(valid_ids)
    path = tmp_path_factory.mktemp('cranfield')
    learn = train_relevance_model(triples, corpus=[], size='small', lm_epochs=2, epochs=3, valid_col='is_valid',
                                  score_range=(0, 4), path=path, pseudo_per_doc=1, word_vectors=None)
    valid = triples[triples['is_valid']]
    train_mean = triples.loc[~triples['is_valid'], 'score'].mean()
    with learn.no_bar():
        report = validation_report(learn, valid, train_mean=train_mean)
    return learn, valid, report, path


def untrained_twin(learn, seed=0):
    """What `train_relevance_model` fine-tunes: a fresh learner of `learn`'s architecture on its dataloaders,
    the language-model encoder loaded, nothing fitted."""
    architecture = {k: v for k, v in learn.model.hparams.items() if k != 'vocab_sz'}
    set_seed(seed, reproducible=True)
    twin = relevance_learner(learn.dls, in_batch=learn.model.in_batch, **architecture)
    return twin.load_encoder('lm_enc')  # language_model_stage's default name


def ranking_ndcg(results, query_ids, qrels) -> float:
    "nDCG@10 of `SearchResults` over all 1400 documents for `query_ids`."
    return evaluate_run(run_frame(query_ids, results), qrels, metrics=['ndcg@10'])['ndcg@10']


@pytest.fixture(scope='module')
def unseen_query_scores(cranfield_run):
    """nDCG@10 (all documents ranked) and Spearman on the validation pairs, for the 25 unseen queries:
    the trained model, the same model untrained, and BM25."""
    learn, valid, report, _ = cranfield_run
    data = load_cranfield(CRANFIELD_DIR)
    queries = data.queries[data.queries['query_id'].isin(valid['query_id'].unique())]
    query_ids, texts = queries['query_id'].tolist(), queries['text'].tolist()
    qrels = data.qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'})[['qid', 'docid', 'gain']]
    qrels = qrels.astype({'qid': str, 'docid': str})
    truth = valid['score'].to_numpy(dtype=np.float64)
    scores = {}
    for name, model in [('trained', learn), ('untrained', untrained_twin(learn))]:
        with model.no_bar():
            results = model.search(texts, model.index(data.docs, id_col='doc_id', text_col='text'), k=100)
            predicted = report['predicted'] if model is learn else model.score_pairs(valid)
        scores[name] = {'ndcg@10': ranking_ndcg(results, query_ids, qrels),
                        'spearman': float(spearmanr(predicted, truth).statistic)}
    bm25 = BM25Baseline().index(data.docs['doc_id'].tolist(), data.docs['text'].tolist())
    rows, cols = {q: i for i, q in enumerate(query_ids)}, {d: j for j, d in enumerate(data.docs['doc_id'])}
    pair_scores = bm25.scores(texts)[valid['query_id'].map(rows), valid['doc_id'].map(cols)]
    scores['bm25'] = {'ndcg@10': ranking_ndcg(bm25.search(texts, k=100), query_ids, qrels),
                      'spearman': float(spearmanr(pair_scores, truth).statistic)}
    print(scores)
    return scores


def test_trained_model_orders_pairs_of_unseen_queries(cranfield_run):
    # The default recipe (in-batch matrix with unjudged = 0, pseudo-queries at the top score) trades calibration
    # for ranking: its rmse is close to the training mean's (1.43 vs 1.39 when written), its Spearman far above
    # the first pointwise recipe's 0.14.
    _, _, report, _ = cranfield_run
    print({k: v for k, v in report.items() if k != 'predicted'})
    assert report['spearman'] > 0.3
    assert report['rmse'] < 1.25 * report['mean_rmse']


def test_trained_model_ranks_the_whole_collection_for_unseen_queries(unseen_query_scores):
    "All 1400 documents ranked for the 25 unseen queries: far above random ranking (nDCG@10 ~0.01)."
    assert unseen_query_scores['trained']['ndcg@10'] > 0.2


def test_training_improves_on_the_untrained_model_for_unseen_queries(unseen_query_scores):
    """Fails when relevance training does nothing; Spearman > 0.3 and nDCG@10 > 0.2 do not (with the optimizer
    step made a no-op they read 0.538 and 0.377; only the rmse check caught it, through BatchNorm's statistics)."""
    trained, untrained = unseen_query_scores['trained'], unseen_query_scores['untrained']
    assert trained['spearman'] > untrained['spearman'] + SPEARMAN_GAIN
    assert trained['ndcg@10'] > untrained['ndcg@10'] - NDCG_DROP_SLACK


def test_trained_model_stays_near_bm25_for_unseen_queries(unseen_query_scores):
    "BM25 is ahead at this budget (see the table above); the trained model must not fall further behind."
    trained, bm25 = unseen_query_scores['trained'], unseen_query_scores['bm25']
    assert trained['spearman'] > bm25['spearman'] - BM25_SPEARMAN_SLACK
    assert trained['ndcg@10'] > bm25['ndcg@10'] - BM25_NDCG_SLACK


def test_exported_cranfield_learner_reloads_in_a_fresh_process_with_identical_scores(cranfield_run):
    learn, valid, report, path = cranfield_run
    learn.export(path/'cranfield.pkl')
    sample = valid.iloc[:20]
    sample[['query', 'doc']].to_json(path/'pairs.json', orient='records')
    code = ("import json, pandas as pd\nfrom fastai.learner import load_learner\n"
            "learn = load_learner('cranfield.pkl', cpu=True)\n"
            "pairs = pd.DataFrame(json.load(open('pairs.json')))\n"
            "with learn.no_bar(): print(json.dumps(learn.score_pairs(pairs).tolist()))\n")
    result = subprocess.run([sys.executable, '-c', code], cwd=path, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-3000:]
    reloaded = np.array(json.loads(result.stdout.strip().splitlines()[-1]))
    np.testing.assert_allclose(reloaded, report['predicted'][:20], rtol=0, atol=1e-5)
