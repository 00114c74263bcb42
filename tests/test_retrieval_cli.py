"""The retrieval commands end to end on a Cranfield slice: cranfield-export -> index -> search -> bm25 -> fuse -> evaluate.

A tiny model is trained on the slice in seconds (its numbers mean nothing); BM25 must find relevant documents,
which checks that ids flow correctly from the CSVs to the runs and the qrels.
"""
import numpy as np
import pandas as pd
import pytest

from conftest import torch_threads, train_tiny
from relcollab.app.cli import main
from relcollab.core.bf16 import bf16_support
from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.retrieval.hybrid import HybridSearch
from relcollab.retrieval.index import DocIndex
from relcollab.retrieval.pretrained import load_model
from relcollab.retrieval.trec import read_qrels, read_run, run_frame, write_qrels

from test_cranfield import CRANFIELD_DIR

pytestmark = pytest.mark.skipif(not (CRANFIELD_DIR/'cran.all.1400').exists(),
                                reason=f"Cranfield not found at {CRANFIELD_DIR} (set RELCOLLAB_CRANFIELD)")

N_QUERIES, N_DOCS = 10, 150


@pytest.fixture(autouse=True, scope='module')
def _one_torch_thread():
    with torch_threads(1): yield


def slice_cranfield(full, out, seed=0):
    "The first N_QUERIES judged queries, their judged documents plus random others (N_DOCS in all), their qrels."
    docs = pd.read_csv(full/'docs.csv', dtype=str, keep_default_na=False)
    queries = pd.read_csv(full/'queries.csv', dtype=str, keep_default_na=False)
    qrels = read_qrels(full/'qrels.trec')
    query_ids = list(pd.unique(qrels['qid']))[:N_QUERIES]
    qrels = qrels[qrels['qid'].isin(query_ids)]
    judged = set(qrels['docid'])
    others = np.random.default_rng(seed).permutation(sorted(set(docs['id']) - judged))[:N_DOCS - len(judged)]
    docs = docs[docs['id'].isin(judged | set(others))]
    out.mkdir()
    docs.to_csv(out/'docs.csv', index=False)
    queries[queries['id'].isin(query_ids)].to_csv(out/'queries.csv', index=False)
    write_qrels(qrels, out/'qrels.trec')
    return docs, queries[queries['id'].isin(query_ids)], qrels


def training_pairs(docs, queries, qrels, seed=0):
    "Judged pairs (score = gain) and as many random unjudged pairs (score 0) from the slice."
    text_of_doc, text_of_query = dict(zip(docs['id'], docs['text'])), dict(zip(queries['id'], queries['text']))
    rng = np.random.default_rng(seed)
    judged = set(zip(qrels['qid'], qrels['docid']))
    candidates = zip(rng.choice(queries['id'], 2 * len(qrels)), rng.choice(docs['id'], 2 * len(qrels)))
    negatives = list(dict.fromkeys(pair for pair in candidates if pair not in judged))[:len(qrels)]
    rows = [(text_of_query[q], text_of_doc[d], float(g)) for q, d, g in qrels[['qid', 'docid', 'gain']].itertuples(index=False)]
    rows += [(text_of_query[q], text_of_doc[d], 0.0) for q, d in negatives]
    return pd.DataFrame(rows, columns=['query', 'doc', 'score'])


@pytest.fixture(scope='module')
def workdir(tmp_path_factory):
    "Cranfield exported by the CLI, sliced, and a tiny model trained on the slice and exported."
    root = tmp_path_factory.mktemp('retrieval_cli')
    assert main(['cranfield-export', '--data', str(CRANFIELD_DIR), '--out', str(root/'full')]) == 0
    docs, queries, qrels = slice_cranfield(root/'full', root/'slice')
    learn = train_tiny(training_pairs(docs, queries, qrels), root)
    learn.export(root/'model.pkl')
    return root


def cli(capsys, *args):
    code = main([str(a) for a in args])
    out, err = capsys.readouterr()
    return code, out, err


