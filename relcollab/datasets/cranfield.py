"""The Cranfield test collection: find it, parse it, split it, and turn it into training pairs.

Cranfield (University of Glasgow IR group distribution) has three files in SMART format:

- ``cran.all.1400``: 1400 aeronautics abstracts; fields ``.I`` id, ``.T`` title, ``.A`` authors,
  ``.B`` source, ``.W`` abstract.
- ``cran.qry``: 225 queries; fields ``.I`` id and ``.W`` text.
- ``cranqrel``: judgments ``query_position doc_id code`` with Cleverdon's codes 1 (complete answer)
  .. 4 (minimum interest).

Quirks handled by the parser (all documented on :func:`load_cranfield`):

- ``cran.qry`` has CRLF line endings; both SMART files end with an empty ``.I`` record (skipped).
- Query ``.I`` ids are not 1..225 (they run to 365); ``cranqrel`` numbers queries by their
  POSITION 1..225 in ``cran.qry``. ``queries.query_id`` is that position, ``original_id`` the ``.I``.
- Documents 471 and 995 have every field empty (their ``text`` is ``''``).
- Documents 240, 576 and 578 contain stray repeated field markers inside their abstract.
"""
from __future__ import annotations

import os
import re
import socket
import warnings
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable
from urllib.parse import urlparse

import numpy as np
import pandas as pd

from ..retrieval.trec import write_qrels
from .collection import Collection

__all__ = [
    "CRANFIELD_ENV", "CRANFIELD_URL", "CRANFIELD_FILES", "Cranfield", "find_cranfield",
    "load_cranfield", "cranfield_split", "cranfield_triples", "write_cranfield",
]

CRANFIELD_ENV = "RELCOLLAB_CRANFIELD"
CRANFIELD_URL = "http://ir.dcs.gla.ac.uk/resources/test_collections/cran/cran.tar.gz"
DOCS_FILE, QUERIES_FILE, QRELS_FILE = "cran.all.1400", "cran.qry", "cranqrel"
CRANFIELD_FILES = (DOCS_FILE, QUERIES_FILE, QRELS_FILE)
VALID_CODES = (1, 2, 3, 4)
# Codes some distributions carry that are not graded relevance: -1 (no relevance / unknown in
# some copies of cranqrel) and 5 (Cleverdon's "of no interest"). They are dropped with a warning.
DROPPED_CODES = (-1, 5)
CONNECT_TIMEOUT_S = 3.0

_ID_MARKER = re.compile(r"^\.I(?:\s+(\S+))?\s*$")
_FIELD_MARKER = re.compile(r"^\.([A-Z])\s*$")
_HOW_TO_FIX = (f"pass a local path load_cranfield('path/to/cranfield') "
               f"or set {CRANFIELD_ENV}=path/to/cranfield")


class Cranfield(Collection):
    """The parsed collection: ``docs``, ``queries``, ``qrels`` and the directory they came from (a `Collection`).

    Example::

        data = load_cranfield()
        data            # Cranfield(1400 docs, 225 queries, 1837 qrels, path='...')
        data.qrels.head()
    """


# ----------------------------------------------------------------------------- locating the files

def find_cranfield(path: str | os.PathLike | None = None) -> Path:
    """Directory holding ``cran.all.1400``, ``cran.qry`` and ``cranqrel``.

    Order: the ``path`` argument; else the ``RELCOLLAB_CRANFIELD`` environment variable; else a
    download of :data:`CRANFIELD_URL` with fastai's ``untar_data`` (into fastai's data dir).
    Offline, the download fails at once with a ``ConnectionError`` that says what to do.

    Example::

        find_cranfield('/data/cranfield')   # PosixPath('/data/cranfield')
    """
    chosen = path if path is not None else os.environ.get(CRANFIELD_ENV) or None
    if chosen is None:
        return _download_cranfield()
    return _check_directory(Path(chosen).expanduser())


