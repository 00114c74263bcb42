"""Tests for relcollab.datasets.collection: BEIR and TREC-style folders written here, bad inputs, and training rows."""
import json
import os
import warnings
from pathlib import Path

import pandas as pd
import pytest

from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.datasets.collection import Collection, collection_triples, load_collection
from relcollab.datasets.cranfield import CRANFIELD_ENV, load_cranfield, write_cranfield
from relcollab.core.validation import RelevanceDataError

CRANFIELD_DIR = Path(os.environ.get(CRANFIELD_ENV) or Path(__file__).parents[2]/"shared"/"data"/"cranfield")

CORPUS = [
    {"_id": "d1", "title": "Heat transfer", "text": "in slabs of steel"},
    {"_id": "d2", "title": "", "text": "wing flutter at mach two"},
    {"_id": "d3", "text": "boundary layer on a flat plate"},
    {"_id": "d4", "title": None, "text": ""},  # empty document: allowed, warned about
    {"_id": "d5", "title": "Shock", "text": "waves in a nozzle"},
]
QUERIES = [{"_id": "q1", "text": "heat in slabs"}, {"_id": "q2", "text": "flutter of wings"},
           {"_id": "q3", "text": "nozzle shock"}]
SPLITS = {"train": [("q1", "d1", 2), ("q1", "d3", 0)], "dev": [("q2", "d2", 1)],
          "test": [("q3", "d5", 1), ("q3", "d2", -1)]}


def _jsonl(path: Path, records: list) -> None:
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")


def _tsv_qrels(path: Path, rows: list) -> None:
    path.write_text("query-id\tcorpus-id\tscore\n" + "".join(f"{q}\t{d}\t{g}\n" for q, d, g in rows))


def write_beir(folder: Path) -> Path:
    (folder/"qrels").mkdir(parents=True)
    _jsonl(folder/"corpus.jsonl", CORPUS)
    _jsonl(folder/"queries.jsonl", QUERIES)
    for split, rows in SPLITS.items():
        _tsv_qrels(folder/"qrels"/f"{split}.tsv", rows)
    return folder


def write_trec(folder: Path, sep: str = ",") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    suffix = "csv" if sep == "," else "tsv"
    docs = pd.DataFrame({"id": ["7", "8", "9"], "text": ["heat in slabs", "", "wing flutter"]})
    docs.to_csv(folder/f"docs.{suffix}", sep=sep, index=False)
    pd.DataFrame({"id": ["1", "2"], "text": ["slab heat", "flutter"]}).to_csv(folder/f"queries.{suffix}", sep=sep, index=False)
    (folder/"qrels.trec").write_text("1 0 7 3\n\n2 0 9 1\n2 0 8 0\n")
    return folder


def load_quietly(path, **kwargs) -> Collection:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return load_collection(path, **kwargs)


# ----------------------------------------------------------------------------- loading

def test_beir_folder(tmp_path):
    with pytest.warns(UserWarning, match=r"corpus\.jsonl: 1 document\(s\) have empty text \(e\.g\. 'd4'\)"):
        data = load_collection(write_beir(tmp_path))
    assert repr(data) == f"Collection(5 docs, 3 queries, 5 qrels, path='{tmp_path}')"
    assert data.docs.columns.tolist() == ["doc_id", "title", "text"]
    assert data.docs.text.tolist() == ["Heat transfer in slabs of steel", "wing flutter at mach two",
                                       "boundary layer on a flat plate", "", "Shock waves in a nozzle"]
    assert data.docs.title.tolist() == ["Heat transfer", "", "", "", "Shock"]
    assert data.queries.to_dict("list") == {"query_id": ["q1", "q2", "q3"],
                                            "text": ["heat in slabs", "flutter of wings", "nozzle shock"]}
    assert data.qrels.columns.tolist() == ["query_id", "doc_id", "gain", "split"]
    assert data.qrels.split.tolist() == ["train", "train", "dev", "test", "test"]  # train, dev, test order
    assert data.qrels.gain.tolist() == [2, 0, 1, 1, 0]  # the -1 is kept as 0: judged, not relevant


def test_beir_split_selection(tmp_path):
    data = load_quietly(write_beir(tmp_path), split="test")
    assert data.qrels[["query_id", "doc_id", "gain"]].values.tolist() == [["q3", "d5", 1], ["q3", "d2", 0]]
    assert set(data.qrels.split) == {"test"}
    assert len(data.queries) == 3 and len(data.docs) == 5  # queries and corpus are shared by the splits
    with pytest.raises(ValueError, match=r"qrels: no split 'validation'; available: dev, test, train"):
        load_collection(tmp_path, split="validation")