def test_index_search_bm25_fuse_evaluate_on_a_cranfield_slice(workdir, capsys):
    s = workdir/'slice'
    assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', workdir/'index')[0] == 0
    code, out, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', workdir/'index',
                         '--k', 100, '--out', workdir/'model.trec')
    assert code == 0, err
    run = read_run(workdir/'model.trec')
    assert run.groupby('qid').size().tolist() == [100] * N_QUERIES
    assert set(run['docid']) <= set(pd.read_csv(s/'docs.csv', dtype=str)['id'])
    assert cli(capsys, 'bm25', s/'docs.csv', s/'queries.csv', '--k', 100, '--out', workdir/'bm25.trec')[0] == 0
    assert (workdir/'bm25.trec').read_text().split('\n', 1)[0].endswith(' bm25')
    assert cli(capsys, 'fuse', workdir/'model.trec', workdir/'bm25.trec', '--method', 'rrf', '--k', 50,
               '--out', workdir/'fused.trec')[0] == 0
    code, out, err = cli(capsys, 'evaluate', workdir/'model.trec', workdir/'bm25.trec', workdir/'fused.trec',
                         '--qrels', s/'qrels.trec')
    assert code == 0, err
    table = [line for line in out.splitlines() if line.startswith('|')]
    assert table[0] == '| run | ndcg@10 | map | recall@100 | mrr@10 |' and len(table) == 2 + 3
    values = {row.split('|')[1].strip(): [float(v) for v in row.split('|')[2:-1]] for row in table[2:]}
    assert list(values) == [str(workdir/name) for name in ('model.trec', 'bm25.trec', 'fused.trec')]
    assert all(0 <= v <= 1 for row in values.values() for v in row)
    assert values[str(workdir/'bm25.trec')][0] > 0.3  # BM25 finds Cranfield's relevant documents
    assert values[str(workdir/'model.trec')][2] > 0.3  # 100 of 150 docs: the model's doc ids match the qrels' too


def test_search_with_an_index_from_another_model_exits_2(workdir, capsys, tmp_path):
    s = workdir/'slice'
    assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'index')[0] == 0
    meta = (tmp_path/'index'/'index.json')
    meta.write_text(meta.read_text().replace('"fingerprint": "', '"fingerprint": "0'))
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--out', tmp_path/'run.trec')
    assert code == 2 and 'another model' in err and not (tmp_path/'run.trec').exists()


def test_hybrid_search_writes_hybrid_searchs_ranking_and_refuses_other_documents(workdir, capsys, tmp_path):
    s = workdir/'slice'
    assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'index')[0] == 0
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index', '--k', 20,
                       '--hybrid', s/'docs.csv', '--hybrid-weight', 0.3, '--feedback-depth', 5, '--feedback-weight', 2,
                       '--out', tmp_path/'hybrid.trec')
    assert code == 0, err
    docs = pd.read_csv(s/'docs.csv', dtype=str, keep_default_na=False)
    queries = pd.read_csv(s/'queries.csv', dtype=str, keep_default_na=False)
    learn = load_model(workdir/'model.pkl')
    bm25 = BM25Baseline().index(docs['id'], docs['text'])
    hybrid = HybridSearch(learn, DocIndex.load(tmp_path/'index'), bm25, weight=0.3, feedback_depth=5, feedback_weight=2)
    expected = run_frame(queries['id'], hybrid.search(queries['text'].tolist(), k=20))
    defaults = HybridSearch(learn, DocIndex.load(tmp_path/'index'), bm25).search(queries['text'].tolist(), k=20)
    assert expected['docid'].tolist() != run_frame(queries['id'], defaults)['docid'].tolist()  # the options matter
    assert read_run(tmp_path/'hybrid.trec')['docid'].tolist() == expected['docid'].tolist()
    model_alone = learn.search(queries['text'].tolist(), DocIndex.load(tmp_path/'index'), k=20)
    assert expected['docid'].tolist() != run_frame(queries['id'], model_alone)['docid'].tolist()  # BM25 took part
    docs.iloc[::-1].to_csv(tmp_path/'reversed.csv', index=False)
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--hybrid', tmp_path/'reversed.csv', '--out', tmp_path/'bad.trec')
    assert code == 2 and 'reversed.csv' in err and 'first difference at row 1' in err and not (tmp_path/'bad.trec').exists()
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--hybrid', s/'docs.csv', '--hybrid-weight', 2, '--out', tmp_path/'bad.trec')
    assert code == 2 and "weight is the model's share" in err
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--feedback-depth', 5, '--out', tmp_path/'bad.trec')
    assert code == 2 and 'go with --hybrid' in err


