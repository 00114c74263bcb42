"""TREC files as DataFrames: qrels (`qid 0 docid gain`) and runs (`qid Q0 docid rank score tag`).

A *run* is a DataFrame with columns `qid`, `docid` (strings), `score` (float) and `rank` (1..n per query);
*qrels* have `qid`, `docid` and an integer `gain` (0 = judged not relevant). Queries keep the order in
which they first appear; nothing is sorted by id (so query '10' stays after '9').

    run = run_frame(query_ids, learn.search(queries, index, k=100))
    write_run(run, 'model.trec', tag='relcollab'); run = read_run('model.trec')
"""
import math
from pathlib import Path

import numpy as np
import pandas as pd

from ..core.validation import RelevanceDataError, RelevanceFileNotFoundError

__all__ = ['RUN_COLUMNS', 'QRELS_COLUMNS', 'read_qrels', 'write_qrels', 'read_run', 'write_run', 'run_frame', 'ranked']

RUN_COLUMNS = ['qid', 'docid', 'score', 'rank']
QRELS_COLUMNS = ['qid', 'docid', 'gain']


def _fields(path: Path, n_fields: int, layout: str) -> list:
    "(line number, fields) of each non-blank line of `path`, which must have `n_fields` whitespace-separated fields."
    if not path.is_file(): raise RelevanceFileNotFoundError(f"{path}: no such file (working directory: {Path.cwd()}).")
    rows = []
    for number, line in enumerate(path.read_text(encoding='utf-8').splitlines(), start=1):
        fields = line.split()
        if not fields: continue
        if len(fields) != n_fields:
            raise RelevanceDataError(f"{path}, line {number}: expected {n_fields} fields `{layout}`, "
                                     f"got {len(fields)}: {line.strip()!r}.")
        rows.append((number, fields))
    if not rows: raise RelevanceDataError(f"{path}: the file has no `{layout}` lines.")
    return rows


def _number(text: str, kind, path: Path, number: int, what: str):
    try:
        value = kind(text)
    except ValueError:
        raise RelevanceDataError(f"{path}, line {number}: the {what} {text!r} is not {'an integer' if kind is int else 'a number'}.") from None
    if kind is float and not math.isfinite(value):
        raise RelevanceDataError(f"{path}, line {number}: the {what} {text!r} is not a finite number.")
    return value


def _check_unique_pairs(frame: pd.DataFrame, lines: list, path: Path):
    "Raises when a (qid, docid) pair appears twice, naming both lines."
    repeated = frame.duplicated(['qid', 'docid'], keep=False).to_numpy()
    if repeated.any():
        first = frame[repeated].iloc[0]
        at = [lines[i] for i in np.flatnonzero(repeated & (frame['qid'] == first.qid).to_numpy()
                                                & (frame['docid'] == first.docid).to_numpy())]
        raise RelevanceDataError(f"{path}: query {first.qid} lists document {first.docid} more than once "
                                 f"(lines {', '.join(map(str, at))}). Keep one line per (query, document).")


def read_qrels(path) -> pd.DataFrame:
    """Reads TREC qrels `qid 0 docid gain` into a DataFrame `qid, docid, gain` (ids as strings).

    >>> read_qrels('qrels.trec').head(1)  # doctest: +SKIP
      qid docid  gain
    0   1   184     3
    """
    path = Path(path)
    rows = _fields(path, 4, 'qid 0 docid gain')
    gains = [_number(fields[3], int, path, number, 'gain') for number, fields in rows]
    frame = pd.DataFrame({'qid': [f[0] for _, f in rows], 'docid': [f[2] for _, f in rows],
                          'gain': np.asarray(gains, dtype=np.int64)})
    _check_unique_pairs(frame, [number for number, _ in rows], path)
    return frame


def read_run(path) -> pd.DataFrame:
    """Reads a TREC run `qid Q0 docid rank score tag` into a DataFrame `qid, docid, score, rank` (file order).

    >>> read_run('bm25.trec').columns.tolist()  # doctest: +SKIP
    ['qid', 'docid', 'score', 'rank']
    """
    path = Path(path)
    rows = _fields(path, 6, 'qid Q0 docid rank score tag')
    frame = pd.DataFrame({'qid': [f[0] for _, f in rows], 'docid': [f[2] for _, f in rows],
                          'score': [_number(f[4], float, path, n, 'score') for n, f in rows],
                          'rank': np.asarray([_number(f[3], int, path, n, 'rank') for n, f in rows], dtype=np.int64)})
    _check_unique_pairs(frame, [number for number, _ in rows], path)
    return frame