def _check_directory(directory: Path) -> Path:
    "Return `directory` if it holds the three Cranfield files, else raise FileNotFoundError."
    missing = [name for name in CRANFIELD_FILES if not (directory/name).is_file()]
    if missing:
        raise FileNotFoundError(
            f"Cranfield directory {directory} is missing {', '.join(missing)}. Expected a directory "
            f"holding {', '.join(CRANFIELD_FILES)} (unpacked from {CRANFIELD_URL}); "
            f"{_HOW_TO_FIX}.")
    return directory


def _offline_error(url: str, cause: Exception) -> ConnectionError:
    return ConnectionError(f"could not download Cranfield from {url} ({cause}); {_HOW_TO_FIX}")


def _require_connection(url: str, timeout: float = CONNECT_TIMEOUT_S) -> None:
    "Fail fast with a helpful ConnectionError when the host of `url` cannot be reached."
    parts = urlparse(url)
    try:
        with socket.create_connection((parts.hostname, parts.port or 80), timeout=timeout):
            pass
    except OSError as cause:
        raise _offline_error(url, cause) from cause


def _download_cranfield(url: str = CRANFIELD_URL) -> Path:
    "Download and unpack `url` with fastai's `untar_data`; return the directory with the files."
    _require_connection(url)
    from fastai.data.external import untar_data  # heavy import, only when downloading
    try:
        extracted = Path(untar_data(url))
    except OSError as cause:  # urllib's URLError/HTTPError are OSErrors
        raise _offline_error(url, cause) from cause
    directory = _locate_collection(extracted)
    print(f"Cranfield downloaded to {directory}")
    return directory


def _locate_collection(extracted: Path) -> Path:
    "The directory under `extracted` (itself included) that contains cran.all.1400."
    if (extracted/DOCS_FILE).is_file():
        return _check_directory(extracted)
    found = sorted(extracted.rglob(DOCS_FILE))
    if not found:
        raise FileNotFoundError(f"{DOCS_FILE} not found under {extracted} after downloading "
                                f"{CRANFIELD_URL}; {_HOW_TO_FIX}.")
    return _check_directory(found[0].parent)


# ----------------------------------------------------------------------------- SMART parsing

@dataclass
class _Record:
    raw_id: str | None
    line: int
    fields: dict[str, list[str]] = field(default_factory=dict)
    current: str | None = None

    def has_text(self) -> bool:
        return any(line.strip() for lines in self.fields.values() for line in lines)


def _read_lines(path: Path) -> list[str]:
    "Lines of `path` without line endings (CRLF or LF)."
    text = path.read_text(encoding="utf-8", errors="replace")
    return [line.rstrip("\r") for line in text.replace("\r\n", "\n").split("\n")]


def _malformed(path: Path, number: int, problem: str) -> ValueError:
    return ValueError(f"{path}, line {number}: {problem}. Fix or re-download the file "
                      f"({CRANFIELD_URL}).")


def _add_line(record: _Record, line: str, path: Path, number: int, allowed: str) -> None:
    """Add one line to `record`. The first marker of a field opens it; a marker seen again in the
    same record is a stray (cran.all.1400 docs 240, 576, 578): its line is dropped and the text
    after it continues the field being read."""
    marker = _FIELD_MARKER.match(line)
    if marker:
        name = marker.group(1)
        if name not in allowed:
            raise _malformed(path, number, f"unknown field marker {line.strip()!r} "
                                           f"(expected one of {', '.join('.' + a for a in allowed)})")
        if name not in record.fields:
            record.fields[name], record.current = [], name
    elif record.current is not None:
        record.fields[record.current].append(line)
    elif line.strip():
        raise _malformed(path, number, f"text before any field marker in the record "
                                       f"starting at line {record.line}: {line.strip()!r}")


def _parse_smart(path: Path, allowed: str) -> list[_Record]:
    "Records of a SMART file; empty `.I` records without an id (trailing ones) are skipped."
    records: list[_Record] = []
    for number, line in enumerate(_read_lines(path), start=1):
        id_marker = _ID_MARKER.match(line)
        if id_marker:
            records.append(_Record(id_marker.group(1), number))
        elif records:
            _add_line(records[-1], line, path, number, allowed)
        elif line.strip():
            raise _malformed(path, number, f"text before the first '.I' record: {line.strip()!r}")
    for record in records:
        if record.raw_id is None and record.has_text():
            raise _malformed(path, record.line, "record with text but no id after '.I'")
    return [record for record in records if record.raw_id is not None]


