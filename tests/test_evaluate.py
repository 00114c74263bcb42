"""Ranking metrics (ranx) checked by hand, TREC files, fusion (cross-checked against ranx.fuse), pair metrics."""
import math

import numpy as np
import pandas as pd
import pytest

from relcollab.retrieval.evaluate import evaluate_run, pair_metrics, to_ranx_run
from relcollab.retrieval.fusion import min_max_per_query, normalized_fusion, reciprocal_rank_fusion
from relcollab.retrieval.index import SearchResults
from relcollab.retrieval.trec import ranked, read_qrels, read_run, run_frame, write_qrels, write_run
from relcollab.core.validation import RelevanceDataError

QRELS = pd.DataFrame({'qid': ['q1', 'q1', 'q1', 'q1', 'q2'], 'docid': ['d1', 'd2', 'd3', 'd9', 'd5'],
                      'gain': [3, 1, 2, 0, 1]})
RUN = pd.DataFrame({'qid': ['q1'] * 4 + ['q2'] * 2, 'docid': ['d2', 'd9', 'd1', 'd3', 'd4', 'd5'],
                    'score': [0.9, 0.8, 0.7, 0.1, 2.0, 1.0]})


def test_metrics_match_a_hand_computation():
    # q1 ranks d2 (gain 1), d9 (gain 0: judged, not relevant), d1 (gain 3), d3 (gain 2); q2 ranks d4 (unjudged), d5 (gain 1).
    # nDCG@3 = DCG@3 / ideal DCG@3 with DCG = sum_i gain_i / log2(i + 1) (linear gains, ranx's `ndcg`).
    dcg_q1 = 1 / math.log2(2) + 0 / math.log2(3) + 3 / math.log2(4)
    ideal_q1 = 3 / math.log2(2) + 2 / math.log2(3) + 1 / math.log2(4)
    ndcg_q2 = (1 / math.log2(3)) / (1 / math.log2(2))
    # AP: mean over relevant docs (gain >= 1) of precision at their rank. q1: ranks 1, 3, 4; q2: rank 2.
    ap_q1, ap_q2 = (1 / 1 + 2 / 3 + 3 / 4) / 3, (1 / 2) / 1
    expected = {'ndcg@3': (dcg_q1 / ideal_q1 + ndcg_q2) / 2, 'map': (ap_q1 + ap_q2) / 2,
                'recall@2': (1 / 3 + 1 / 1) / 2, 'mrr@10': (1 / 1 + 1 / 2) / 2}
    got = evaluate_run(RUN, QRELS, metrics=list(expected))
    assert got.keys() == expected.keys()
    for metric, value in expected.items(): assert got[metric] == pytest.approx(value, abs=1e-9), metric
    assert evaluate_run(RUN.iloc[::-1], QRELS.iloc[::-1], metrics=list(expected)) == got  # pairs queries by id


def test_burges_ndcg_and_relevance_levels_are_ranx_names():
    dcg_q1 = (2 ** 1 - 1) / math.log2(2) + (2 ** 3 - 1) / math.log2(4)
    ideal_q1 = (2 ** 3 - 1) + (2 ** 2 - 1) / math.log2(3) + (2 ** 1 - 1) / math.log2(4)
    got = evaluate_run(RUN[RUN.qid == 'q1'], QRELS[QRELS.qid == 'q1'], metrics=['ndcg_burges@3', 'map-l2'])
    assert got['ndcg_burges@3'] == pytest.approx(dcg_q1 / ideal_q1)
    assert got['map-l2'] == pytest.approx((1 / 3 + 2 / 4) / 2)  # relevant = gain >= 2: d1 at rank 3, d3 at rank 4


def test_equal_scores_keep_the_runs_rank_order():
    tied = pd.DataFrame({'qid': ['q2', 'q2'], 'docid': ['d4', 'd5'], 'score': [1.0, 1.0], 'rank': [1, 2]})
    q2 = QRELS[QRELS.qid == 'q2']
    assert evaluate_run(tied, q2, metrics='mrr')['mrr'] == pytest.approx(0.5)
    assert evaluate_run(tied.assign(rank=[2, 1]), q2, metrics='mrr')['mrr'] == pytest.approx(1.0)
    assert list(to_ranx_run(tied).run['q2'].keys()) == ['d4', 'd5']


