"""Check user data before any training starts, and say exactly what is wrong.

Every problem with user-supplied data raises :class:`RelevanceDataError` (a
``ValueError``) whose message names the source (a file path or ``'data'``),
the column, the offending rows and what to do about it. Nothing here modifies
the caller's DataFrame.

Conventions:

* **Row labels** are the DataFrame's index labels. For a frame read with
  :func:`read_table` (default ``RangeIndex``), the file line of a row is
  ``label + 2`` (line 1 is the header), so when ``source`` is a path ending in
  ``.csv``/``.tsv``/``.tab`` messages also give ``line N``. The line is exact
  unless the file has blank lines or quoted text spanning several lines.
* **Empty or whitespace-only texts are allowed**: they mean "no text", and the
  model sees only the start-of-text token. They are counted, not rejected.
* **Duplicate (query, doc) pairs with different scores are not an error**:
  :func:`check_triples` keeps every row (the model is pulled towards their
  mean), emits a :class:`RelevanceDataWarning` and lists the message in the
  report's ``'warnings'``.

Typical use::

    df = read_table("judgments.tsv")
    report = check_triples(df, "query", "doc", "score", source="judgments.tsv")
"""
import difflib
import math
import re
import warnings
from numbers import Integral, Real
from pathlib import Path

import numpy as np
import pandas as pd

__all__ = [
    "RelcollabError",
    "RelevanceDataError",
    "RelevanceDataWarning",
    "read_table",
    "check_columns",
    "check_texts",
    "check_scores",
    "check_triples",
    "row_labels",
]

