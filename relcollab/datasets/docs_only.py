"""Training from documents alone, with no judgments: spans of each document serve as its queries.

    docs = read_documents('beir/scifact')         # a BEIR corpus.jsonl (or its folder), a CSV/TSV, a .txt
    learn = train_from_documents(docs, size='small', lm_epochs=3, epochs=3)
    learn.rank('how do cells divide', docs, k=10)  # ids are positions in `docs`

Each document gives `pseudo_per_doc` pseudo-queries (`relcollab.training.pseudo.pseudo_queries`) at score 1, and each
pseudo-query `negatives` random other documents at score 0. The pseudo-queries of `valid_pct` of the documents
(drawn with `seed`) are fastai's validation set, so validation measures documents the relevance model never
trained to find. The language model reads every document.
"""
from pathlib import Path

import numpy as np
import pandas as pd
from fastcore.meta import delegates

from .collection import BEIR_FILES, _read_jsonl
from ..retrieval.encode import as_text_list
from ..training.pseudo import pseudo_queries
from ..training.recipe import train_relevance_model
from ..core.validation import (RelevanceDataError, RelevanceFileNotFoundError, check_columns, check_texts,
                         read_table)

__all__ = ['read_documents', 'documents_triples', 'pseudo_queries_per_doc', 'train_from_documents']

PSEUDO_QUERIES_BUDGET = 20_000  # pseudo-queries per epoch that the default aims at: ~3-4 minutes per epoch, 2 cores

_NO_ROWS = pd.DataFrame({'query': [], 'doc': [], 'score': [], 'doc_index': []}).astype({'doc_index': np.int64})


def read_documents(path, text_col='text') -> list:
    """The texts of a documents file: a BEIR `corpus.jsonl` (title + text) or a folder holding one, a CSV/TSV
    with a `text_col` column (an empty cell is an empty text), or a `.txt` with one document per non-empty line.

    >>> len(read_documents('beir/scifact'))  # doctest: +SKIP
    5183
    """
    path = Path(path)
    if not path.exists():
        raise RelevanceFileNotFoundError(f"{path}: no such file or folder (working directory: {Path.cwd()}).")
    if path.is_dir():
        if not (path/BEIR_FILES[0]).is_file():
            raise RelevanceFileNotFoundError(f"{path}: a folder without {BEIR_FILES[0]}. Pass a BEIR folder, its "
                                             "corpus.jsonl, or a CSV/TSV with a text column.")
        path = path/BEIR_FILES[0]
    if path.suffix == '.jsonl': return _read_jsonl(path, 'doc')['text'].tolist()
    if path.suffix == '.txt':
        return [line for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]
    frame = read_table(path, dtype=str, na_values=[])
    if text_col not in frame.columns:
        raise RelevanceDataError(f"{path}: documents need a {text_col!r} column; it has {list(frame.columns)}. "
                                 "Rename the column (or pass text_col=).")
    check_texts(frame, text_col, source=str(path))
    return frame[text_col].tolist()


def _random_others(positives: pd.DataFrame, texts: list, negatives: int, rng) -> pd.DataFrame:
    "`negatives` rows per row of `positives`: its query with another document, drawn uniformly, at score 0."
    rows = positives.loc[positives.index.repeat(negatives)]
    others = (rows['doc_index'].to_numpy() + rng.integers(1, len(texts), size=len(rows))) % len(texts)
    return rows.assign(doc=np.asarray(texts, dtype=object)[others], score=0., doc_index=others)


def documents_triples(texts, pseudo_per_doc=4, negatives=1, valid_pct=0.1, seed=0) -> pd.DataFrame:
    """Training rows `query, doc, score, doc_index, is_valid` from documents alone (see the module docstring).

    `doc_index` is the position in `texts` of the row's document (for a pseudo-query, the document it was cut
    from); a negative is never the pseudo-query's own document. `is_valid` marks every row of the pseudo-queries
    of `valid_pct` of the documents (at least one, drawn with `seed`). Documents under 4 words give no
    pseudo-queries (they can still be negatives).

    >>> documents_triples(['a wing in a slipstream', 'heat transfer in a slab'], pseudo_per_doc=1).score.tolist()
    [1.0, 1.0, 0.0, 0.0]
    """
    texts, _ = as_text_list(texts)
    if pseudo_per_doc < 1 or negatives < 0:
        raise RelevanceDataError(f"pseudo_per_doc (--pseudo-per-doc) must be at least 1 and negatives (--negatives) at "
                                 f"least 0 to train from documents alone, got {pseudo_per_doc} and {negatives}.")
    if not 0 < valid_pct < 1:
        raise RelevanceDataError(f"valid_pct (--valid-pct) is the share of documents held out for validation: "
                                 f"between 0 and 1, got {valid_pct}.")
    rng = np.random.default_rng(seed)  # one generator through every document: deterministic, and spans differ
    positives = pd.concat([pseudo_queries([text], n_per_doc=pseudo_per_doc, score=1., seed=rng).assign(doc_index=i)
                           for i, text in enumerate(texts)] + [_NO_ROWS], ignore_index=True)
    sources = positives['doc_index'].unique()
    if len(sources) < 2:
        raise RelevanceDataError(f"{len(sources)} of the {len(texts)} documents have 4 words or more; training from "
                                 "documents alone needs at least two (one to train on, one to validate with).")
    n_valid = min(max(1, round(len(sources) * valid_pct)), len(sources) - 1)
    positives['is_valid'] = positives['doc_index'].isin(rng.permutation(sources)[:n_valid])
    return pd.concat([positives, _random_others(positives, texts, negatives, rng)], ignore_index=True)