def _check_ids(frame: pd.DataFrame, what: str):
    "TREC ids are single non-empty words: no whitespace."
    for col in ('qid', 'docid'):
        ids = frame[col].astype(str)
        bad = ids.str.contains(r'\s', regex=True) | (ids == '')
        if bad.any():
            raise RelevanceDataError(f"{what}: {col} {ids[bad].iloc[0]!r} is empty or contains whitespace, "
                                     "which TREC files cannot hold. Use ids without spaces.")


def _check_run(run: pd.DataFrame, what='run') -> pd.DataFrame:
    missing = [col for col in ('qid', 'docid', 'score') if col not in run.columns]
    if missing: raise RelevanceDataError(f"{what}: missing column(s) {missing}; a run has qid, docid, score[, rank].")
    run = run.assign(qid=run['qid'].astype(str), docid=run['docid'].astype(str),
                     score=pd.to_numeric(run['score']).astype(np.float64))
    if not np.isfinite(run['score'].to_numpy()).all(): raise RelevanceDataError(f"{what}: scores must be finite numbers.")
    return run


def ranked(run: pd.DataFrame) -> pd.DataFrame:
    """`run` with each query's documents sorted by score (ties: by `rank` if given, else as listed), `rank` 1..n.

    Queries keep the order in which they first appear.

    >>> ranked(pd.DataFrame({'qid': ['1', '1'], 'docid': ['a', 'b'], 'score': [0.1, 0.9]}))['docid'].tolist()
    ['b', 'a']
    """
    run = _check_run(run).reset_index(drop=True)
    tie_break = run['rank'].to_numpy() if 'rank' in run.columns else np.arange(len(run))
    query_order = pd.factorize(run['qid'])[0]
    order = np.lexsort((tie_break, -run['score'].to_numpy(), query_order))
    run = run.iloc[order].reset_index(drop=True)
    run['rank'] = run.groupby('qid', sort=False).cumcount().to_numpy() + 1
    return run[RUN_COLUMNS]


def run_frame(query_ids, results) -> pd.DataFrame:
    """A run DataFrame from query ids and `SearchResults` (ids and scores shaped (n_queries, k), best first).

    >>> run_frame(['q1'], SearchResults(np.array([['d2', 'd1']], dtype=object), np.array([[0.9, 0.1]])))  # doctest: +SKIP
    """
    query_ids = [str(q) for q in query_ids]
    ids, scores = np.asarray(results.ids), np.asarray(results.scores)
    if ids.shape != scores.shape or len(ids) != len(query_ids):
        raise ValueError(f"{len(query_ids)} query ids for results shaped {ids.shape} (ids) and {scores.shape} (scores).")
    k = ids.shape[1] if ids.ndim == 2 else 0
    return pd.DataFrame({'qid': np.repeat(np.asarray(query_ids, dtype=object), k), 'docid': ids.reshape(-1).astype(str),
                         'score': scores.reshape(-1).astype(np.float64), 'rank': np.tile(np.arange(1, k + 1), len(query_ids))})


def write_run(run: pd.DataFrame, path, tag: str = 'relcollab') -> Path:
    """Writes `run` (qid, docid, score[, rank]) as a TREC run, each query's documents sorted by score (see `ranked`).

    >>> write_run(run_frame(query_ids, learn.search(queries, index, k=100)), 'model.trec')  # doctest: +SKIP
    """
    if not tag or any(c.isspace() for c in tag): raise ValueError(f"tag must be one word without spaces, got {tag!r}.")
    run = ranked(run)
    _check_ids(run, 'run')
    lines = [f"{q} Q0 {d} {r} {float(s)!r} {tag}\n" for q, d, s, r in run.itertuples(index=False)]
    Path(path).write_text(''.join(lines), encoding='utf-8')
    return Path(path)


def write_qrels(qrels: pd.DataFrame, path) -> Path:
    """Writes `qrels` (qid, docid, gain) as TREC qrels `qid 0 docid gain`, in the frame's order.

    >>> write_qrels(pd.DataFrame({'qid': ['1'], 'docid': ['184'], 'gain': [3]}), 'qrels.trec')  # doctest: +SKIP
    """
    missing = [col for col in QRELS_COLUMNS if col not in qrels.columns]
    if missing: raise RelevanceDataError(f"qrels: missing column(s) {missing}; qrels have qid, docid, gain.")
    gains = pd.to_numeric(qrels['gain'])
    if not (gains == gains.round()).all(): raise RelevanceDataError("qrels: gains must be integers (TREC qrels).")
    _check_ids(qrels, 'qrels')
    lines = [f"{q} 0 {d} {int(g)}\n" for q, d, g in zip(qrels['qid'].astype(str), qrels['docid'].astype(str), gains)]
    Path(path).write_text(''.join(lines), encoding='utf-8')
    return Path(path)