TABLE_SUFFIXES = (".csv", ".tsv", ".tab")
DELIMITERS_BY_SUFFIX = {".csv": ",", ".tsv": "\t", ".tab": "\t"}
DELIMITER_NAMES = {"\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
DELIMITER_FIXES = {
    "\t": "name it .tsv or pass sep='\\t'",
    ",": "name it .csv or pass sep=','",
    ";": "pass sep=';' (or re-save it as .csv/.tsv)",
    "|": "pass sep='|' (or re-save it as .csv/.tsv)",
}
MAX_SHOWN_ROWS = 5


class RelcollabError(ValueError):
    """Base of relcollab's own errors (a ``ValueError``): ``except RelcollabError`` catches each of them.

    New errors that are not about the user's data (a model, a checkpoint or an index that does not fit)
    subclass this one. ``CheckpointError``, ``PretrainedFormatError``, ``IndexFileError`` and
    ``IndexMismatchError`` subclass ``RelevanceDataError`` (so also this one), as they always did, so that
    ``except RelevanceDataError`` keeps catching them.
    """


class RelevanceDataError(RelcollabError):
    """Bad user data (file, columns, texts or scores); the message says what to fix.

    Also the base of the checkpoint, model-format and index errors, for compatibility (see `RelcollabError`).
    """


class RelevanceFileNotFoundError(RelevanceDataError, FileNotFoundError):
    """The data file does not exist; catchable as ``FileNotFoundError`` too."""


class RelevanceDataWarning(UserWarning):
    """Suspicious but usable data, e.g. duplicate pairs with different scores."""


# ----------------------------------------------------------------- row labels
def _is_table_path(source):
    return str(source).lower().endswith(TABLE_SUFFIXES)


def _format_label(label, with_line):
    is_int = isinstance(label, Integral) and not isinstance(label, (bool, np.bool_))
    text = str(label) if is_int else repr(label)
    return f"{text} (line {int(label) + 2})" if with_line and is_int else text


def row_labels(index_values, limit=MAX_SHOWN_ROWS, source=None):
    """Format row labels for a message, showing at most ``limit`` of them.

    With ``source`` a ``.csv``/``.tsv``/``.tab`` path, integer labels also get
    their file line (``label + 2``: line 1 is the header).

    >>> row_labels([3, 7, 12, 20, 21, 22, 23], limit=3)
    'rows 3, 7, 12 (and 4 more)'
    >>> row_labels([0], source="pairs.csv")
    'row 0 (line 2)'
    """
    labels = list(index_values)
    with_line = source is not None and _is_table_path(source)
    shown = ", ".join(_format_label(label, with_line) for label in labels[:limit])
    noun = "row" if len(labels) == 1 else "rows"
    more = len(labels) - limit
    return f"{noun} {shown}" + (f" (and {more} more)" if more > 0 else "")


# ----------------------------------------------------------------- read_table
def _delimiter_for(path):
    return DELIMITERS_BY_SUFFIX.get(Path(path).suffix.lower(), ",")


def _delimiter_note(path, sep):
    if Path(path).suffix.lower() in DELIMITERS_BY_SUFFIX:
        return ""
    return f" (the extension is not .csv/.tsv/.tab, so it was read as {DELIMITER_NAMES.get(sep, repr(sep))}-separated)"


def _first_line(path, encoding):
    with open(path, encoding=encoding, errors="replace") as handle:
        return handle.readline()


def _delimiter_hint(header_line, sep):
    """Say which other delimiter the header line seems to use, or ''."""
    for candidate, name in DELIMITER_NAMES.items():
        if candidate != sep and candidate in header_line and sep not in header_line:
            return f"; it looks {name}-separated: {DELIMITER_FIXES[candidate]}"
    return ""


def _decode_error_message(path, encoding):
    raw = Path(path).read_bytes()
    try:
        raw.decode(encoding)
    except UnicodeDecodeError as error:
        offset, byte = error.start, raw[error.start:error.start + 1]
    else:  # the bad byte was in pandas' own buffering; no exact offset
        offset, byte = None, b""
    line = raw[:offset].count(b"\n") + 1 if offset is not None else None
    where = "" if offset is None else f" at byte offset {offset} (line {line}, byte {byte!r})"
    bom = " It starts with a UTF-16 byte-order mark." if raw[:2] in (b"\xff\xfe", b"\xfe\xff") else ""
    return (f"{path}: not valid UTF-8{where}.{bom} Re-save the file as UTF-8, "
            f"or pass its encoding, e.g. read_table(path, encoding='latin-1').")


def _parser_error_message(path, error, sep):
    found = re.search(r"Expected (\d+) fields in line (\d+), saw (\d+)", str(error))
    if found is None:
        detail = f"could not be parsed ({error})"
    else:
        expected, line, seen = found.groups()
        detail = f"line {line} has {seen} fields but the header has {expected}"
    name = DELIMITER_NAMES.get(sep, repr(sep))
    return (f"{path}: {detail}{_delimiter_note(path, sep)}. Put text that contains the "
            f"{name} delimiter in double quotes, or fix that line.")


def _parse(path, sep, encoding, read_csv_kwargs):
    try:
        return pd.read_csv(path, **read_csv_kwargs)
    except UnicodeDecodeError:
        raise RelevanceDataError(_decode_error_message(path, encoding)) from None
    except pd.errors.EmptyDataError:
        raise RelevanceDataError(f"{path}: the file is empty, so it has no rows. Add a header line and data rows.") from None
    except pd.errors.ParserError as error:
        hint = _delimiter_hint(_first_line(path, encoding), sep)
        raise RelevanceDataError(_parser_error_message(path, error, sep) + hint) from None


def _check_parsed_shape(path, frame, sep, encoding, index_was_given):
    if len(frame.columns) == 1:
        hint = _delimiter_hint(_first_line(path, encoding), sep)
        if hint:
            raise RelevanceDataError(f"{path}: read as a single column {frame.columns[0]!r}{_delimiter_note(path, sep)}{hint}.")
    if not index_was_given and not isinstance(frame.index, pd.RangeIndex):
        raise RelevanceDataError(
            f"{path}: every row has more fields than the header line (a trailing "
            f"{DELIMITER_NAMES.get(sep, repr(sep))} at the end of each line?). Remove it, or add the missing column name to the header.")
    if frame.empty:
        raise RelevanceDataError(f"{path}: has no rows, only a header line. Add data rows below the header.")


def read_table(path, *, text_columns=(), **read_csv_kwargs):
    """Read a .csv (comma) or .tsv/.tab (tab) file, keeping texts as strings.

    The literal texts "NA", "null", "nan"... stay strings; only an empty cell
    is missing (NaN). ``text_columns`` are read as strings even if they look
    numeric. Other ``read_csv`` keywords (``sep``, ``encoding``...) are passed on.

    >>> df = read_table("pairs.tsv", text_columns=["query", "doc"])  # doctest: +SKIP
    """
    path = Path(path)
    if not path.exists():
        raise RelevanceFileNotFoundError(f"{path}: no such file. Check the path (working directory: {Path.cwd()}).")
    if path.is_dir():
        raise RelevanceDataError(f"{path}: is a directory, not a .csv/.tsv file.")
    options = {"sep": _delimiter_for(path), "encoding": "utf-8-sig", "keep_default_na": False, "na_values": [""]}
    options.update(read_csv_kwargs)
    if text_columns and isinstance(options.get("dtype", {}), dict):
        options["dtype"] = {**{column: str for column in text_columns}, **options.get("dtype", {})}
    frame = _parse(path, options["sep"], options["encoding"], options)
    _check_parsed_shape(path, frame, options["sep"], options["encoding"], "index_col" in read_csv_kwargs)
    return frame


# -------------------------------------------------------------- check_columns
def _option_names(role):
    return f"--{role.replace('_', '-')} / {role}="


def _missing_column_message(df, role, column, source):
    available = ", ".join(repr(name) for name in df.columns) or "none"
    names = [str(name) for name in df.columns]
    close = difflib.get_close_matches(str(column), names, n=1, cutoff=0.6)
    suggestion = f" Did you mean {close[0]!r}?" if close else ""
    return (f"{source}: no column {column!r} for {role} ({_option_names(role)}). "
            f"Available columns: {available}.{suggestion} Pass the right name with {_option_names(role)}.")


def check_columns(df, columns, source="data"):
    """Check that every ``role -> column name`` in ``columns`` exists exactly once.

    >>> check_columns(pd.DataFrame({"query": ["q"], "doc": ["d"]}),
    ...               {"query_col": "query", "doc_col": "doc"})
    """
    for role, column in columns.items():
        if column not in df.columns:
            raise RelevanceDataError(_missing_column_message(df, role, column, source))
        if list(df.columns).count(column) > 1:
            raise RelevanceDataError(f"{source}: column {column!r} ({role}) appears more than once. Rename the duplicates.")
    roles_by_column = {}
    for role, column in columns.items():
        if column in roles_by_column:
            raise RelevanceDataError(
                f"{source}: {roles_by_column[column]} and {role} both name column {column!r}. "
                f"Give each its own column ({_option_names(roles_by_column[column])}, {_option_names(role)}).")
        roles_by_column[column] = role


# ---------------------------------------------------------------- check_texts
def _non_string_mask(values):
    if isinstance(values.dtype, pd.StringDtype):
        return pd.Series(False, index=values.index)
    return values.map(lambda value: not isinstance(value, str)) & values.notna()


def _invalid_unicode_mask(values):
    def invalid(text):
        if text.isascii(): return False
        try: text.encode("utf-8")
        except UnicodeEncodeError: return True
        return False
    return values.map(invalid).astype(bool)


def check_texts(df, col, source="data"):
    """Check that every value of text column ``col`` is a string.

    Missing values, non-strings (numbers, lists...) and strings that are not
    valid Unicode (unpaired surrogates) raise; empty or whitespace-only
    strings are allowed (they mean "no text").

    >>> check_texts(pd.DataFrame({"query": ["cats", ""]}), "query")
    """
    values = df[col]
    missing = values.isna()
    if missing.any():
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(missing.sum())} missing value(s) in "
            f"{row_labels(values.index[missing], source=source)}. Fill them (an empty "
            f"text '' is allowed) or drop those rows.")
    non_string = _non_string_mask(values)
    if non_string.any():
        first = values[non_string].iloc[0]
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(non_string.sum())} non-text value(s) in "
            f"{row_labels(values.index[non_string], source=source)}, e.g. {first!r} "
            f"({type(first).__name__}). Convert them to strings (e.g. read_table(path, "
            f"text_columns=[{col!r}])) or drop those rows.")
    invalid = _invalid_unicode_mask(values)
    if invalid.any():
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(invalid.sum())} text(s) that are not valid Unicode "
            f"(unpaired surrogates, e.g. from errors='surrogateescape') in "
            f"{row_labels(values.index[invalid], source=source)}. Clean them (e.g. "
            f"text.encode('utf-8', 'replace').decode()) or drop those rows.")