def _record_id(record: _Record, path: Path) -> int:
    try:
        return int(record.raw_id)
    except ValueError:
        raise _malformed(path, record.line, f"'.I' id {record.raw_id!r} is not an integer") from None


def _field_text(record: _Record, name: str) -> str:
    "A field's lines joined with single spaces, stripped ('' when the field is absent)."
    return " ".join(line.strip() for line in record.fields.get(name, []) if line.strip())


def _unique_ids(records: list[_Record], path: Path) -> list[int]:
    ids, first_line = [], {}
    for record in records:
        record_id = _record_id(record, path)
        if record_id in first_line:
            raise _malformed(path, record.line, f"duplicate id {record_id} "
                                                f"(first at line {first_line[record_id]})")
        first_line[record_id] = record.line
        ids.append(record_id)
    return ids


def _parse_docs(path: Path) -> pd.DataFrame:
    records = _parse_smart(path, allowed="TABW")
    titles = [_field_text(record, "T") for record in records]
    abstracts = [_field_text(record, "W") for record in records]
    return pd.DataFrame({
        "doc_id": np.array(_unique_ids(records, path), dtype=np.int64),
        "title": titles,
        "abstract": abstracts,
        "text": [f"{title} {abstract}".strip() for title, abstract in zip(titles, abstracts)],
    })


def _parse_queries(path: Path) -> pd.DataFrame:
    records = _parse_smart(path, allowed="W")
    return pd.DataFrame({
        "query_id": np.arange(1, len(records) + 1, dtype=np.int64),
        "original_id": np.array(_unique_ids(records, path), dtype=np.int64),
        "text": [_field_text(record, "W") for record in records],
    })


# ----------------------------------------------------------------------------- qrels

def _qrel_fields(line: str, path: Path, number: int) -> tuple[int, int, int]:
    parts = line.split()
    if len(parts) != 3:
        raise _malformed(path, number, f"expected 'query_position doc_id code', got {line.strip()!r}")
    try:
        return int(parts[0]), int(parts[1]), int(parts[2])
    except ValueError:
        raise _malformed(path, number, f"non-integer field in {line.strip()!r}") from None


def _check_qrel(ids: tuple[int, int, int], n_queries: int, doc_ids: set[int],
                path: Path, number: int) -> None:
    query_id, doc_id, code = ids
    if not 1 <= query_id <= n_queries:
        raise _malformed(path, number, f"query position {query_id} outside 1..{n_queries} "
                                       f"(positions count the records of {QUERIES_FILE})")
    if doc_id not in doc_ids:
        raise _malformed(path, number, f"doc id {doc_id} is not in {DOCS_FILE}")
    if code not in VALID_CODES + DROPPED_CODES:
        raise _malformed(path, number, f"relevance code {code} is not one of 1..4 "
                                       f"(or {DROPPED_CODES}, which are dropped)")


def _parse_qrels(path: Path, n_queries: int, doc_ids: set[int]) -> pd.DataFrame:
    rows, seen, dropped = [], {}, Counter()
    for number, line in enumerate(_read_lines(path), start=1):
        if not line.strip():
            continue
        ids = _qrel_fields(line, path, number)
        _check_qrel(ids, n_queries, doc_ids, path, number)
        if ids[:2] in seen:
            raise _malformed(path, number, f"pair {ids[:2]} judged twice (also line {seen[ids[:2]]})")
        seen[ids[:2]] = number
        if ids[2] in DROPPED_CODES:
            dropped[ids[2]] += 1
        else:
            rows.append(ids)
    if dropped:
        warnings.warn(f"{path}: dropped judgments with codes outside 1..4: {dict(dropped)}")
    qrels = pd.DataFrame(rows, columns=["query_id", "doc_id", "code"], dtype=np.int64)
    return qrels.assign(gain=5 - qrels["code"])


