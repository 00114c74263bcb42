"""Any IR test collection as ``docs``, ``queries`` and ``qrels`` DataFrames, and training rows from it.

Two layouts are read by :func:`load_collection`:

- **BEIR** folder: ``corpus.jsonl`` (``_id``, ``title``, ``text``), ``queries.jsonl`` (``_id``, ``text``) and
  ``qrels/<split>.tsv`` (header ``query-id<TAB>corpus-id<TAB>score``).
- **TREC-style** folder, as :func:`relcollab.datasets.cranfield.write_cranfield` writes it: ``docs.csv``/``docs.tsv``
  and ``queries.csv``/``queries.tsv`` with columns ``id,text``, and ``qrels.trec``/``qrels.txt`` with lines
  ``qid 0 docid gain``.

Ids are strings. Every problem raises :class:`~relcollab.core.validation.RelevanceDataError` (a ``ValueError``)
naming the file and line, before anything is returned::

    data = load_collection('beir/scifact', split='test')   # Collection(5183 docs, 1109 queries, 339 qrels, ...)
    rows = collection_triples(data, negatives=1, hard_negatives=1)
"""
from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import pandas as pd

from ..core.validation import RelevanceDataError, RelevanceDataWarning, RelevanceFileNotFoundError, read_table

__all__ = ["Collection", "load_collection", "collection_triples", "BEIR_FILES", "TREC_FILES"]

BEIR_FILES = ("corpus.jsonl", "queries.jsonl", "qrels/<split>.tsv")
TREC_FILES = ("docs.csv or docs.tsv", "queries.csv or queries.tsv", "qrels.trec or qrels.txt")
BEIR_HEADER = ["query-id", "corpus-id", "score"]
SPLIT_ORDER = ("train", "dev", "test")
MAX_EXAMPLES = 5


@dataclass
class Collection:
    """A loaded collection: ``docs`` (doc_id, title, text), ``queries`` (query_id, text), ``qrels``
    (query_id, doc_id, gain[, split]) and the folder they came from.

    >>> load_collection('beir/scifact')  # doctest: +SKIP
    Collection(5183 docs, 1109 queries, 1258 qrels, path='beir/scifact')
    """
    docs: pd.DataFrame
    queries: pd.DataFrame
    qrels: pd.DataFrame
    path: Path

    def __repr__(self) -> str:
        return (f"{type(self).__name__}({len(self.docs)} docs, {len(self.queries)} queries, "
                f"{len(self.qrels)} qrels, path='{self.path}')")


# ----------------------------------------------------------------------------- reading lines

def _error(path: Path, line: int | None, problem: str, fix: str) -> RelevanceDataError:
    where = f"{path}, line {line}" if line else f"{path}"
    return RelevanceDataError(f"{where}: {problem}. {fix}")


def _lines(path: Path) -> Iterator[tuple[int, str]]:
    "(line number, text) of each line of `path`, decoded as UTF-8 (a leading byte-order mark is dropped)."
    offset = 0
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError as error:
                bad = raw[error.start:error.start + 1]
                raise _error(path, number, f"not valid UTF-8 at byte offset {offset + error.start} "
                             f"(byte {bad!r})", "Re-save the file as UTF-8.") from None
            yield number, (text.lstrip("\ufeff") if number == 1 else text).rstrip("\r\n")
            offset += len(raw)


def _check_unique(ids: list[str], lines: list[int], path: Path, what: str) -> None:
    first_line: dict[str, int] = {}
    for item, line in zip(ids, lines):
        if item in first_line:
            raise _error(path, line, f"duplicate {what} id {item!r} (first at line {first_line[item]})",
                         "Give every record its own id, or drop the repeat.")
        first_line[item] = line


# ----------------------------------------------------------------------------- BEIR jsonl