def test_an_index_with_bm25_searches_hybrid_without_the_documents_file(workdir, capsys, tmp_path):
    s = workdir/'slice'
    assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'index', '--bm25')[0] == 0
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index', '--k', 20,
                       '--hybrid', '--out', tmp_path/'saved.trec')
    assert code == 0, err
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index', '--k', 20,
                       '--hybrid', s/'docs.csv', '--out', tmp_path/'given.trec')
    assert code == 0, err
    assert read_run(tmp_path/'saved.trec').equals(read_run(tmp_path/'given.trec'))
    queries = pd.read_csv(s/'queries.csv', dtype=str, keep_default_na=False)
    learn = load_model(workdir/'model.pkl')
    HybridSearch.load(learn, tmp_path/'index', weight=0.3, feedback_depth=5, feedback_weight=2).save(tmp_path/'index')
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index', '--k', 20,
                       '--hybrid', '--out', tmp_path/'tuned.trec')  # the folder's settings (hybrid.json)
    assert code == 0, err
    tuned = HybridSearch.load(learn, tmp_path/'index').search(queries['text'].tolist(), k=20)
    assert read_run(tmp_path/'tuned.trec')['docid'].tolist() == run_frame(queries['id'], tuned)['docid'].tolist()
    assert read_run(tmp_path/'tuned.trec')['docid'].tolist() != read_run(tmp_path/'saved.trec')['docid'].tolist()
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index', '--k', 20,
                       '--hybrid', '--hybrid-weight', 0.7, '--feedback-depth', 3, '--feedback-weight', 1,
                       '--out', tmp_path/'options.trec')  # options given override the folder's settings
    assert code == 0, err
    assert read_run(tmp_path/'options.trec').equals(read_run(tmp_path/'saved.trec'))
    assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'index')[0] == 0  # without --bm25
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--hybrid', '--out', tmp_path/'bad.trec')
    assert code == 2 and 'no BM25 index in it' in err and '--hybrid DOCS' in err and not (tmp_path/'bad.trec').exists()


def test_bad_inputs_exit_2_with_a_message(workdir, capsys, tmp_path):
    s = workdir/'slice'
    docs = pd.read_csv(s/'docs.csv', dtype=str, keep_default_na=False)
    docs.loc[4, 'id'] = docs.loc[1, 'id']
    docs.to_csv(tmp_path/'dup.csv', index=False)
    code, _, err = cli(capsys, 'bm25', tmp_path/'dup.csv', s/'queries.csv', '--out', tmp_path/'r.trec')
    assert code == 2 and 'ids must be unique' in err and 'line 3' in err and 'line 6' in err
    code, _, err = cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'i', '--text-col', 'txt')
    assert code == 2 and "Did you mean 'text'" in err
    code, _, err = cli(capsys, 'evaluate', tmp_path/'missing.trec', '--qrels', s/'qrels.trec')
    assert code == 2 and 'missing.trec' in err
    (tmp_path/'run.trec').write_text('1 Q0 184 1 0.5 t\n')
    with pytest.warns(UserWarning, match='9 judged queries have no results in the run; they are not evaluated'):
        code, _, err = cli(capsys, 'evaluate', tmp_path/'run.trec', '--qrels', s/'qrels.trec', '--metrics', 'ndcg@ten')
    assert code == 2 and 'ndcg@10' in err
    code, _, err = cli(capsys, 'fuse', tmp_path/'run.trec', tmp_path/'run.trec', '--method', 'rrf',
                       '--weights', 1, 2, '--out', tmp_path/'f.trec')
    assert code == 2 and '--weights go with --method wsum' in err


def test_bf16_and_backend_options_reach_the_index_and_the_search(workdir, capsys, tmp_path, monkeypatch):
    s = workdir/'slice'
    import warnings
    import relcollab.retrieval.encode as encode_module
    requested, resolve = [], encode_module.resolve_bf16
    monkeypatch.setattr(encode_module, 'resolve_bf16', lambda bf16, device: requested.append(bf16) or resolve(bf16, device))
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')  # an AVX2-only CPU falls back to float32 with a Bf16FallbackWarning
        assert cli(capsys, 'index', workdir/'model.pkl', s/'docs.csv', '--out', tmp_path/'index', '--bf16', '--bs', 7)[0] == 0
        code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                           '--bf16', '--k', 10, '--out', tmp_path/'bf16.trec')
    assert code == 0, err
    assert requested == [True, True]  # index, then search, asked the encoder for bfloat16
    assert cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
               '--k', 10, '--out', tmp_path/'fp32.trec')[0] == 0
    assert requested == [True, True, False]
    bf16, fp32 = read_run(tmp_path/'bf16.trec'), read_run(tmp_path/'fp32.trec')
    overlap = [len(set(bf16[bf16['qid'] == q]['docid']) & set(fp32[fp32['qid'] == q]['docid'])) for q in fp32['qid'].unique()]
    if not bf16_support('cpu')[0]:  # AVX2 only: the float32 fallback gives the very same run
        pd.testing.assert_frame_equal(bf16, fp32)
    assert np.mean(overlap) >= 8  # bfloat16 moves scores by ~1e-3: the same top 10, give or take a tie
    # --backend reaches DocIndex.load: faiss cannot search this model's lexical part, and says so before searching
    code, _, err = cli(capsys, 'search', workdir/'model.pkl', s/'queries.csv', '--index', tmp_path/'index',
                       '--backend', 'faiss', '--out', tmp_path/'faiss.trec')
    assert code == 2 and "backend='faiss'" in err and not (tmp_path/'faiss.trec').exists()