def _count_empty_texts(values):
    return int((values.str.strip() == "").sum())


# --------------------------------------------------------------- check_scores
def _is_finite_number(value):
    return isinstance(value, Real) and not isinstance(value, (bool, np.bool_)) and math.isfinite(value)


def _validate_score_range(score_range):
    """Return ``(lo, hi)`` as floats or raise."""
    problem = (f"score_range (--score-range / score_range=) must be two finite numbers "
               f"(lo, hi) with lo < hi; got {score_range!r}.")
    try:
        lo, hi = score_range
    except (TypeError, ValueError):
        raise RelevanceDataError(problem) from None
    if not (_is_finite_number(lo) and _is_finite_number(hi) and lo < hi):
        raise RelevanceDataError(problem)
    return float(lo), float(hi)


def _numeric_scores(values, source, col):
    """Return the non-missing scores as float64, or raise on non-numeric values."""
    present = values[values.notna()]
    numeric = pd.to_numeric(present, errors="coerce")
    bad = numeric.isna()
    if bad.any():
        sample = present[bad].iloc[0]
        decimal_hint = " Use '.' as the decimal point." if isinstance(sample, str) and "," in sample else ""
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(bad.sum())} non-numeric score(s) in "
            f"{row_labels(present.index[bad], source=source)}, e.g. {sample!r}.{decimal_hint} "
            f"Scores must be numbers: fix or drop those rows.")
    return numeric.astype("float64")


def _raise_for_rows(source, col, mask, what, fix):
    if mask.any():
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(mask.sum())} {what} in "
            f"{row_labels(mask.index[mask], source=source)}. {fix}")