def _json_object(path: Path, number: int, line: str) -> dict:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as error:
        raise _error(path, number, f"not valid JSON ({error.msg} at column {error.colno})",
                     "Write one JSON object per line.") from None
    if not isinstance(record, dict):
        raise _error(path, number, f"expected a JSON object, got {type(record).__name__}",
                     "Write one JSON object per line.")
    return record


def _record_id(record: dict, path: Path, number: int) -> str:
    if "_id" not in record:
        raise _error(path, number, f"no '_id' key (keys: {', '.join(map(repr, record)) or 'none'})",
                     "Give every line an '_id'.")
    value = record["_id"]
    if isinstance(value, bool) or not isinstance(value, (str, int)) or not str(value).strip():
        raise _error(path, number, f"'_id' is {value!r}, not a non-empty string", "Make '_id' a string.")
    return str(value).strip()


def _text(record: dict, key: str, path: Path, number: int, required: bool) -> str:
    "record[key] as a string; an optional key may be absent or null ('')."
    if key not in record and required:
        raise _error(path, number, f"no {key!r} key (keys: {', '.join(map(repr, record)) or 'none'})",
                     f"Give every line a {key!r} (an empty string is allowed).")
    value = record.get(key)
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise _error(path, number, f"{key!r} is {value!r}, not a string", f"Make {key!r} a string.")
    return value


def _read_jsonl(path: Path, what: str) -> pd.DataFrame:
    "Records of a BEIR jsonl file as a frame ``id, title, text, line`` (text = title + ' ' + text)."
    rows = []
    for number, line in _lines(path):
        if not line.strip():
            continue
        record = _json_object(path, number, line)
        title = _text(record, "title", path, number, required=False) if what == "doc" else ""
        text = _text(record, "text", path, number, required=True)
        rows.append((_record_id(record, path, number), title,
                     " ".join(part for part in (title, text) if part), number))
    if not rows:
        raise _error(path, None, "has no records", "Write one JSON object per line.")
    frame = pd.DataFrame(rows, columns=["id", "title", "text", "line"])
    _check_unique(frame["id"].tolist(), frame["line"].tolist(), path, what)
    return frame


# ----------------------------------------------------------------------------- TREC-style tables

def _read_id_text_table(path: Path, what: str) -> pd.DataFrame:
    "A .csv/.tsv with an id column and a 'text' column (optional 'title') as ``id, title, text, line``."
    for _ in _lines(path):  # UTF-8 check with the byte offset
        pass
    table = read_table(path, dtype=str)
    id_names = ("id", f"{what}_id", "_id")
    id_col = next((name for name in id_names if name in table.columns), None)
    if id_col is None or "text" not in table.columns:
        raise _error(path, 1, f"header has columns {list(map(str, table.columns))}",
                     f"Name the id column {' or '.join(map(repr, id_names))} and the text column 'text'.")
    lines = (table.index.to_numpy() + 2).tolist()  # line 1 is the header
    ids = table[id_col].fillna("").str.strip()
    if (ids == "").any():
        raise _error(path, lines[int(np.argmax((ids == "").to_numpy()))], f"{what} without an id",
                     "Give every row an id.")
    title = table["title"].fillna("") if "title" in table.columns else pd.Series("", index=table.index)
    text = [" ".join(part for part in pair if part) for pair in zip(title, table["text"].fillna(""))]
    frame = pd.DataFrame({"id": ids.tolist(), "title": title.tolist(), "text": text, "line": lines})
    _check_unique(frame["id"].tolist(), lines, path, what)
    return frame


# ----------------------------------------------------------------------------- qrels

def _gain(text: str, path: Path, number: int) -> int:
    "The gain as an int; gains <= 0 become 0 (judged, not relevant)."
    try:
        return max(int(text), 0)
    except ValueError:
        raise _error(path, number, f"gain {text!r} is not an integer", "Write integer gains (0 = not relevant).") from None


