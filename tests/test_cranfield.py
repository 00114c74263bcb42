"""Tests for relcollab.datasets.cranfield: the real collection (skipped when absent) and synthetic files."""
import os
import socket
import time
from pathlib import Path

import pandas as pd
import pytest

from relcollab.datasets.cranfield import (
    CRANFIELD_ENV, CRANFIELD_URL, Cranfield, cranfield_split, cranfield_triples, find_cranfield,
    load_cranfield, write_cranfield,
)

DEFAULT_DIR = Path(__file__).parents[2]/"shared"/"data"/"cranfield"
CRANFIELD_DIR = Path(os.environ.get(CRANFIELD_ENV) or DEFAULT_DIR)
needs_cranfield = pytest.mark.skipif(
    not (CRANFIELD_DIR/"cran.all.1400").is_file(),
    reason=f"Cranfield not found at {CRANFIELD_DIR}; "
           f"set {CRANFIELD_ENV} to the directory holding cran.all.1400")


@pytest.fixture(scope="module")
def cran() -> Cranfield:
    return load_cranfield(CRANFIELD_DIR)


def _count_markers(path: Path, prefix: str) -> int:
    "Independent count: '.I <id>' lines with an id (the trailing bare '.I' is not a record)."
    lines = path.read_text().splitlines()
    return sum(1 for line in lines if line.startswith(prefix) and len(line.split()) == 2)


def _count_graded_qrels(path: Path) -> int:
    rows = [line.split() for line in path.read_text().splitlines() if line.strip()]
    return sum(1 for row in rows if row[2] in {"1", "2", "3", "4"})


# ----------------------------------------------------------------------------- real collection

@needs_cranfield
def test_counts_match_the_files(cran):
    assert len(cran.docs) == _count_markers(CRANFIELD_DIR/"cran.all.1400", ".I") == 1400
    assert len(cran.queries) == _count_markers(CRANFIELD_DIR/"cran.qry", ".I") == 225
    assert len(cran.qrels) == _count_graded_qrels(CRANFIELD_DIR/"cranqrel")
    assert repr(cran).startswith(f"Cranfield(1400 docs, 225 queries, {len(cran.qrels)} qrels")


@needs_cranfield
def test_ids_and_positions(cran):
    assert cran.docs.doc_id.tolist() == list(range(1, 1401))
    assert cran.queries.query_id.tolist() == list(range(1, 226))
    assert cran.queries.original_id.is_unique
    assert cran.queries.set_index("query_id").loc[225, "original_id"] == 365
    assert cran.queries.set_index("query_id").loc[3, "original_id"] == 4  # id 003 is missing
    assert set(cran.qrels.query_id) <= set(cran.queries.query_id)
    assert set(cran.qrels.doc_id) <= set(cran.docs.doc_id)


@needs_cranfield
def test_texts_are_clean(cran):
    texts = pd.concat([cran.docs.title, cran.docs.abstract, cran.docs.text, cran.queries.text])
    assert not texts.str.contains("\r", regex=False).any()
    assert not texts.str.contains("\n", regex=False).any()
    # runs of spaces inside a line are kept as in the file (about 4000 lines have them)
    assert (texts == texts.str.strip()).all()
    assert (cran.queries.text != "").all()


@needs_cranfield
def test_empty_documents_471_and_995(cran):
    docs = cran.docs.set_index("doc_id")
    for doc_id in (471, 995):  # every field (.T .A .B .W) is empty in the file
        assert docs.loc[doc_id, ["title", "abstract", "text"]].tolist() == ["", "", ""]
    assert (docs.text == "").sum() == 2


@needs_cranfield
def test_stray_markers_keep_their_text(cran):
    abstract_240 = cran.docs.set_index("doc_id").loc[240, "abstract"]
    assert "application to turbulent separations" in abstract_240  # after a stray '.A'
    assert "unity in low-speed flow without injection" in abstract_240  # after a stray '.B'
    abstract_578 = cran.docs.set_index("doc_id").loc[578, "abstract"]
    assert "compressor operation with one or more blade rows stalled" in abstract_578  # stray '.W'


@needs_cranfield
def test_gain_mapping(cran):
    assert set(cran.qrels.code) <= {1, 2, 3, 4}
    assert (cran.qrels.gain == 5 - cran.qrels.code).all()
    first = cran.qrels.iloc[0]  # first line of cranqrel: "1 184 2"
    assert (first.query_id, first.doc_id, first.code, first.gain) == (1, 184, 2, 3)


@needs_cranfield
def test_split_fold_0(cran):
    train, test = cranfield_split(cran.queries, fold=0)
    assert len(test) == 45 and len(train) == 180
    assert not set(train) & set(test)
    assert sorted(train + test) == list(range(1, 226))
    assert all(query_id % 5 == 0 for query_id in test)
    assert cranfield_split(cran) == (train, test)