def test_unmatched_queries_warn_and_missing_ones_are_left_out_like_trec_eval():
    extra = pd.concat([RUN[RUN.qid == 'q1'], pd.DataFrame({'qid': ['q7'], 'docid': ['d1'], 'score': [1.0]})])
    with pytest.warns(UserWarning) as record:
        got = evaluate_run(extra, QRELS, metrics=['mrr'])
    messages = ' '.join(str(w.message) for w in record)
    assert '1 judged queries have no results in the run; they are not evaluated' in messages and 'q2' in messages
    assert 'run queries have no relevant judgments and are not evaluated: q7' in messages
    assert got['mrr'] == pytest.approx(1.0)


def test_all_judged_scores_missing_queries_zero_like_trec_eval_c():
    only_q1 = RUN[RUN.qid == 'q1']
    with pytest.warns(UserWarning, match='they score 0: q2'):
        got = evaluate_run(only_q1, QRELS, metrics=['mrr'], all_judged=True)
    assert got['mrr'] == pytest.approx((1 + 0) / 2)


def test_no_query_in_common_is_an_error_that_shows_both_id_kinds():
    other = RUN.assign(qid=RUN['qid'].str.replace('q', ''))
    with pytest.raises(RelevanceDataError, match=r'run \(1, 2\).*qrels \(q1, q2\)'): evaluate_run(other, QRELS)


def test_judged_documents_outside_the_collection_are_reported():
    with pytest.warns(UserWarning, match='relevant judged documents are not in the collection'):
        evaluate_run(RUN, QRELS, metrics='map', doc_ids=['d1', 'd2', 'd3', 'd4'])


def test_an_unknown_metric_names_the_known_ones():
    with pytest.raises(ValueError, match='ndcg@10'): evaluate_run(RUN, QRELS, metrics=['nDCG-at-ten'])


# ----------------------------------------------------------------- TREC files
def test_run_files_round_trip_sorted_by_score_with_query_order_kept(tmp_path):
    run = pd.DataFrame({'qid': ['9', '9', '10', '10'], 'docid': ['007', 'b', 'c', 'd'],
                        'score': [0.25, 1 / 3, -1.5e-8, 2.0]})
    write_run(run, tmp_path/'run.trec', tag='mine')
    lines = (tmp_path/'run.trec').read_text().splitlines()
    assert lines[0] == '9 Q0 b 1 0.3333333333333333 mine' and lines[1].startswith('9 Q0 007 2 0.25')
    back = read_run(tmp_path/'run.trec')
    assert back.columns.tolist() == ['qid', 'docid', 'score', 'rank']
    pd.testing.assert_frame_equal(back, ranked(run), check_dtype=False)
    assert back['qid'].tolist() == ['9', '9', '10', '10'] and back['docid'].tolist() == ['b', '007', 'd', 'c']


def test_qrels_files_round_trip(tmp_path):
    write_qrels(QRELS, tmp_path/'qrels.trec')
    assert (tmp_path/'qrels.trec').read_text().splitlines()[0] == 'q1 0 d1 3'
    pd.testing.assert_frame_equal(read_qrels(tmp_path/'qrels.trec'), QRELS, check_dtype=False)


def test_run_frame_turns_search_results_into_a_run():
    results = SearchResults(np.array([['a', 'b'], ['c', 'a']], dtype=object), np.float32([[0.9, 0.5], [0.7, 0.1]]))
    run = run_frame(['1', '2'], results)
    assert run[['qid', 'docid', 'rank']].values.tolist() == [['1', 'a', 1], ['1', 'b', 2], ['2', 'c', 1], ['2', 'a', 2]]
    with pytest.raises(ValueError, match='3 query ids'): run_frame(['1', '2', '3'], results)