def _qrels_fields(path: Path, number: int, line: str, beir: bool) -> list[str]:
    fields = [field.strip() for field in line.split("\t")] if beir else line.split()
    expected, layout = (3, "query-id<TAB>corpus-id<TAB>score") if beir else (4, "qid 0 docid gain")
    if len(fields) != expected or not all(fields):
        hint = " (fields must be tab-separated)" if beir and "\t" not in line else ""
        raise _error(path, number, f"expected {expected} fields `{layout}`{hint}, got {line.strip()!r}",
                     "Fix or remove that line.")
    return fields


def _read_qrels(path: Path, beir: bool) -> pd.DataFrame:
    "Judgments of one qrels file as ``query_id, doc_id, gain, line, file``; BEIR files start with the header."
    rows, header_seen = [], not beir
    for number, line in _lines(path):
        if not line.strip():
            continue
        fields = _qrels_fields(path, number, line, beir)
        if not header_seen:
            if [field.lower() for field in fields] != BEIR_HEADER:
                raise _error(path, number, f"expected the header line 'query-id<TAB>corpus-id<TAB>score', "
                             f"got {line.strip()!r}", "Add that header as the first line.")
            header_seen = True
            continue
        query_id, doc_id, gain = (fields[0], fields[1], fields[2]) if beir else (fields[0], fields[2], fields[3])
        rows.append((query_id, doc_id, _gain(gain, path, number), number))
    if not rows:
        raise _error(path, None, "has no judgments", "Add lines `qid 0 docid gain`" if not beir
                     else "Add lines `query-id<TAB>corpus-id<TAB>score` below the header.")
    frame = pd.DataFrame(rows, columns=["query_id", "doc_id", "gain", "line"]).astype({"gain": np.int64})
    return frame.assign(file=str(path))


def _check_known(qrels: pd.DataFrame, path: Path, docs: pd.DataFrame, queries: pd.DataFrame,
                 names: tuple[str, str]) -> None:
    "Raise when judgments name query or doc ids that the queries or docs files do not hold."
    bad_query = ~qrels["query_id"].isin(set(queries["id"]))
    bad_doc = ~qrels["doc_id"].isin(set(docs["id"]))
    bad = qrels[bad_query | bad_doc]
    if bad.empty:
        return
    examples = [f"line {row.line}: " + (f"query {row.query_id!r}" if bad_query[index] else f"doc {row.doc_id!r}")
                for index, row in bad.head(MAX_EXAMPLES).iterrows()]
    raise _error(path, int(bad["line"].iloc[0]),
                 f"{len(bad)} judgment(s) name ids not in {names[1]} or {names[0]} "
                 f"({int(bad_query.sum())} query, {int(bad_doc.sum())} doc), e.g. {'; '.join(examples)}",
                 "Fix those ids or remove the lines (do the files belong to the same collection?).")


def _check_unique_pairs(qrels: pd.DataFrame) -> None:
    "Raise when a (query, doc) pair is judged twice, in one qrels file or in two."
    repeated = qrels.duplicated(["query_id", "doc_id"], keep=False)
    if not repeated.any():
        return
    first = qrels[repeated].iloc[0]
    same = qrels[repeated & (qrels["query_id"] == first.query_id) & (qrels["doc_id"] == first.doc_id)]
    second = same.iloc[1]
    raise _error(Path(second.file), int(second.line), f"query {first.query_id!r} judges doc {first.doc_id!r} "
                 f"again (first at {first.file} line {first.line})",
                 "Keep one judgment per (query, doc), or load one split with split=.")


# ----------------------------------------------------------------------------- folders

def _one_of(directory: Path, names: tuple[str, ...], layout: str, expected: tuple[str, ...]) -> Path:
    found = [directory/name for name in names if (directory/name).is_file()]
    if len(found) == 1:
        return found[0]
    problem = (f"has both {' and '.join(f.name for f in found)}" if found
               else f"has no {' or '.join(names)}")
    raise _error(directory, None, f"{problem}; a {layout} folder holds {', '.join(expected)}",
                 "Keep exactly one of them." if found else "Add the missing file.")