@pytest.mark.parametrize("sep", [",", "\t"])
def test_trec_folder(tmp_path, sep):
    data = load_quietly(write_trec(tmp_path, sep))
    assert data.docs.to_dict("list") == {"doc_id": ["7", "8", "9"], "title": ["", "", ""],
                                         "text": ["heat in slabs", "", "wing flutter"]}
    assert data.queries.query_id.tolist() == ["1", "2"]
    assert data.qrels.to_dict("list") == {"query_id": ["1", "2", "2"], "doc_id": ["7", "9", "8"], "gain": [3, 1, 0]}


def test_trec_folder_refuses_a_split(tmp_path):
    with pytest.raises(ValueError, match=r"TREC-style folder .* split='test'"):
        load_collection(write_trec(tmp_path), split="test")


@pytest.mark.skipif(not (CRANFIELD_DIR/"cran.all.1400").is_file(), reason=f"Cranfield not found at {CRANFIELD_DIR}")
def test_write_cranfield_round_trip(tmp_path):
    cran = load_cranfield(CRANFIELD_DIR)
    write_cranfield(cran, tmp_path)
    with pytest.warns(UserWarning, match=r"docs\.csv: 2 document\(s\) have empty text \(e\.g\. '471', '995'\)"):
        data = load_collection(tmp_path)
    assert data.docs.doc_id.tolist() == cran.docs.doc_id.astype(str).tolist()
    assert data.docs.text.tolist() == cran.docs.text.tolist()
    assert data.queries.query_id.tolist() == cran.queries.query_id.astype(str).tolist()
    assert data.queries.text.tolist() == cran.queries.text.tolist()
    expected = cran.qrels[["query_id", "doc_id", "gain"]].astype({"query_id": str, "doc_id": str})
    assert data.qrels.values.tolist() == expected.values.tolist()


# ----------------------------------------------------------------------------- bad input

def _replace_line(path: Path, number: int, text: str) -> None:
    lines = path.read_text().splitlines()
    lines[number - 1] = text
    path.write_text("\n".join(lines) + "\n")


def _append(path: Path, text: str) -> None:
    path.write_text(path.read_text() + text)


BEIR_CASES = {
    "bad json": (lambda f: _replace_line(f/"corpus.jsonl", 2, '{"_id": "d2", "text": '),
                 r"corpus\.jsonl, line 2: not valid JSON"),
    "not an object": (lambda f: _replace_line(f/"queries.jsonl", 2, '["q2", "flutter"]'),
                      r"queries\.jsonl, line 2: expected a JSON object, got list"),
    "no _id": (lambda f: _replace_line(f/"corpus.jsonl", 3, '{"text": "plate"}'),
               r"corpus\.jsonl, line 3: no '_id' key"),
    "no text": (lambda f: _replace_line(f/"queries.jsonl", 1, '{"_id": "q1"}'),
                r"queries\.jsonl, line 1: no 'text' key"),
    "text not a string": (lambda f: _replace_line(f/"corpus.jsonl", 1, '{"_id": "d1", "text": 3}'),
                          r"corpus\.jsonl, line 1: 'text' is 3, not a string"),
    "duplicate doc": (lambda f: _replace_line(f/"corpus.jsonl", 4, '{"_id": "d1", "text": "again"}'),
                      r"corpus\.jsonl, line 4: duplicate doc id 'd1' \(first at line 1\)"),
    "duplicate query": (lambda f: _append(f/"queries.jsonl", '{"_id": "q2", "text": "again"}\n'),
                        r"queries\.jsonl, line 4: duplicate query id 'q2' \(first at line 2\)"),
    "unknown ids": (lambda f: _append(f/"qrels"/"dev.tsv", "q9\td1\t1\nq2\td99\t1\nq8\td98\t2\n"),
                    r"dev\.tsv, line 3: 3 judgment\(s\) name ids not in queries\.jsonl or corpus\.jsonl "
                    r"\(2 query, 2 doc\), e\.g\. line 3: query 'q9'; line 4: doc 'd99'"),
    "non-integer gain": (lambda f: _replace_line(f/"qrels"/"test.tsv", 3, "q3\td2\t0.5"),
                         r"test\.tsv, line 3: gain '0\.5' is not an integer"),
    "field count": (lambda f: _replace_line(f/"qrels"/"train.tsv", 2, "q1\td1"),
                    r"train\.tsv, line 2: expected 3 fields"),
    "spaces not tabs": (lambda f: _replace_line(f/"qrels"/"train.tsv", 2, "q1 d1 2"),
                        r"train\.tsv, line 2: expected 3 fields .*tab-separated"),
    "no header": (lambda f: (f/"qrels"/"dev.tsv").write_text("q2\td2\t1\n"),
                  r"dev\.tsv, line 1: expected the header line 'query-id<TAB>corpus-id<TAB>score'"),
    "duplicate judgment": (lambda f: _append(f/"qrels"/"test.tsv", "q3\td5\t2\n"),
                           r"test\.tsv, line 4: query 'q3' judges doc 'd5' again \(first at .*test\.tsv line 2\)"),
    "judged in two splits": (lambda f: _append(f/"qrels"/"test.tsv", "q1\td1\t1\n"),
                             r"test\.tsv, line 4: query 'q1' judges doc 'd1' again \(first at .*train\.tsv line 2\)"),
    "not utf-8": (lambda f: (f/"corpus.jsonl").write_bytes(b'{"_id": "d1", "text": "ok"}\n{"_id": "d2", "text": "caf\xe9"}\n'),
                  r"corpus\.jsonl, line 2: not valid UTF-8 at byte offset 54 \(byte b'\\xe9'\)"),
    "no queries file": (lambda f: (f/"queries.jsonl").unlink(),
                        r"has no queries\.jsonl; a BEIR folder holds corpus\.jsonl, queries\.jsonl, qrels/<split>\.tsv"),
}