@pytest.mark.parametrize('text, match', [
    ('1 Q0 a 1 0.5 tag\n1 Q0 b 2 tag\n', r'line 2: expected 6 fields'),
    ('1 Q0 a 1 high tag\n', r"line 1: the score 'high' is not a number"),
    ('1 Q0 a 1 0.5 t\n\n1 Q0 a 2 0.4 t\n', r'document a more than once \(lines 1, 3\)'),
    ('', 'no `qid Q0 docid rank score tag` lines'),
])
def test_bad_run_files_name_the_line(tmp_path, text, match):
    (tmp_path/'bad.trec').write_text(text)
    with pytest.raises(RelevanceDataError, match=match): read_run(tmp_path/'bad.trec')


def test_bad_qrels_name_the_line(tmp_path):
    (tmp_path/'qrels.trec').write_text('1 0 184 3\n1 0 29 2.5\n')
    with pytest.raises(RelevanceDataError, match="line 2: the gain '2.5' is not an integer"): read_qrels(tmp_path/'qrels.trec')
    with pytest.raises(FileNotFoundError, match='no such file'): read_qrels(tmp_path/'nope.trec')


def test_ids_with_spaces_cannot_be_written():
    with pytest.raises(RelevanceDataError, match='whitespace'):
        write_run(pd.DataFrame({'qid': ['1'], 'docid': ['a b'], 'score': [1.0]}), 'never.trec')


# ----------------------------------------------------------------- fusion
A = pd.DataFrame({'qid': ['1', '1', '1', '2'], 'docid': ['x', 'y', 'z', 'x'], 'score': [3.0, 2.0, 1.0, 5.0]})
B = pd.DataFrame({'qid': ['1', '1', '2', '2'], 'docid': ['z', 'w', 'y', 'x'], 'score': [0.9, 0.4, 0.8, 0.1]})


def test_reciprocal_rank_fusion_by_hand():
    fused = reciprocal_rank_fusion([A, B], k=60)
    assert fused.columns.tolist() == ['qid', 'docid', 'score', 'rank']
    q1 = fused[fused.qid == '1'].set_index('docid')['score']
    assert q1['z'] == pytest.approx(1 / 63 + 1 / 61) and q1['x'] == pytest.approx(1 / 61)
    assert q1['y'] == pytest.approx(1 / 62) and q1['w'] == pytest.approx(1 / 62)
    assert fused[fused.qid == '1']['docid'].tolist() == ['z', 'x', 'y', 'w']  # y and w tie: first seen first
    assert fused[fused.qid == '2']['docid'].tolist() == ['x', 'y'] and fused['rank'].tolist() == [1, 2, 3, 4, 1, 2]


def test_normalized_fusion_by_hand():
    assert min_max_per_query(A)['score'].tolist() == [1.0, 0.5, 0.0, 0.0]  # one score in q2: all equal -> 0
    fused = normalized_fusion([A, B], weights=[0.25, 0.75])
    q1 = fused[fused.qid == '1'].set_index('docid')['score']
    assert q1['x'] == pytest.approx(0.25) and q1['z'] == pytest.approx(0.75) and q1['w'] == pytest.approx(0)
    with pytest.raises(ValueError, match='one weight per run'): normalized_fusion([A, B], weights=[1.0])


def test_fusion_agrees_with_ranx_fuse():
    from ranx import Run, fuse
    as_ranx = [Run({q: dict(zip(g.docid, g.score)) for q, g in run.groupby('qid')}) for run in (A, B)]
    for ours, method, params, norm in [(reciprocal_rank_fusion([A, B]), 'rrf', {'k': 60}, None),
                                       (normalized_fusion([A, B], [0.3, 0.7]), 'wsum', {'weights': [0.3, 0.7]}, 'min-max')]:
        theirs = fuse(as_ranx, method=method, params=params, norm=norm).to_dict()
        for row in ours.itertuples():
            assert row.score == pytest.approx(theirs[row.qid][row.docid]), (method, row)


# ----------------------------------------------------------------- pair metrics
def test_pair_metrics_are_scipys_correlations():
    pred, true = [0.1, 0.4, 0.35, 0.9], [0, 1, 2, 3]
    got = pair_metrics(pred, true)
    assert got['spearman'] == pytest.approx(0.8) and got['n'] == 4
    assert got['pearson'] == pytest.approx(np.corrcoef(pred, true)[0, 1])
    with pytest.raises(ValueError, match='3 predictions for 2'): pair_metrics([1, 2, 3], [1, 2])