def _beir_splits(directory: Path, split: str | None) -> dict[str, Path]:
    found = {path.stem: path for path in sorted((directory/"qrels").glob("*.tsv"))}
    if not found:
        raise _error(directory/"qrels", None, "no <split>.tsv qrels files (e.g. test.tsv)",
                     f"A BEIR folder holds {', '.join(BEIR_FILES)}.")
    if split is not None and split not in found:
        raise _error(directory/"qrels", None, f"no split {split!r}; available: {', '.join(sorted(found))}",
                     "Pass one of those as split=, or split=None for all of them.")
    order = sorted(found, key=lambda name: (SPLIT_ORDER.index(name) if name in SPLIT_ORDER else len(SPLIT_ORDER), name))
    return {name: found[name] for name in order if split is None or name == split}


def _load_beir(directory: Path, split: str | None) -> tuple:
    docs_path = _one_of(directory, ("corpus.jsonl",), "BEIR", BEIR_FILES)
    queries_path = _one_of(directory, ("queries.jsonl",), "BEIR", BEIR_FILES)
    split_paths = _beir_splits(directory, split)
    docs, queries = _read_jsonl(docs_path, "doc"), _read_jsonl(queries_path, "query")
    frames = []
    for name, path in split_paths.items():
        qrels = _read_qrels(path, beir=True)
        _check_known(qrels, path, docs, queries, (docs_path.name, queries_path.name))
        frames.append(qrels.assign(split=name))
    qrels = pd.concat(frames, ignore_index=True)
    _check_unique_pairs(qrels)
    return docs_path, docs, queries, qrels


def _load_trec(directory: Path, split: str | None) -> tuple:
    if split is not None:
        raise _error(directory, None, f"is a TREC-style folder with one qrels file, so split={split!r} "
                     "cannot be chosen", "Pass split=None (splits exist only in BEIR folders).")
    docs_path = _one_of(directory, ("docs.csv", "docs.tsv"), "TREC-style", TREC_FILES)
    queries_path = _one_of(directory, ("queries.csv", "queries.tsv"), "TREC-style", TREC_FILES)
    qrels_path = _one_of(directory, ("qrels.trec", "qrels.txt"), "TREC-style", TREC_FILES)
    docs, queries = _read_id_text_table(docs_path, "doc"), _read_id_text_table(queries_path, "query")
    qrels = _read_qrels(qrels_path, beir=False)
    _check_known(qrels, qrels_path, docs, queries, (docs_path.name, queries_path.name))
    _check_unique_pairs(qrels)
    return docs_path, docs, queries, qrels


def _layout(directory: Path) -> str:
    if not directory.exists():
        raise RelevanceFileNotFoundError(f"{directory}: no such folder (working directory: {Path.cwd()}).")
    if not directory.is_dir():
        raise _error(directory, None, "is a file, not a folder", "Pass the folder that holds the collection.")
    if (directory/"corpus.jsonl").is_file():
        return "beir"
    if (directory/"docs.csv").is_file() or (directory/"docs.tsv").is_file():
        return "trec"
    found = sorted(path.name for path in directory.iterdir())[:10]
    raise _error(directory, None, f"is neither a BEIR folder ({', '.join(BEIR_FILES)}) nor a TREC-style "
                 f"folder ({', '.join(TREC_FILES)}); it holds {', '.join(found) or 'nothing'}",
                 "Point to a folder in one of those layouts.")


def _warn_empty(docs_path: Path, docs: pd.DataFrame) -> None:
    empty = docs["id"][docs["text"].str.strip() == ""]
    if len(empty):
        warnings.warn(f"{docs_path}: {len(empty)} document(s) have empty text (e.g. {', '.join(map(repr, empty[:MAX_EXAMPLES]))}); "
                      "they are kept.", RelevanceDataWarning, stacklevel=3)