@needs_cranfield
def test_triples_judged_and_sampled(cran):
    pairs = cranfield_triples(cran, query_ids=[1, 2, 3], negatives=2, seed=0)
    assert list(pairs.columns) == ["query_id", "doc_id", "query", "doc", "score"]
    judged = cran.qrels[cran.qrels.query_id.isin([1, 2, 3])]
    assert (pairs.score > 0).sum() == len(judged)
    assert (pairs.score == 0).sum() == 2 * len(judged)
    negatives = pairs[pairs.score == 0].merge(cran.qrels, on=["query_id", "doc_id"])
    assert negatives.empty, "a negative is a judged document"
    assert not pairs.duplicated(["query_id", "doc_id"]).any()
    assert pairs["query"].notna().all() and pairs["doc"].notna().all()


@needs_cranfield
def test_triples_deterministic_per_seed(cran):
    first = cranfield_triples(cran, negatives=1, seed=0)
    pd.testing.assert_frame_equal(first, cranfield_triples(cran, negatives=1, seed=0))
    other = cranfield_triples(cran, negatives=1, seed=1)
    assert len(other) == len(first) == 2 * len(cran.qrels)
    assert not first.doc_id.equals(other.doc_id)
    all_negatives = first[first.score == 0].merge(cran.qrels, on=["query_id", "doc_id"])
    assert all_negatives.empty


@needs_cranfield
def test_write_cranfield(cran, tmp_path):
    paths = write_cranfield(cran, tmp_path/"out")
    docs = pd.read_csv(paths["docs"], keep_default_na=False)
    queries = pd.read_csv(paths["queries"], keep_default_na=False)
    assert list(docs.columns) == ["id", "text"] and len(docs) == 1400
    assert list(queries.columns) == ["id", "text"] and queries.id.tolist() == list(range(1, 226))
    qrel_lines = paths["qrels"].read_text().splitlines()
    assert len(qrel_lines) == len(cran.qrels)
    assert qrel_lines[0] == "1 0 184 3"


@needs_cranfield
def test_env_var_is_used(monkeypatch):
    monkeypatch.setenv(CRANFIELD_ENV, str(CRANFIELD_DIR))
    assert find_cranfield() == CRANFIELD_DIR


# ----------------------------------------------------------------------------- synthetic collection

DOCS_TEXT = """.I 1
.T
first title
 continued
.A
someone
.B
j. ae. 1
.W
first title continued .
   the abstract
.I 2
.T
.A
.B
.W
.I
"""
QUERIES_TEXT = ".I 003\n.W\nwhat is\nthe first ?\n.I 007\n.W\nsecond query .\n.I\n"
QRELS_TEXT = "1 1 1\n2 1 4 \n2 2 3\n"


def _write_collection(directory: Path, qrels: str = QRELS_TEXT, docs: str = DOCS_TEXT) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    crlf = {"newline": "\r\n"}
    (directory/"cran.all.1400").write_text(docs, **crlf)
    (directory/"cran.qry").write_text(QUERIES_TEXT, **crlf)
    (directory/"cranqrel").write_text(qrels)
    return directory


def test_synthetic_crlf_collection(tmp_path):
    data = load_cranfield(_write_collection(tmp_path))
    assert data.docs.to_dict("records") == [
        {"doc_id": 1, "title": "first title continued",
         "abstract": "first title continued . the abstract",
         "text": "first title continued first title continued . the abstract"},
        {"doc_id": 2, "title": "", "abstract": "", "text": ""}]
    assert data.queries.to_dict("records") == [
        {"query_id": 1, "original_id": 3, "text": "what is the first ?"},
        {"query_id": 2, "original_id": 7, "text": "second query ."}]
    assert data.qrels.values.tolist() == [[1, 1, 1, 4], [2, 1, 4, 1], [2, 2, 3, 2]]
    assert data.path == tmp_path


def test_synthetic_triples_and_split(tmp_path):
    data = load_cranfield(_write_collection(tmp_path))
    pairs = cranfield_triples(data, query_ids=[1], negatives=1, seed=0)
    assert pairs[["doc_id", "score"]].values.tolist() == [[1, 4], [2, 0]]
    assert cranfield_split([1, 2, 3, 4, 5, 6], fold=1) == ([2, 3, 4, 5], [1, 6])
    with pytest.raises(ValueError, match="fold"):
        cranfield_split([1, 2], fold=5)
    with pytest.raises(ValueError, match="not query positions"):
        cranfield_triples(data, query_ids=[3])