@pytest.mark.parametrize("case", list(BEIR_CASES))
def test_bad_beir_input(tmp_path, case):
    spoil, message = BEIR_CASES[case]
    spoil(write_beir(tmp_path))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        with pytest.raises(ValueError, match=message):
            load_collection(tmp_path)
    assert not seen  # the error comes first: the empty-document warning is never emitted


TREC_CASES = {
    "field count": (lambda f: _replace_line(f/"qrels.trec", 3, "2 0 9"),
                    r"qrels\.trec, line 3: expected 4 fields `qid 0 docid gain`"),
    "non-integer gain": (lambda f: _replace_line(f/"qrels.trec", 1, "1 0 7 high"),
                         r"qrels\.trec, line 1: gain 'high' is not an integer"),
    "unknown doc": (lambda f: _append(f/"qrels.trec", "1 0 70 1\n"),
                    r"qrels\.trec, line 5: 1 judgment\(s\) name ids not in queries\.csv or docs\.csv "
                    r"\(0 query, 1 doc\), e\.g\. line 5: doc '70'"),
    "duplicate doc": (lambda f: _append(f/"docs.csv", "7,heat again\n"),
                      r"docs\.csv, line 5: duplicate doc id '7' \(first at line 2\)"),
    "missing id": (lambda f: _append(f/"queries.csv", ",orphan\n"),
                   r"queries\.csv, line 4: query without an id"),
    "wrong columns": (lambda f: (f/"docs.csv").write_text("key,body\n7,heat\n"),
                      r"docs\.csv, line 1: header has columns \['key', 'body'\]"),
    "not utf-8": (lambda f: (f/"queries.csv").write_bytes(b"id,text\n1,slab\n2,\xff\xfe\n"),
                  r"queries\.csv, line 3: not valid UTF-8 at byte offset 17 \(byte b'\\xff'\)"),
    "two docs files": (lambda f: (f/"docs.tsv").write_text("id\ttext\n7\theat\n"),
                       r"has both docs\.csv and docs\.tsv"),
}


@pytest.mark.parametrize("case", list(TREC_CASES))
def test_bad_trec_input(tmp_path, case):
    spoil, message = TREC_CASES[case]
    spoil(write_trec(tmp_path))
    with pytest.raises(ValueError, match=message):
        load_quietly(tmp_path)


def test_folder_in_neither_layout(tmp_path):
    (tmp_path/"notes.txt").write_text("hello")
    with pytest.raises(ValueError, match=r"neither a BEIR folder \(corpus\.jsonl, queries\.jsonl, qrels/<split>\.tsv\) "
                                         r"nor a TREC-style folder \(docs\.csv or docs\.tsv, .*qrels\.trec or qrels\.txt\); "
                                         r"it holds notes\.txt"):
        load_collection(tmp_path)
    with pytest.raises(FileNotFoundError, match="no such folder"):
        load_collection(tmp_path/"missing")


# ----------------------------------------------------------------------------- training rows

WORDS = "heat slab wing flutter shock nozzle plate layer beam shell panel vortex jet drag lift fluid".split()