def load_collection(path: str | os.PathLike, split: str | None = None) -> Collection:
    """Read a BEIR or TREC-style collection folder (see the module docstring) into a :class:`Collection`.

    - ``docs``: ``doc_id``, ``title`` (``''`` when absent), ``text`` = title + ' ' + text when a title exists.
    - ``queries``: ``query_id``, ``text``.
    - ``qrels``: ``query_id``, ``doc_id``, ``gain``; gains <= 0 are kept as 0 (judged, not relevant). BEIR qrels
      also have ``split``: ``split=None`` loads every ``qrels/*.tsv`` (train, dev, test first), ``split='test'``
      only ``qrels/test.tsv``. TREC-style folders have one qrels file (``split`` must be None).

    Ids are strings, in file order. Malformed lines, missing keys or columns, duplicate ids or judgments,
    judgments of unknown ids, non-integer gains, bytes that are not UTF-8 and folders in neither layout raise
    ``RelevanceDataError`` (a ``ValueError``) naming the file and line (in a .csv/.tsv, row + 1, which is off when
    a quoted text spans lines). Empty documents are allowed and counted in a ``RelevanceDataWarning``.

    >>> load_collection('beir/scifact', split='test').qrels.split.unique().tolist()  # doctest: +SKIP
    ['test']
    """
    directory = Path(path).expanduser()
    loader = _load_beir if _layout(directory) == "beir" else _load_trec
    docs_path, docs, queries, qrels = loader(directory, split)
    _warn_empty(docs_path, docs)
    return Collection(
        docs=pd.DataFrame({"doc_id": docs["id"], "title": docs["title"], "text": docs["text"]}),
        queries=pd.DataFrame({"query_id": queries["id"], "text": queries["text"]}),
        qrels=qrels.drop(columns=["line", "file"]).reset_index(drop=True),
        path=directory)


# ----------------------------------------------------------------------------- training rows

def _check_count(name: str, value, minimum: int = 0) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _split_qrels(collection: Collection, split: str | None) -> pd.DataFrame:
    qrels = collection.qrels
    if split is None:
        return qrels
    available = sorted(qrels["split"].unique()) if "split" in qrels.columns else []
    if split not in available:
        raise ValueError(f"split {split!r} is not in this collection's qrels (splits: "
                         f"{', '.join(available) or 'none, it has one qrels file'}); pass one of them or split=None.")
    return qrels[qrels["split"] == split]


def _chosen_queries(collection: Collection, qrels: pd.DataFrame, query_ids: Iterable | None) -> list[str]:
    "The chosen query ids in collection order (default: every query with a judgment in `qrels`)."
    known = collection.queries["query_id"].tolist()
    wanted = set(qrels["query_id"]) if query_ids is None else {str(q) for q in query_ids}
    unknown = sorted(wanted - set(known))
    if unknown:
        raise ValueError(f"{len(unknown)} query id(s) are not in the collection, e.g. {unknown[:MAX_EXAMPLES]}")
    return [query_id for query_id in known if query_id in wanted]


def _bm25_top(collection: Collection, query_ids: list[str], depth: int) -> dict[str, list[str]]:
    "BM25's top `depth` doc ids for each query."
    from ..retrieval.bm25 import BM25Baseline  # imports bm25s only when hard negatives are asked for
    bm25 = BM25Baseline().index(collection.docs["doc_id"].tolist(), collection.docs["text"].tolist())
    texts = collection.queries.set_index("query_id").loc[query_ids, "text"].tolist()
    ids = bm25.search(texts, k=min(depth, len(collection.docs))).ids
    return {query_id: list(row) for query_id, row in zip(query_ids, ids)}


def _draw(rng: np.random.Generator, n: int, excluded: set[int], size: int) -> np.ndarray:
    "Up to `size` positions in 0..n-1 outside `excluded`, uniform without replacement (cheap for large n)."
    size = min(size, n - len(excluded))
    if size <= 0:
        return np.empty(0, dtype=np.int64)
    picks = rng.choice(n, size=min(n, size + len(excluded)), replace=False)
    return picks[~np.isin(picks, np.fromiter(excluded, dtype=np.int64, count=len(excluded)))][:size]