@pytest.mark.parametrize("qrels, problem", [
    ("3 1 1\n", "cranqrel, line 1: query position 3 outside 1..2"),
    ("1 1 1\n1 9 2\n", "cranqrel, line 2: doc id 9 is not in"),
    ("1 1 7\n", "cranqrel, line 1: relevance code 7"),
    ("1 1\n", "cranqrel, line 1: expected"),
    ("1 1 1\n1 1 2\n", "cranqrel, line 2: pair"),
])
def test_bad_qrels_name_file_and_line(tmp_path, qrels, problem):
    with pytest.raises(ValueError, match=problem):
        load_cranfield(_write_collection(tmp_path, qrels=qrels))


@pytest.mark.parametrize("docs, problem", [
    (".I x1\n.T\nt\n", "cran.all.1400, line 1: '.I' id 'x1' is not an integer"),
    ("stray\n.I 1\n.T\nt\n", "cran.all.1400, line 1: text before the first"),
    (".I 1\nno marker\n", "cran.all.1400, line 2: text before any field marker"),
    (".I 1\n.T\nt\n.X\n", "cran.all.1400, line 4: unknown field marker"),
    (".I 1\n.T\nt\n.I 1\n.T\nu\n", "cran.all.1400, line 4: duplicate id 1"),
])
def test_bad_docs_name_file_and_line(tmp_path, docs, problem):
    with pytest.raises(ValueError, match=problem):
        load_cranfield(_write_collection(tmp_path, qrels="1 1 1\n", docs=docs))


def test_codes_minus_one_and_five_are_dropped(tmp_path):
    with pytest.warns(UserWarning, match="dropped"):
        data = load_cranfield(_write_collection(tmp_path, qrels="1 1 -1\n2 1 5\n2 2 3\n"))
    assert data.qrels.values.tolist() == [[2, 2, 3, 2]]


# ----------------------------------------------------------------------------- finding the files

def test_missing_files_raise_file_not_found(tmp_path):
    (tmp_path/"cran.qry").write_text(".I 1\n.W\nq\n")
    with pytest.raises(FileNotFoundError) as error:
        find_cranfield(tmp_path)
    message = str(error.value)
    assert str(tmp_path) in message and "cran.all.1400" in message and "cranqrel" in message
    assert "cran.qry," not in message.split("missing")[1].split(".")[0]  # present file not listed
    assert "Expected a directory" in message


def test_env_var_overrides_download_and_argument_overrides_env(tmp_path, monkeypatch):
    collection = _write_collection(tmp_path/"cran")
    monkeypatch.setenv(CRANFIELD_ENV, str(collection))
    assert find_cranfield() == collection
    assert len(load_cranfield().docs) == 2
    monkeypatch.setenv(CRANFIELD_ENV, str(tmp_path/"nowhere"))
    with pytest.raises(FileNotFoundError, match="nowhere"):
        find_cranfield()
    assert find_cranfield(collection) == collection


def test_offline_download_fails_fast(monkeypatch):
    def unreachable(*args, **kwargs):
        raise OSError("network is unreachable")
    monkeypatch.delenv(CRANFIELD_ENV, raising=False)
    monkeypatch.setattr(socket, "create_connection", unreachable)
    start = time.monotonic()
    with pytest.raises(ConnectionError) as error:
        load_cranfield()
    assert time.monotonic() - start < 1.0
    message = str(error.value)
    assert f"could not download Cranfield from {CRANFIELD_URL}" in message
    assert "load_cranfield('path/to/cranfield')" in message and CRANFIELD_ENV in message


@needs_cranfield
def test_triples_from_the_judged_pool_use_documents_judged_for_other_queries(cran):
    ids = [1, 2, 3, 4, 5, 6]
    pairs = cranfield_triples(cran, query_ids=ids, negatives=1, seed=0, negative_pool="judged")
    judged = cran.qrels[cran.qrels.query_id.isin(ids)]
    negatives = pairs[pairs.score == 0]
    assert len(negatives) > 0 and set(negatives.doc_id) <= set(judged.doc_id)
    own = set(zip(judged.query_id, judged.doc_id))
    assert not any((q, d) in own for q, d in zip(negatives.query_id, negatives.doc_id))
    with pytest.raises(ValueError, match="negative_pool"):
        cranfield_triples(cran, query_ids=ids, negative_pool="bm25")


@needs_cranfield
def test_demo_reports_on_queries_no_training_step_saw(cran):
    "The demo's rmse is honest only if its test queries are out of every frame it trains or chooses on."
    from relcollab.app.demo import demo_pairs
    triples, test = demo_pairs(cran, fold=0)
    train_ids, test_ids = cranfield_split(cran.queries, fold=0)
    assert set(test['query_id']) == set(test_ids) and not set(triples['query_id']) & set(test_ids)
    assert set(triples.loc[triples['is_valid'], 'query_id']) == set(train_ids[::5])
    assert set(triples.loc[~triples['is_valid'], 'query_id']) == set(train_ids) - set(train_ids[::5])
    assert (test['score'] > 0).any() and (test['score'] == 0).any()  # judged pairs and random unjudged ones
