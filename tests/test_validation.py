"""Tests for relcollab.core.validation: every bad input gets a clear, early error."""
import math
import warnings

import numpy as np
import pandas as pd
import pytest
from pandas.testing import assert_frame_equal

from relcollab.core.validation import (
    RelevanceDataError,
    RelevanceDataWarning,
    check_columns,
    check_scores,
    check_texts,
    check_triples,
    read_table,
    row_labels,
)


def make_pairs(**overrides):
    """A small valid (query, doc, score) frame; ``overrides`` replace columns."""
    columns = {"query": ["cats", "dogs", "fish", "birds"],
               "doc": ["cats purr", "dogs bark", "fish swim", "birds fly"],
               "score": [2, 0, 1, 3]}
    columns.update(overrides)
    return pd.DataFrame(columns)


def write_text(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ----------------------------------------------------------------- row_labels
def test_row_labels_limits_and_counts_the_rest():
    assert row_labels([3, 7, 12, 20, 21, 22, 23], limit=3) == "rows 3, 7, 12 (and 4 more)"
    assert row_labels([5]) == "row 5"


def test_row_labels_give_file_lines_for_table_sources():
    assert row_labels([0, 4], source="judgments.tsv") == "rows 0 (line 2), 4 (line 6)"
    assert row_labels(["a"], source="judgments.csv") == "row 'a'"


# ----------------------------------------------------------------- read_table
def test_valid_csv_round_trips(tmp_path):
    original = make_pairs()
    path = tmp_path / "pairs.csv"
    original.to_csv(path, index=False)
    assert_frame_equal(read_table(path), original, check_dtype=False)


def test_tsv_is_read_with_tabs(tmp_path):
    path = write_text(tmp_path, "pairs.tsv", "query\tdoc\tscore\ncats, dogs\tpets\t1\n")
    frame = read_table(path)
    assert list(frame.columns) == ["query", "doc", "score"]
    assert frame.loc[0, "query"] == "cats, dogs"


def test_na_and_null_texts_stay_strings_but_empty_cells_are_missing(tmp_path):
    path = write_text(tmp_path, "pairs.csv", "query,doc,score\nNA,null,1\n,doc,0\n")
    frame = read_table(path)
    assert frame.loc[0, "query"] == "NA"
    assert frame.loc[0, "doc"] == "null"
    assert pd.isna(frame.loc[1, "query"])


def test_text_columns_are_read_as_strings(tmp_path):
    path = write_text(tmp_path, "pairs.csv", "query,doc,score\n42,7,1\n")
    frame = read_table(path, text_columns=["query", "doc"])
    assert frame.loc[0, "query"] == "42"


def test_missing_file_names_the_path(tmp_path):
    path = tmp_path / "nope.csv"
    with pytest.raises(FileNotFoundError, match="nope.csv: no such file"):
        read_table(path)
    with pytest.raises(RelevanceDataError, match="nope.csv"):
        read_table(path)


def test_empty_file_has_no_rows(tmp_path):
    path = write_text(tmp_path, "empty.csv", "")
    with pytest.raises(RelevanceDataError, match=r"empty\.csv: .*has no rows"):
        read_table(path)


def test_header_only_file_has_no_rows(tmp_path):
    path = write_text(tmp_path, "header.csv", "query,doc,score\n")
    with pytest.raises(RelevanceDataError, match=r"header\.csv: has no rows, only a header line"):
        read_table(path)


def test_non_utf8_file_names_file_offset_and_fix(tmp_path):
    path = tmp_path / "latin.csv"
    path.write_bytes(b"query,doc,score\ncaf\xe9,menu,1\n")
    with pytest.raises(RelevanceDataError, match=r"latin\.csv: not valid UTF-8 at byte offset 19 \(line 2.*Re-save the file as UTF-8"):
        read_table(path)


def test_utf16_bom_is_pointed_out(tmp_path):
    path = tmp_path / "utf16.csv"
    path.write_bytes(b"\xff\xfeq\x00,\x00d\x00\n\x00")
    with pytest.raises(RelevanceDataError, match=r"utf16\.csv: not valid UTF-8 at byte offset 0.*UTF-16 byte-order mark.*Re-save"):
        read_table(path)


@pytest.mark.parametrize("name, content, message", [
    ("pairs.csv", "query\tdoc\tscore\ncats\tcats purr\t1\n",
     r"pairs\.csv: read as a single column.*looks tab-separated: name it \.tsv"),
    ("pairs.tsv", "query,doc,score\ncats,cats purr,1\n", r"pairs\.tsv: .*looks comma-separated: name it \.csv"),
    ("pairs.txt", "query;doc;score\ncats;cats purr;1\n",
     r"pairs\.txt: .*read as comma-separated.*looks semicolon-separated: pass sep=';'"),
    ("ragged.csv", "query,doc,score\ncats,cats purr,1\ndogs,dogs, they bark,0\n",
     r"ragged\.csv: line 3 has 4 fields but the header has 3.*double quotes"),
    ("trailing.csv", "query,doc,score\ncats,purr,1,\ndogs,bark,0,\n",
     r"trailing\.csv: every row has more fields than the header"),
], ids=["tab-separated-named-csv", "comma-separated-named-tsv", "unknown-extension-read-as-comma",
        "ragged-row-names-the-line", "trailing-delimiter-is-not-silently-an-index"])
def test_misshapen_files_say_what_is_wrong_and_how_to_fix_it(tmp_path, name, content, message):
    path = write_text(tmp_path, name, content)
    with pytest.raises(RelevanceDataError, match=message):
        read_table(path)


def test_missing_column_names_option_available_columns_and_suggestion():
    frame = make_pairs()
    pattern = r"no column 'qeury' for query_col \(--query-col / query_col=\).*'query', 'doc', 'score'.*Did you mean 'query'\?"
    with pytest.raises(RelevanceDataError, match=pattern):
        check_columns(frame, {"query_col": "qeury", "doc_col": "doc"})


def test_missing_column_names_the_source_file():
    with pytest.raises(RelevanceDataError, match=r"^pairs\.tsv: no column 'rel' for score_col \(--score-col"):
        check_columns(make_pairs(), {"score_col": "rel"}, source="pairs.tsv")


def test_two_roles_on_one_column_is_rejected():
    with pytest.raises(RelevanceDataError, match="query_col and doc_col both name column 'query'"):
        check_columns(make_pairs(), {"query_col": "query", "doc_col": "query"})


# ---------------------------------------------------------------- check_texts
def test_missing_texts_name_column_rows_count_and_fix():
    frame = make_pairs(query=["cats", None, np.nan, pd.NA])
    with pytest.raises(RelevanceDataError, match=r"column 'query' has 3 missing value\(s\) in rows 1, 2, 3\..*Fill them.*or drop those rows"):
        check_texts(frame, "query")


def test_missing_texts_give_file_lines():
    frame = make_pairs(doc=["a", "b", None, "d"])
    with pytest.raises(RelevanceDataError, match=r"^pairs\.csv: column 'doc' .* row 2 \(line 4\)"):
        check_texts(frame, "doc", source="pairs.csv")


def test_non_string_texts_name_rows_and_a_sample():
    frame = make_pairs(doc=["a", 3.5, ["x"], "d"])
    with pytest.raises(RelevanceDataError, match=r"column 'doc' has 2 non-text value\(s\) in rows 1, 2, e\.g\. 3\.5 \(float\).*Convert them to strings"):
        check_texts(frame, "doc")


def test_many_bad_rows_are_summarised():
    frame = pd.DataFrame({"query": [None] * 9})
    with pytest.raises(RelevanceDataError, match=r"9 missing value\(s\) in rows 0, 1, 2, 3, 4 \(and 4 more\)"):
        check_texts(frame, "query")


def test_texts_that_are_not_valid_unicode_name_rows_and_fix():
    frame = make_pairs(doc=["a", "caf\udce9", "c", "\ud800"])  # unpaired surrogates, e.g. from errors='surrogateescape'
    with pytest.raises(RelevanceDataError, match=r"^pairs\.csv: column 'doc' has 2 text\(s\) that are not valid Unicode .* rows 1 \(line 3\), 3 \(line 5\)\. Clean them"):
        check_texts(frame, "doc", source="pairs.csv")


def test_control_characters_emoji_and_rtl_texts_are_valid():
    assert check_texts(make_pairs(query=["\x00\x1b[31m", "🚀 👨\u200d👩\u200d👧", "مرحبا שלום", "\u202e\ufeff"]), "query") is None


def test_empty_and_whitespace_texts_are_allowed():
    assert check_texts(make_pairs(query=["", "  ", "\t", "x"]), "query") is None


# --------------------------------------------------------------- check_scores
def test_non_numeric_scores_name_rows_and_sample():
    frame = make_pairs(score=[1, "high", "2", "low"])
    with pytest.raises(RelevanceDataError, match=r"column 'score' has 2 non-numeric score\(s\) in rows 1, 3, e\.g\. 'high'.*fix or drop"):
        check_scores(frame, "score")


def test_decimal_comma_gets_a_hint():
    with pytest.raises(RelevanceDataError, match=r"e\.g\. '1,5'\. Use '\.' as the decimal point"):
        check_scores(make_pairs(score=["1,5", "2", "0", "1"]), "score")


def test_numeric_strings_are_accepted():
    assert check_scores(make_pairs(score=["3", "0", " 1.5 ", "2"]), "score") is None


def test_nan_scores_name_rows_and_fix():
    with pytest.raises(RelevanceDataError, match=r"column 'score' has 1 missing or NaN score\(s\) in row 2\. Fill them"):
        check_scores(make_pairs(score=[1.0, 0.0, math.nan, 2.0]), "score")


def test_infinite_scores_name_rows():
    with pytest.raises(RelevanceDataError, match=r"2 infinite score\(s\) in rows 0, 3\. Replace them"):
        check_scores(make_pairs(score=[math.inf, 0.0, 1.0, -math.inf]), "score")


def test_scores_outside_range_name_rows_value_and_option():
    pattern = r"1 score\(s\) outside score_range \[0, 3\] in row 1, e\.g\. 7\. .*widen --score-range"
    with pytest.raises(RelevanceDataError, match=pattern):
        check_scores(make_pairs(score=[0, 7, 3, 1]), "score", score_range=(0, 3))


def test_range_bounds_are_inclusive():
    assert check_scores(make_pairs(score=[0, 3, 3, 1]), "score", score_range=(0, 3)) is None


def test_all_equal_scores_have_nothing_to_learn():
    pattern = r"all 4 scores in column 'score' equal 1: there is nothing to learn; add pairs with other scores \(e\.g\. unjudged pairs as 0\)"
    with pytest.raises(RelevanceDataError, match=pattern):
        check_scores(make_pairs(score=[1, 1, "1", 1.0]), "score")


@pytest.mark.parametrize("bad_range", [(3, 0), (1, 1), (0, math.inf), ("0", 3), (0,), 5, (0, 1, 2), (True, 3)])
def test_bad_score_range_is_rejected(bad_range):
    with pytest.raises(RelevanceDataError, match=r"score_range \(--score-range / score_range=\) must be two finite numbers"):
        check_scores(make_pairs(), "score", score_range=bad_range)


# -------------------------------------------------------------- check_triples
def test_valid_triples_report():
    report = check_triples(make_pairs(doc=["", "dogs bark", " ", "birds fly"]), "query", "doc", "score")
    assert report == {"n_rows": 4, "n_empty_texts": 2, "n_conflicting_duplicates": 0, "warnings": []}


def test_triples_without_scores_skip_score_checks():
    report = check_triples(make_pairs(score=["x"] * 4), "query", "doc")
    assert report["n_rows"] == 4


def test_triples_check_columns_before_emptiness():
    with pytest.raises(RelevanceDataError, match="no column 'score'"):
        check_triples(pd.DataFrame({"query": [], "doc": []}), "query", "doc", "score")


def test_empty_frame_is_rejected():
    frame = pd.DataFrame({"query": [], "doc": [], "score": []})
    with pytest.raises(RelevanceDataError, match=r"^queries\.tsv: has no rows"):
        check_triples(frame, "query", "doc", "score", source="queries.tsv")


def test_triples_check_texts_before_scores():
    frame = make_pairs(doc=["a", None, "c", "d"], score=["x"] * 4)
    with pytest.raises(RelevanceDataError, match="column 'doc' has 1 missing"):
        check_triples(frame, "query", "doc", "score")


def test_triples_pass_score_range_on():
    with pytest.raises(RelevanceDataError, match="outside score_range"):
        check_triples(make_pairs(), "query", "doc", "score", score_range=(0, 2))


def test_non_dataframe_is_rejected():
    with pytest.raises(RelevanceDataError, match="expected a pandas DataFrame, got list"):
        check_triples([("q", "d", 1)], "query", "doc")


def test_conflicting_duplicates_are_warned_and_reported():
    frame = make_pairs(query=["cats", "dogs", "cats", "dogs"], doc=["purr", "bark", "purr", "bark"], score=[2, 0, 1, 0])
    with pytest.warns(RelevanceDataWarning, match=r"1 \(query, doc\) pair\(s\) .*rows 0 \(line 2\), 2 \(line 4\).*model will learn their mean"):
        report = check_triples(frame, "query", "doc", "score", source="pairs.csv")
    assert report["n_conflicting_duplicates"] == 1
    assert len(report["warnings"]) == 1 and "All rows are kept" in report["warnings"][0]


def test_exact_duplicates_are_not_conflicts():
    frame = make_pairs(query=["cats", "cats", "dogs", "fish"], doc=["purr", "purr", "bark", "swim"])
    frame["score"] = [1, 1, 0, 2]
    with warnings.catch_warnings():
        warnings.simplefilter("error", RelevanceDataWarning)
        report = check_triples(frame, "query", "doc", "score")
    assert report["n_conflicting_duplicates"] == 0


# ------------------------------------------------------------- no mutation
@pytest.mark.parametrize("frame", [
    make_pairs(),
    make_pairs(score=["3", "0", "1", "2"]),
    make_pairs(query=["cats", "cats", "dogs", "dogs"], doc=["a", "a", "b", "b"]),
    make_pairs(doc=["a", None, "c", "d"]),
    make_pairs(score=[1, "high", 2, 0]),
])
def test_checks_never_modify_the_callers_frame(frame):
    before = frame.copy(deep=True)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RelevanceDataWarning)
        try:
            check_triples(frame, "query", "doc", "score", score_range=(0, 3))
        except RelevanceDataError:
            pass
    assert_frame_equal(frame, before)


def test_relcollab_error_is_the_base_and_relevance_data_error_keeps_its_subclasses():
    from relcollab.training.checkpoint import CheckpointError
    from relcollab.training.learner import EncoderMismatchError
    from relcollab.retrieval.pretrained import PretrainedFormatError
    from relcollab.core.validation import RelcollabError, RelevanceDataError, RelevanceFileNotFoundError
    assert issubclass(RelcollabError, ValueError) and issubclass(RelevanceDataError, RelcollabError)
    for error in (CheckpointError, PretrainedFormatError, RelevanceFileNotFoundError):
        assert issubclass(error, RelevanceDataError)  # `except RelevanceDataError` still catches them
    assert issubclass(EncoderMismatchError, RelcollabError) and issubclass(EncoderMismatchError, ValueError)