def _check_score_range(scores, bounds, source, col):
    lo, hi = bounds
    outside = (scores < lo) | (scores > hi)
    if outside.any():
        raise RelevanceDataError(
            f"{source}: column {col!r} has {int(outside.sum())} score(s) outside score_range "
            f"[{lo:g}, {hi:g}] in {row_labels(scores.index[outside], source=source)}, e.g. "
            f"{scores[outside].iloc[0]:g}. Fix them, or widen --score-range / score_range=.")


def check_scores(df, col, score_range=None, source="data"):
    """Check that score column ``col`` holds finite numbers that are not all equal.

    Numeric strings such as "3" are accepted (convert them with
    ``pd.to_numeric``). With ``score_range=(lo, hi)`` scores must lie in
    ``[lo, hi]``.

    >>> check_scores(pd.DataFrame({"score": [0, "1", 2.5]}), "score", (0, 3))
    """
    bounds = None if score_range is None else _validate_score_range(score_range)
    values = df[col]
    scores = _numeric_scores(values, source, col)
    _raise_for_rows(source, col, values.isna(), "missing or NaN score(s)",
                    "Fill them (e.g. unjudged pairs as 0) or drop those rows.")
    _raise_for_rows(source, col, np.isinf(scores), "infinite score(s)",
                    "Replace them with finite numbers or drop those rows.")
    if bounds is not None:
        _check_score_range(scores, bounds, source, col)
    if len(scores) > 0 and scores.nunique() == 1:
        raise RelevanceDataError(
            f"{source}: all {len(scores)} scores in column {col!r} equal {scores.iloc[0]:g}: "
            f"there is nothing to learn; add pairs with other scores (e.g. unjudged pairs as 0).")


# -------------------------------------------------------------- check_triples
def _conflicting_duplicates(df, query_col, doc_col, score_col):
    """Return (number of conflicting pairs, index of their rows)."""
    pairs = pd.DataFrame({"query": df[query_col], "doc": df[doc_col],
                          "score": pd.to_numeric(df[score_col]).astype("float64")})
    n_scores = pairs.groupby(["query", "doc"], sort=False)["score"].transform("nunique")
    conflicting = pairs[n_scores > 1]
    return len(conflicting.drop_duplicates(["query", "doc"])), conflicting.index


def _duplicate_warning(n_pairs, rows, query_col, doc_col, source):
    return (f"{source}: {n_pairs} ({query_col}, {doc_col}) pair(s) appear more than once with "
            f"different scores ({row_labels(rows, source=source)}). All rows are kept and the "
            f"model will learn their mean; drop or merge them if that is not what you want.")


def _duplicates_report(df, query_col, doc_col, score_col, source):
    """Warn about conflicting duplicate pairs; return the report entries."""
    n_pairs, rows = _conflicting_duplicates(df, query_col, doc_col, score_col)
    if not n_pairs:
        return {}
    message = _duplicate_warning(n_pairs, rows, query_col, doc_col, source)
    warnings.warn(message, RelevanceDataWarning, stacklevel=3)
    return {"n_conflicting_duplicates": n_pairs, "warnings": [message]}


def check_triples(df, query_col, doc_col, score_col=None, score_range=None, source="data"):
    """Check a (query, doc[, score]) table; return a small report.

    Raises :class:`RelevanceDataError` on the first problem (columns, empty
    table, texts, scores). Returns a dict: ``n_rows``, ``n_empty_texts``
    (empty query/doc cells), ``n_conflicting_duplicates`` (pairs) and
    ``warnings`` (messages, also emitted as :class:`RelevanceDataWarning`).

    >>> check_triples(pd.DataFrame({"q": ["a", "b"], "d": ["x", ""], "s": [1, 0]}),
    ...               "q", "d", "s")["n_empty_texts"]
    1
    """
    if not isinstance(df, pd.DataFrame):
        raise RelevanceDataError(f"{source}: expected a pandas DataFrame, got {type(df).__name__}.")
    roles = {"query_col": query_col, "doc_col": doc_col}
    if score_col is not None:
        roles["score_col"] = score_col
    check_columns(df, roles, source=source)
    if df.empty:
        raise RelevanceDataError(f"{source}: has no rows. Add (query, doc) pairs.")
    for col in (query_col, doc_col):
        check_texts(df, col, source=source)
    report = {"n_rows": len(df), "n_empty_texts": sum(_count_empty_texts(df[col]) for col in (query_col, doc_col)),
              "n_conflicting_duplicates": 0, "warnings": []}
    if score_col is not None:
        check_scores(df, score_col, score_range=score_range, source=source)
        report.update(_duplicates_report(df, query_col, doc_col, score_col, source))
    return report
