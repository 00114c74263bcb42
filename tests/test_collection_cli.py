"""`relcollab fit --collection`, `fit --docs` and `relcollab benchmark` on a small BEIR folder written here.

The collection: 10 topics of 3 words, 3 documents per topic (variants alpha, beta, gamma) and one query per
(topic, variant): its own variant's document is judged 2 (3 in the test split), the topic's other two documents 1.
Variants alpha and beta are the train split (20 queries), gamma the test split (10). Ten more documents talk about
zeppelins only: no query shares a word with them, so BM25 ranks them last and they never enter training rows.
Models are tiny (tests/fit_driver.py's `--size tiny`), 1 epoch, trained once per module.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from relcollab.app.benchmark import benchmark_collection
from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.retrieval.hybrid import HybridSearch
from relcollab.app.cli import main
from relcollab.datasets.collection import collection_triples, load_collection
from relcollab.datasets.docs_only import documents_triples, pseudo_queries_per_doc, read_documents
from relcollab.retrieval.evaluate import DEFAULT_METRICS, evaluate_run
from relcollab.retrieval.fusion import reciprocal_rank_fusion
from relcollab.retrieval.trec import read_run

TOPICS = [("wing", "lift", "drag"), ("heat", "slab", "conduction"), ("shock", "wave", "mach"),
          ("boundary", "layer", "plate"), ("jet", "nozzle", "thrust"), ("beam", "stress", "load"),
          ("shell", "panel", "buckling"), ("vortex", "wake", "swirl"), ("fluid", "viscous", "pipe"),
          ("rotor", "blade", "hover")]
VARIANTS = ("alpha", "beta", "gamma")
FILLER = "study results method measured data model test case value range".split()
ZEPPELIN_DOCS = [f"z{i}" for i in range(10)]
SPLIT_OF = {"alpha": "train", "beta": "train", "gamma": "test"}
K = 20


def _jsonl(path: Path, records: list) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def write_collection(folder: Path) -> Path:
    "The BEIR folder described in the module docstring."
    rng = np.random.default_rng(0)
    corpus, queries, qrels = [], [], {"train": [], "test": []}
    for t, words in enumerate(TOPICS):
        for v, variant in enumerate(VARIANTS):
            filler = " ".join(rng.choice(FILLER, 4))
            corpus.append({"_id": f"d{t}{v}", "title": f"{words[0]} {variant}",
                           "text": f"the {words[1]} and {words[2]} of a {words[0]} , {filler} ."})
            queries.append({"_id": f"q{t}{v}", "text": f"{words[2]} {words[0]} {variant}"})
            split = SPLIT_OF[variant]
            for other in range(len(VARIANTS)):
                gain = (3 if split == "test" else 2) if other == v else 1
                qrels[split].append(f"q{t}{v}\td{t}{other}\t{gain}\n")
    corpus += [{"_id": z, "title": "", "text": f"zeppelin airship hangar zeppelin mooring {i} zeppelin"}
               for i, z in enumerate(ZEPPELIN_DOCS)]
    (folder/"qrels").mkdir(parents=True)
    _jsonl(folder/"corpus.jsonl", corpus)
    _jsonl(folder/"queries.jsonl", queries)
    for split, lines in qrels.items():
        (folder/"qrels"/f"{split}.tsv").write_text("query-id\tcorpus-id\tscore\n" + "".join(lines))
    return folder


def run_fit_tiny(*args, cwd):
    "`relcollab fit` in a fresh Python with the tests' tiny model size (`--size tiny`), through tests/fit_driver.py."
    env = dict(os.environ, OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, str(Path(__file__).parent/"fit_driver.py"), os.devnull, "0", "fit",
                           *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)


TINY_FIT = ("--size", "tiny", "--lm-epochs", 1, "--epochs", 1, "--bs", 16)


@pytest.fixture(scope="module")
def beir(tmp_path_factory) -> Path:
    return write_collection(tmp_path_factory.mktemp("collection")/"beir")


@pytest.fixture(scope="module")
def fitted(beir, tmp_path_factory):
    "`relcollab fit --collection` (train split by default), hard negatives only, no pseudo-queries."
    folder = tmp_path_factory.mktemp("fit_collection")
    result = run_fit_tiny("--collection", beir, "--out", "model.pkl", "--negatives", 0, "--hard-negatives", 1,
                          "--pseudo-per-doc", 0, *TINY_FIT, cwd=folder)
    assert result.returncode == 0, result.stderr[-3000:]
    return folder, result


@pytest.fixture(scope="module")
def model(fitted):
    from relcollab.app.retrieval_cli import load_model
    return load_model(fitted[0]/"model.pkl")


# ----------------------------------------------------------------------------- fit --collection

def test_fit_collection_trains_on_the_train_split_with_the_negatives_asked_for(fitted, beir, model):
    folder, result = fitted
    train = load_collection(beir, split="train")
    rows = collection_triples(train, negatives=0, hard_negatives=1)
    assert f"{len(rows)} training rows for 20 queries" in result.stdout
    assert len(rows) == 20 * 3 * 2  # 3 judged documents per query, one hard negative each
    assert (folder/"model.pkl").stat().st_size > 0 and (folder/"models"/"lm_enc.pth").exists()
    scaler = model.dls.score_scaler  # 0 to the top gain of the train split (the test split's 3 is not loaded)
    assert (scaler.lo, scaler.hi) == (0, 2)
    # judgments: the dense vectors start from them (the recipe's judgment start), and the saved model keeps the map
    assert "relcollab: judgment start done" in result.stdout and model.model.head.doc_proj.fitted


def test_fit_collection_gives_every_document_to_the_language_model(fitted, beir, model):
    rows = collection_triples(load_collection(beir, split="train"), negatives=0, hard_negatives=1)
    assert not rows["doc"].str.contains("zeppelin").any()  # the premise: no training row holds the word
    assert "zeppelin" in model.dls.vocab


# ----------------------------------------------------------------------------- benchmark

def test_benchmark_prints_the_table_and_writes_four_runs(fitted, beir, capsys):
    folder, _ = fitted
    assert main(["benchmark", str(beir), "--model", str(folder/"model.pkl"), "--out", str(folder/"runs"),
                 "--k", str(K)]) == 0
    out = capsys.readouterr().out
    assert "split test, 10 judged queries" in out
    assert "| run | ndcg@10 | map | recall@100 | mrr@10 |" in out
    assert sorted(p.name for p in (folder/"runs").iterdir()) == ["bm25.trec", "hybrid.trec", "relcollab.trec", "rrf.trec"]
    runs = {name: read_run(folder/"runs"/f"{name}.trec") for name in ("bm25", "relcollab", "rrf", "hybrid")}
    test_queries = {f"q{t}2" for t in range(len(TOPICS))}
    for name, run in runs.items():
        assert set(run["qid"]) == test_queries, name
        assert (run.groupby("qid").size() == K).all(), name
        assert (folder/"runs"/f"{name}.trec").read_text().split("\n")[0].endswith(f" {name}")
    fused = reciprocal_rank_fusion([runs["bm25"], runs["relcollab"]])
    assert runs["rrf"]["docid"].tolist() == fused[fused["rank"] <= K]["docid"].tolist()
    qrels = load_collection(beir, split="test").qrels.rename(columns={"query_id": "qid", "doc_id": "docid"})
    for name, run in runs.items():
        metrics = evaluate_run(run, qrels)
        assert f"| {name} | " + " | ".join(f"{metrics[m]:.4f}" for m in DEFAULT_METRICS) + " |" in out
    assert evaluate_run(runs["bm25"], qrels)["ndcg@10"] > 0.9  # the test split's judgments, not the train split's


def test_benchmark_collection_returns_the_table_and_the_runs(model, beir):
    collection = load_collection(beir)  # both splits loaded: split= picks one
    result = benchmark_collection(model, collection, split="test", k=5)
    assert result.table.index.tolist() == ["bm25", "relcollab", "rrf", "hybrid"]
    assert result.table.columns.tolist() == list(DEFAULT_METRICS)
    assert result.table.notna().all().all() and ((result.table >= 0) & (result.table <= 1)).all().all()
    assert all(set(run["qid"]) == {f"q{t}2" for t in range(len(TOPICS))} for run in result.runs.values())
    assert all(run.groupby("qid").size().max() == 5 for run in result.runs.values())
    judged = result.runs["hybrid"].drop_duplicates("qid")["qid"].tolist()
    texts = collection.queries.set_index("query_id").loc[judged, "text"].tolist()
    hybrid = HybridSearch(model, model.index(collection.docs, id_col="doc_id", text_col="text"),
                          BM25Baseline().index(collection.docs["doc_id"], collection.docs["text"]))
    assert result.runs["hybrid"]["docid"].tolist() == hybrid.search(texts, k=5).ids.reshape(-1).tolist()
    train = benchmark_collection(model, collection, split="train", k=5)
    assert set(train.runs["bm25"]["qid"]) == {f"q{t}{v}" for t in range(len(TOPICS)) for v in (0, 1)}


# ----------------------------------------------------------------------------- fit --docs

def test_documents_triples_hold_out_documents_and_never_pair_a_query_with_its_own_document():
    texts = [" ".join(f"w{i}v{j}" for j in range(8)) + " ." for i in range(40)]  # a word names its document
    rows = documents_triples(texts, pseudo_per_doc=2, negatives=3, valid_pct=0.1, seed=0)
    source = rows["query"].str.extract(r"w(\d+)v", expand=False).astype(int)
    positives, negatives = rows[rows.score == 1], rows[rows.score == 0]
    assert len(positives) == 2 * 40 and len(negatives) == 3 * len(positives)
    assert (positives["doc_index"] == source[positives.index]).all()
    assert not (negatives["doc_index"] == source[negatives.index]).any()
    held_out = set(source[rows.is_valid])
    assert len(held_out) == 4 and not set(source[~rows.is_valid]) & held_out
    pd.testing.assert_frame_equal(rows, documents_triples(texts, pseudo_per_doc=2, negatives=3, valid_pct=0.1, seed=0))
    assert not rows.equals(documents_triples(texts, pseudo_per_doc=2, negatives=3, valid_pct=0.1, seed=1))


def test_read_documents_reads_a_beir_folder_its_corpus_and_a_table(beir, tmp_path):
    texts = read_documents(beir)
    assert len(texts) == 40 and texts[0].startswith("wing alpha the lift and drag")  # title + text
    assert read_documents(beir/"corpus.jsonl") == texts
    pd.DataFrame({"id": range(40), "text": texts}).to_csv(tmp_path/"docs.tsv", sep="\t", index=False)
    assert read_documents(tmp_path/"docs.tsv") == texts


def test_fit_docs_trains_from_documents_alone(beir, tmp_path):
    result = run_fit_tiny("--docs", beir, "--out", "docs.pkl", "--pseudo-per-doc", 1, "--self-supervised", "crops",
                          *TINY_FIT, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "40 documents from" in result.stdout and (tmp_path/"docs.pkl").stat().st_size > 0
    assert "self-supervised views (crops)" in result.stdout
    from relcollab.app.retrieval_cli import load_model
    learn = load_model(str(tmp_path/"docs.pkl"))  # a string path loads too
    assert (learn.dls.score_scaler.lo, learn.dls.score_scaler.hi) == (0, 1)
    assert "zeppelin" in learn.dls.vocab
    # pseudo-queries are no judgments: no judgment start
    assert "judgment start" not in result.stdout and not learn.model.head.doc_proj.fitted
    score = learn.score_pairs(pd.DataFrame({"query": ["wing lift"], "doc": ["the lift and drag of a wing"]}))
    assert 0 <= float(np.asarray(score).reshape(-1)[0]) <= 1


def test_the_default_pseudo_queries_per_document_shrink_as_the_collection_grows():
    assert [pseudo_queries_per_doc(n) for n in (10, 1400, 5000, 8000, 20_000, 100_000)] == [4, 4, 4, 2, 1, 1]


# ----------------------------------------------------------------------------- bad usage

@pytest.mark.parametrize("args, message", [
    (["triples.csv", "--collection", "beir"], "argument --collection: not allowed with argument triples"),
    (["--docs", "beir", "--collection", "beir"], "not allowed with argument"),
    ([], "one of the arguments triples --collection --docs is required"),
], ids=["triples-and-collection", "docs-and-collection", "no-data"])
def test_fit_takes_exactly_one_source_of_data(args, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        main(["fit", *args, "--out", "m.pkl"])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err


@pytest.mark.parametrize("args, message", [
    (["--collection", "{beir}", "--split", "validation"], "no split 'validation'; available: test, train"),
    (["--collection", "{beir}", "--split", "nope", "--hard-negatives", "1"], "no split 'nope'"),
    (["triples.csv", "--split", "train"], "--split and --hard-negatives go with --collection"),
    (["--docs", "{beir}", "--pseudo-per-doc", "0"], "pseudo_per_doc (--pseudo-per-doc) must be at least 1"),
], ids=["unknown-split", "unknown-split-hard-negatives", "split-without-collection", "docs-without-pseudo-queries"])
def test_fit_refuses_bad_options_before_training(args, message, beir, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    pd.DataFrame({"query": ["a", "b"], "doc": ["c", "d"], "score": [0, 1]}).to_csv("triples.csv", index=False)
    assert main(["fit", *(arg.format(beir=beir) for arg in args), "--out", "m.pkl"]) == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path/"models").exists() and not (tmp_path/"m.pkl").exists()


def test_benchmark_refuses_an_unknown_split(fitted, beir, capsys):
    folder, _ = fitted
    assert main(["benchmark", str(beir), "--model", str(folder/"model.pkl"), "--split", "dev"]) == 2
    assert "no split 'dev'; available: test, train" in capsys.readouterr().err