def bm25_collection(folder: Path) -> Collection:
    "40 documents; each query's words occur in only a few of them, so BM25's top 5 is a small, known pool."
    docs = [{"_id": f"d{i}", "text": f"{WORDS[i % 16]} {WORDS[(3 * i + 1) % 16]} study {i}"} for i in range(40)]
    queries = [{"_id": "qa", "text": "heat slab"}, {"_id": "qb", "text": "shock nozzle"},
               {"_id": "qc", "text": "vortex drag"}, {"_id": "qd", "text": "unjudged query"}]
    (folder/"qrels").mkdir(parents=True)
    _jsonl(folder/"corpus.jsonl", docs)
    _jsonl(folder/"queries.jsonl", queries)
    _tsv_qrels(folder/"qrels"/"train.tsv", [("qa", "d0", 2), ("qa", "d16", 1), ("qb", "d4", 3)])
    _tsv_qrels(folder/"qrels"/"test.tsv", [("qc", "d11", 1), ("qc", "d27", 0)])
    return load_collection(folder)


def test_triples_counts_and_scores(tmp_path):
    data = bm25_collection(tmp_path)
    rows = collection_triples(data, negatives=2, seed=0)
    assert rows.columns.tolist() == ["query_id", "doc_id", "query", "doc", "score"]
    judged = {(q, d): g for q, d, g in data.qrels[["query_id", "doc_id", "gain"]].itertuples(index=False)}
    pairs = list(zip(rows.query_id, rows.doc_id))
    assert len(set(pairs)) == len(pairs)
    assert {pair: s for pair, s in zip(pairs, rows.score) if pair in judged} == judged
    unjudged = rows[[pair not in judged for pair in pairs]]
    assert (unjudged.score == 0).all()
    assert unjudged.query_id.value_counts().to_dict() == {"qa": 4, "qb": 2, "qc": 4}  # 2 x judged count; qd none
    assert rows.query_id.unique().tolist() == ["qa", "qb", "qc"]
    texts = dict(zip(data.docs.doc_id, data.docs.text))
    assert rows.doc.tolist() == [texts[d] for d in rows.doc_id]
    assert set(rows[rows.query_id == "qb"]["query"]) == {"shock nozzle"}
    assert rows.groupby("query_id", sort=False).score.apply(lambda s: s.is_monotonic_decreasing).all()


def test_triples_split_and_query_ids(tmp_path):
    data = bm25_collection(tmp_path)
    assert set(collection_triples(data, split="test").query_id) == {"qc"}
    assert set(collection_triples(data, query_ids=["qb"]).query_id) == {"qb"}
    with pytest.raises(ValueError, match=r"split 'dev' is not in .*splits: test, train"):
        collection_triples(data, split="dev")
    with pytest.raises(ValueError, match=r"1 query id\(s\) are not in the collection, e\.g\. \['zz'\]"):
        collection_triples(data, query_ids=["qa", "zz"])
    with pytest.raises(ValueError, match="negatives must be an integer >= 0"):
        collection_triples(data, negatives=-1)


def test_triples_are_deterministic(tmp_path):
    data = bm25_collection(tmp_path)
    first = collection_triples(data, negatives=3, hard_negatives=1, depth=5, seed=1)
    pd.testing.assert_frame_equal(first, collection_triples(data, negatives=3, hard_negatives=1, depth=5, seed=1))
    assert first.doc_id.tolist() != collection_triples(data, negatives=3, hard_negatives=1, depth=5, seed=2).doc_id.tolist()


def test_hard_negatives_come_from_bm25_top_hits(tmp_path):
    data = bm25_collection(tmp_path)
    rows = collection_triples(data, negatives=0, hard_negatives=2, depth=5, seed=0)
    bm25 = BM25Baseline().index(data.docs.doc_id.tolist(), data.docs.text.tolist())
    for query_id in ["qa", "qb", "qc"]:
        top = set(bm25.search([data.queries.set_index("query_id").text[query_id]], k=5).ids[0])
        judged = set(data.qrels[data.qrels.query_id == query_id].doc_id)
        hard = rows[(rows.query_id == query_id) & ~rows.doc_id.isin(judged)]
        n_judged = len(judged)
        assert len(hard) == min(2 * n_judged, len(top - judged)) > 0
        assert set(hard.doc_id) <= top - judged  # from BM25's top 5, never a judged pair
        assert (hard.score == 0).all()
    # with random negatives too, the two kinds never repeat a document
    both = collection_triples(data, negatives=2, hard_negatives=2, depth=5, seed=0)
    assert not both.duplicated(["query_id", "doc_id"]).any()
    assert len(both) == len(rows) + 2 * len(data.qrels)