def pseudo_queries_per_doc(n_docs: int, budget: int = PSEUDO_QUERIES_BUDGET) -> int:
    """The default number of pseudo-queries per document for `n_docs` documents: 4 up to `budget / 4` documents,
    fewer above (at least 1), so an epoch of the relevance stage stays near `budget` pseudo-queries (plus their
    negatives) while the collection is under `budget` documents; above it, every document still gets one.

    >>> [pseudo_queries_per_doc(n) for n in (1400, 5000, 8000, 100_000)]
    [4, 4, 2, 1]
    """
    return int(min(4, max(1, budget // max(int(n_docs), 1))))


@delegates(train_relevance_model, but=['query_col', 'doc_col', 'score_col', 'valid_col', 'score_range',
                                      'pseudo_per_doc'])
def train_from_documents(docs, text_col='text', pseudo_per_doc=None, negatives=1, valid_pct=0.1, seed=0, corpus=(),
                         **kwargs):
    """The whole recipe (`train_relevance_model`) on documents alone: pseudo-queries at score 1, random other
    documents at 0, scores in [0, 1], the pseudo-queries of `valid_pct` of the documents held out.

    `pseudo_per_doc=None` picks it from the collection's size (`pseudo_queries_per_doc`: 4 up to 5,000 documents,
    then fewer, at least 1), so that training time grows slower than the collection (README, Training time).
    `docs` is a list of texts or a DataFrame with `text_col`. The language model reads every document plus
    `corpus`; every other keyword (`size`, `lm_epochs`, `epochs`, `bs`, `teacher`, `word_vectors`,
    `self_supervised`, `path`, `checkpoint_dir`, ...) goes to `train_relevance_model`. `self_supervised='crops'`
    (or `'dropout'`, `'ict'`) adds a self-supervised objective on the dense vectors (`relcollab.training.self_supervised`),
    made for exactly this case: documents and no judgments. Its rows are no judgments, so the recipe's judgment start
    is off unless `judgment_start=True` is given.

    >>> learn = train_from_documents(read_documents('corpus.jsonl'), lm_epochs=3, epochs=3)  # doctest: +SKIP
    >>> learn = train_from_documents(docs, self_supervised='crops')  # doctest: +SKIP
    """
    if isinstance(docs, pd.DataFrame):
        check_columns(docs, {'text_col': text_col}, source=kwargs.get('source', 'docs'))
        check_texts(docs, text_col, source=kwargs.get('source', 'docs'))
        docs = docs[text_col]
    texts, _ = as_text_list(docs)
    if pseudo_per_doc is None:
        pseudo_per_doc = pseudo_queries_per_doc(len(texts))
        print(f"relcollab: {len(texts)} documents: {pseudo_per_doc} pseudo-queries per document (pseudo_per_doc / "
              "--pseudo-per-doc to choose)", flush=True)
    rows = documents_triples(texts, pseudo_per_doc, negatives, valid_pct, seed)
    kwargs.setdefault('documents', texts + list(corpus))  # idf over the documents, not their pseudo-query copies
    # pseudo-queries and random documents are not judgments: no judgment start (bench/cranfield.py's docs-only variant,
    # whose README rows these are, has none either); judgment_start=True fits the dense vectors to these rows
    kwargs.setdefault('judgment_start', False)
    return train_relevance_model(rows, 'query', 'doc', 'score', corpus=texts + list(corpus), valid_col='is_valid',
                                 seed=seed, score_range=(0, 1), pseudo_per_doc=0, **kwargs)