def _negatives(collection: Collection, judged: pd.DataFrame, query_ids: list[str], counts: tuple[int, int],
               top: dict[str, list[str]], rng: np.random.Generator) -> pd.DataFrame:
    "Per query: hard negatives from `top`, then random unjudged docs; each count x the query's judged count."
    negatives, hard_negatives = counts
    doc_ids = collection.docs["doc_id"].to_numpy(dtype=object)
    position = {doc_id: index for index, doc_id in enumerate(doc_ids)}
    judged_by_query = judged.groupby("query_id", sort=False)["doc_id"].agg(list).to_dict()
    rows = []
    for query_id in query_ids:
        judged_docs = judged_by_query.get(query_id, [])
        excluded = {position[doc_id] for doc_id in judged_docs}
        pool = [position[doc_id] for doc_id in top.get(query_id, []) if position[doc_id] not in excluded]
        hard = [pool[i] for i in _draw(rng, len(pool), set(), hard_negatives * len(judged_docs))]
        unjudged = _draw(rng, len(doc_ids), excluded | set(hard), negatives * len(judged_docs))
        rows += [(query_id, doc_ids[index], 0) for index in [*hard, *unjudged.tolist()]]
    return pd.DataFrame(rows, columns=["query_id", "doc_id", "score"])


def collection_triples(collection: Collection, query_ids: Iterable | None = None, split: str | None = None,
                       negatives: int = 1, hard_negatives: int = 0, depth: int = 30, seed: int = 0) -> pd.DataFrame:
    """Training rows ``query_id, doc_id, query, doc, score`` for `query_ids` (default: every judged query).

    Every judged pair (of `split`, default all) gets ``score = gain`` (0 for judged non-relevant). Per query,
    ``hard_negatives`` x (its judged count) unjudged docs are drawn from BM25's top `depth` for the query
    (:class:`~relcollab.retrieval.bm25.BM25Baseline`), and ``negatives`` x (its judged count) unjudged docs uniformly
    from the rest of the collection, all with ``score = 0`` and fewer when the pool runs out. Draws use a numpy
    Generator seeded by `seed` (deterministic). Sorted by query (collection order), score descending, doc
    (collection order).

    >>> rows = collection_triples(load_collection('beir/scifact'), split='train', hard_negatives=1)  # doctest: +SKIP
    >>> rows.columns.tolist()  # doctest: +SKIP
    ['query_id', 'doc_id', 'query', 'doc', 'score']
    """
    counts = (_check_count("negatives", negatives), _check_count("hard_negatives", hard_negatives))
    depth = _check_count("depth", depth, minimum=1)
    qrels = _split_qrels(collection, split)
    chosen = _chosen_queries(collection, qrels, query_ids)
    judged = qrels[qrels["query_id"].isin(chosen)]
    top = _bm25_top(collection, chosen, depth) if counts[1] and chosen else {}
    unjudged = _negatives(collection, judged, chosen, counts, top, np.random.default_rng(seed))
    pairs = pd.concat([judged.rename(columns={"gain": "score"})[["query_id", "doc_id", "score"]], unjudged],
                      ignore_index=True)
    query_text = dict(zip(collection.queries["query_id"], collection.queries["text"]))
    doc_position = {doc_id: index for index, doc_id in enumerate(collection.docs["doc_id"])}
    query_position = {query_id: index for index, query_id in enumerate(chosen)}
    order = np.lexsort((pairs["doc_id"].map(doc_position).to_numpy(), -pairs["score"].to_numpy(),
                        pairs["query_id"].map(query_position).to_numpy()))
    pairs = pairs.iloc[order].reset_index(drop=True)
    pairs["query"] = pairs["query_id"].map(query_text)
    pairs["doc"] = collection.docs["text"].to_numpy()[pairs["doc_id"].map(doc_position).to_numpy()]
    return pairs.astype({"score": np.int64})[["query_id", "doc_id", "query", "doc", "score"]]