def load_cranfield(path: str | os.PathLike | None = None) -> Cranfield:
    """Parse Cranfield from `path`, else ``RELCOLLAB_CRANFIELD``, else a download (see
    :func:`find_cranfield`).

    - ``docs``: ``doc_id`` (the ``.I`` id), ``title``, ``abstract``, ``text`` = title + ' ' + abstract
      (runs of spaces inside a line are kept as in the file).
      Multi-line fields are joined with single spaces. Docs 471 and 995 are empty (``text == ''``).
      A field marker repeated inside a record (docs 240, 576, 578) is a stray: dropped, and its text
      kept in the field being read.
    - ``queries``: ``query_id`` = position 1..n in ``cran.qry``, ``original_id`` = its ``.I`` id,
      ``text``.
    - ``qrels``: ``query_id`` (position), ``doc_id``, ``code`` 1..4, ``gain`` = 5 - code (4..1).
      Codes -1 and 5 (not in the Glasgow copy) are dropped with a warning.

    Malformed records, unknown markers, duplicate ids and qrels pointing outside the collection
    raise ``ValueError`` naming the file and line.

    Example::

        data = load_cranfield('/data/cranfield')
        data.queries.loc[data.queries.query_id == 225, 'original_id']   # 365
    """
    directory = find_cranfield(path)
    docs = _parse_docs(directory/DOCS_FILE)
    queries = _parse_queries(directory/QUERIES_FILE)
    qrels = _parse_qrels(directory/QRELS_FILE, len(queries), set(docs["doc_id"].tolist()))
    return Cranfield(docs=docs, queries=queries, qrels=qrels, path=directory)


# ----------------------------------------------------------------------------- splits and pairs

def _as_query_ids(queries_or_ids: Cranfield | pd.DataFrame | Iterable[int]) -> list[int]:
    if isinstance(queries_or_ids, Cranfield):
        queries_or_ids = queries_or_ids.queries
    if isinstance(queries_or_ids, pd.DataFrame):
        queries_or_ids = queries_or_ids["query_id"]
    return sorted(int(query_id) for query_id in queries_or_ids)


def cranfield_split(queries_or_ids: Cranfield | pd.DataFrame | Iterable[int],
                    fold: int = 0, n_folds: int = 5) -> tuple[list[int], list[int]]:
    """Benchmark split: test queries are those whose position ``query_id % n_folds == fold``.

    Accepts a :class:`Cranfield`, its ``queries`` frame, or query ids. Returns sorted
    ``(train_ids, test_ids)``.

    >>> cranfield_split(range(1, 11), fold=0, n_folds=5)
    ([1, 2, 3, 4, 6, 7, 8, 9], [5, 10])
    """
    if not isinstance(n_folds, (int, np.integer)) or n_folds < 2:
        raise ValueError(f"n_folds must be an integer >= 2, got {n_folds!r}")
    if not isinstance(fold, (int, np.integer)) or not 0 <= fold < n_folds:
        raise ValueError(f"fold must be an integer in 0..{n_folds - 1}, got {fold!r}")
    query_ids = _as_query_ids(queries_or_ids)
    test_ids = [query_id for query_id in query_ids if query_id % n_folds == fold]
    train_ids = [query_id for query_id in query_ids if query_id % n_folds != fold]
    return train_ids, test_ids


def _chosen_query_ids(data: Cranfield, query_ids: Iterable[int] | None) -> list[int]:
    known = set(data.queries["query_id"].tolist())
    chosen = sorted(known) if query_ids is None else sorted({int(q) for q in query_ids})
    unknown = [query_id for query_id in chosen if query_id not in known]
    if unknown:
        raise ValueError(f"query ids {unknown[:10]} are not query positions 1..{len(known)}")
    return chosen


def _sample_unjudged(data: Cranfield, judged: pd.DataFrame, query_ids: list[int],
                     negatives: int, seed: int, negative_pool: str = "all") -> pd.DataFrame:
    "For each query, negatives x n_judged docs it did not judge, uniform without replacement, score 0."
    rng = np.random.default_rng(seed)
    pools = {"all": data.docs["doc_id"].to_numpy(), "judged": judged["doc_id"].to_numpy()}
    if negative_pool not in pools:
        raise ValueError(f"negative_pool must be 'all' or 'judged', got {negative_pool!r}")
    all_docs = np.unique(pools[negative_pool])
    judged_by_query = judged.groupby("query_id")["doc_id"].apply(np.asarray).to_dict()
    frames = [pd.DataFrame(columns=["query_id", "doc_id", "score"], dtype=np.int64)]
    for query_id in query_ids:
        judged_docs = judged_by_query.get(query_id, np.array([], dtype=np.int64))
        pool = np.setdiff1d(all_docs, judged_docs)
        size = min(negatives * len(judged_docs), len(pool))
        picks = rng.choice(pool, size=size, replace=False)
        frames.append(pd.DataFrame({"query_id": query_id, "doc_id": picks, "score": 0}))
    return pd.concat(frames, ignore_index=True).astype(np.int64)


def cranfield_triples(data: Cranfield, query_ids: Iterable[int] | None = None,
                      negatives: int = 1, seed: int = 0, negative_pool: str = "all") -> pd.DataFrame:
    """Training pairs ``query_id, doc_id, query, doc, score`` for `query_ids` (default: all).

    Every judged pair gets ``score = gain`` (1..4). For each query, ``negatives`` x (its number of
    judged docs) unjudged docs are drawn uniformly without replacement (numpy Generator seeded by
    `seed`, so the result is deterministic) with ``score = 0``. ASSUMPTION: unjudged is treated as
    irrelevant; Cranfield's unjudged docs were not judged irrelevant, only not judged.
    ``negative_pool='judged'`` draws them only from documents judged for the other chosen queries, so
    a model cannot separate them from relevant ones by what the document is alone (a "judged-looking"
    prior); it has to match the query. Sorted by query_id, score descending, doc_id.

    Example::

        pairs = cranfield_triples(load_cranfield(), query_ids=[1, 2], negatives=2, seed=0)
        pairs.score.value_counts()
    """
    if not isinstance(negatives, (int, np.integer)) or negatives < 0:
        raise ValueError(f"negatives must be an integer >= 0, got {negatives!r}")
    chosen = _chosen_query_ids(data, query_ids)
    judged = data.qrels[data.qrels["query_id"].isin(chosen)]
    positives = judged.rename(columns={"gain": "score"})[["query_id", "doc_id", "score"]]
    unjudged = _sample_unjudged(data, judged, chosen, int(negatives), seed, negative_pool)
    pairs = pd.concat([positives.astype(np.int64), unjudged], ignore_index=True)
    pairs = pairs.merge(data.queries[["query_id", "text"]].rename(columns={"text": "query"}),
                        on="query_id", how="left")
    pairs = pairs.merge(data.docs[["doc_id", "text"]].rename(columns={"text": "doc"}),
                        on="doc_id", how="left")
    pairs = pairs.sort_values(["query_id", "score", "doc_id"], ascending=[True, False, True])
    return pairs[["query_id", "doc_id", "query", "doc", "score"]].reset_index(drop=True)


# ----------------------------------------------------------------------------- export

def write_cranfield(data: Cranfield, out_dir: str | os.PathLike) -> dict[str, Path]:
    """Write generic files: ``docs.csv`` (id,text), ``queries.csv`` (id,text; id = query position)
    and ``qrels.trec`` (``qid 0 docid gain`` per line). Returns the paths under keys ``docs``,
    ``queries``, ``qrels``. Empty texts (docs 471, 995) are written as empty fields: read them back
    with ``keep_default_na=False``.

    Example::

        paths = write_cranfield(load_cranfield(), 'out/cranfield')
        paths['qrels'].read_text().splitlines()[0]    # '1 0 184 3'
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"docs": out_dir/"docs.csv", "queries": out_dir/"queries.csv",
             "qrels": out_dir/"qrels.trec"}
    docs = data.docs.rename(columns={"doc_id": "id"})[["id", "text"]]
    queries = data.queries.rename(columns={"query_id": "id"})[["id", "text"]]
    docs.to_csv(paths["docs"], index=False)
    queries.to_csv(paths["queries"], index=False)
    write_qrels(data.qrels.rename(columns={"query_id": "qid", "doc_id": "docid"}), paths["qrels"])
    return paths
