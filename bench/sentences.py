"""Symmetric sentence similarity on SICK: relcollab (with and without a teacher) vs the teacher zero-shot vs TF-IDF.

Protocol (issue 14): `../shared/data/sick/sick.tsv` ($RELCOLLAB_SICK overrides the folder). relcollab trains on
the `train` split (5,000 pairs, less the few whose two sentences also form a test pair), with a tenth of its
pairs held out as fastai's validation set (seeded); the 4,927 official `test` pairs are never seen in training. Reported on `test`: Spearman and Pearson of each
method's similarity against the human relatedness (1..5):

- relcollab: the trained model's score of the pair (`learn.score_pairs`), and the cosine of the two sentences'
  dense vectors alone (the "sentence vectors whose distances mean similarity" a user takes away);
- TF-IDF cosine (fitted on the train sentences), and, with `--teacher`, the teacher's cosine zero-shot.

It also prints relcollab's Spearman on the held-out validation pairs: choose options (`--lr`, `--no-word-pool`) on
those, and report `test`.

    python bench/sentences.py [--quick] [--teacher all-MiniLM-L6-v2] [--word-vectors SOURCE] [--no-word-pool] [--lr LR]
                              [--no-teacher-run | --only-teacher-run] [--no-teacher-start] [--no-judgment-start] [--no-lexical-choice] [--anchor-weight W] [--pseudo-per-doc N] [--embedding-weight W]
                              [--report-start] [--json PATH]

`--teacher` trains relcollab a second time with the teacher (distillation, `relcollab.distill`); with
`--word-vectors` (e.g. the same teacher's name) the language model's embedding starts from word vectors and the
towers pool idf-weighted word embeddings (`pool_embeddings='idf'`). Teacher vectors are cached in
$RELCOLLAB_TEACHER_CACHE (default ~/.cache/relcollab/teacher).
"""
import argparse
import json
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.feature_extraction.text import TfidfVectorizer

from relcollab.core.metrics import pair_metrics
from relcollab.training.recipe import train_relevance_model
from relcollab.training.teacher import load_teacher, teacher_embeddings

SICK = Path(os.environ.get('RELCOLLAB_SICK', Path(__file__).resolve().parents[2]/'shared'/'data'/'sick'))
TEACHER_CACHE = Path(os.environ.get('RELCOLLAB_TEACHER_CACHE', Path.home()/'.cache'/'relcollab'/'teacher'))
COLUMNS = ['pair_id', 'sentence_a', 'sentence_b', 'relatedness', 'split']


def load_sick(folder: Path = SICK) -> pd.DataFrame:
    "sick.tsv as a DataFrame, checked: the columns, the two splits, relatedness in 1..5, no empty sentence."
    path = Path(folder)/'sick.tsv'
    if not path.is_file(): raise FileNotFoundError(f"{path} not found: set RELCOLLAB_SICK to the folder holding sick.tsv")
    df = pd.read_csv(path, sep='\t', dtype={'sentence_a': str, 'sentence_b': str}, keep_default_na=False, quoting=3)
    missing = [c for c in COLUMNS if c not in df.columns]
    if missing: raise ValueError(f"{path}: missing columns {missing} (has {list(df.columns)})")
    df['relatedness'] = pd.to_numeric(df['relatedness'], errors='raise')
    bad = df[~df['relatedness'].between(1, 5) | (df['sentence_a'].str.strip() == '') | (df['sentence_b'].str.strip() == '')]
    if len(bad): raise ValueError(f"{path}: {len(bad)} rows with relatedness outside 1..5 or an empty sentence, "
                                  f"e.g. pair_id {bad['pair_id'].iloc[0]}")
    if set(df['split']) != {'train', 'test'}: raise ValueError(f"{path}: splits {sorted(set(df['split']))}, expected train and test")
    return df


def without_test_pairs(train: pd.DataFrame, test: pd.DataFrame) -> pd.Series:
    "True for the train rows whose two sentences (in either order) also form a test pair: SICK has a few dozen."
    test_pairs = {frozenset(p) for p in zip(test['sentence_a'], test['sentence_b'])}
    return pd.Series([frozenset(p) in test_pairs for p in zip(train['sentence_a'], train['sentence_b'])], index=train.index)


def tfidf_cosine(train_sentences, a, b) -> np.ndarray:
    "Cosine of word TF-IDF vectors (sublinear tf, fitted on the training sentences) of each pair."
    vectorizer = TfidfVectorizer(sublinear_tf=True).fit(train_sentences)
    va, vb = vectorizer.transform(a), vectorizer.transform(b)
    return np.asarray(va.multiply(vb).sum(axis=1)).ravel()


def dense_cosine(learn, a, b) -> np.ndarray:
    "Cosine of the two sentences' dense vectors (the AWD-LSTM part of each vector, lexical weights left out)."
    size = learn.model.head.out_features - learn.model.head.n_lexical
    with learn.no_bar():
        va, vb = learn.encode(a, side='query')[:, :size], learn.encode(b, side='doc')[:, :size]
    va, vb = va / np.linalg.norm(va, axis=1, keepdims=True), vb / np.linalg.norm(vb, axis=1, keepdims=True)
    return (va * vb).sum(axis=1)


def report_start(held_out, a, b, truth):
    "Makes the recipe print the dense cosine's Spearman (test and validation pairs) just before relevance training."
    import relcollab.training.recipe as recipe
    fine_tune = recipe.fine_tune_relevance
    def measured_then_fine_tuned(learn, **kwargs):
        valid = pair_metrics(dense_cosine(learn, held_out['sentence_a'].tolist(), held_out['sentence_b'].tolist()),
                             held_out['relatedness'].to_numpy())
        test = pair_metrics(dense_cosine(learn, a, b), truth)
        print(f"before relevance training: dense cosine Spearman, test {test['spearman']:.3f} (validation "
              f"{valid['spearman']:.3f})", flush=True)
        return fine_tune(learn, **kwargs)
    recipe.fine_tune_relevance = measured_then_fine_tuned


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='LM 2 epochs, relevance 3 (default 4 and 4)')
    parser.add_argument('--lm-epochs', type=int, default=None)
    parser.add_argument('--epochs', type=int, default=None)
    parser.add_argument('--teacher', default=None, metavar='DIR_OR_NAME')
    parser.add_argument('--word-vectors', nargs='+', default=None, metavar='SOURCE',
                        help="word vectors for the LM's embedding (a vector file or a sentence-transformers model)")
    runs = parser.add_mutually_exclusive_group()
    runs.add_argument('--no-teacher-run', action='store_true',
                      help='with --teacher: only its zero-shot row, relcollab trained without it')
    runs.add_argument('--only-teacher-run', action='store_true',
                      help='with --teacher: relcollab trained with it only (not also without it)')
    parser.add_argument('--no-word-pool', action='store_true',
                        help="with --word-vectors: pool the LM's embedding of the words instead of the word vectors themselves")
    parser.add_argument('--no-teacher-start', action='store_true',
                        help="with --teacher: the dense vectors start as the word pool, not fitted to the teacher (teacher_start=False)")
    parser.add_argument('--anchor-weight', type=float, default=None,
                        help="the judgment start's anchor weight (default: the recipe's, 10; 0: no anchor)")
    parser.add_argument('--no-lexical-choice', action='store_true',
                        help="the judgment start and finish leave the lexical channel's weight to training, from 0.1 (choose_lexical=False)")
    parser.add_argument('--no-judgment-start', action='store_true',
                        help="the dense vectors are not fitted to the judgments: they start as the word pool, or the teacher start (judgment_start=False)")
    parser.add_argument('--pseudo-per-doc', type=int, default=4,
                        help="pseudo-queries (spans) per training sentence, at the top score (the recipe's pseudo_per_doc)")
    parser.add_argument('--report-start', action='store_true',
                        help="also print each run's dense cosine before relevance training (after the teacher start, if any)")
    parser.add_argument('--embedding-weight', type=float, default=None,
                        help="with --teacher: the embedding distillation term's weight (default: the recipe's)")
    parser.add_argument('--lr', type=float, default=None, help="the relevance stage's peak learning rate (default: the recipe's)")
    parser.add_argument('--valid-pct', type=float, default=0.1)
    parser.add_argument('--seed', type=int, default=0)
    parser.add_argument('--json', type=Path, default=None)
    args = parser.parse_args(argv)
    if (args.no_teacher_run or args.only_teacher_run) and not args.teacher:
        parser.error('--no-teacher-run and --only-teacher-run go with --teacher')
    warnings.simplefilter('ignore')
    lm_epochs, epochs = args.lm_epochs or (2 if args.quick else 4), args.epochs or (3 if args.quick else 4)

    df = load_sick()
    train, test = df[df['split'] == 'train'].copy(), df[df['split'] == 'test']
    leaked = without_test_pairs(train, test)
    train = train[~leaked].copy()
    train['is_valid'] = np.random.default_rng(args.seed).random(len(train)) < args.valid_pct
    a, b, truth = test['sentence_a'].tolist(), test['sentence_b'].tolist(), test['relatedness'].to_numpy()
    table, seconds, validation = {}, {}, {}

    start = time.time()
    fit_sentences = pd.concat([train.loc[~train['is_valid'], 'sentence_a'], train.loc[~train['is_valid'], 'sentence_b']])
    table['tfidf cosine'] = pair_metrics(tfidf_cosine(fit_sentences, a, b), truth)
    seconds['tfidf cosine'] = time.time() - start

    teacher = None
    if args.teacher:
        start = time.time()
        teacher = load_teacher(args.teacher)
        va, vb = (teacher_embeddings(teacher, s, cache_dir=TEACHER_CACHE) for s in (a, b))
        table['teacher zero-shot cosine'] = pair_metrics((va * vb).sum(axis=1), truth)
        seconds['teacher zero-shot cosine'] = time.time() - start
    word_vectors = [teacher if source == args.teacher else source for source in args.word_vectors or []]
    word_vectors = (word_vectors[0] if len(word_vectors) == 1 else word_vectors) or None

    if args.report_start: report_start(train[train['is_valid']], a, b, truth)
    runs = [None, teacher] if teacher is not None and not args.no_teacher_run else [None]
    for with_teacher in (runs[1:] if args.only_teacher_run and teacher is not None else runs):
        label = 'relcollab' + (', teacher' if with_teacher is not None else '') + (', word vectors' if word_vectors else '')
        with tempfile.TemporaryDirectory() as workdir:
            start = time.time()
            learn = train_relevance_model(train, 'sentence_a', 'sentence_b', 'relatedness', valid_col='is_valid',
                                          score_range=(1, 5), lm_epochs=lm_epochs, epochs=epochs, seed=args.seed,
                                          path=workdir, teacher=with_teacher, teacher_cache=TEACHER_CACHE,
                                          word_vectors=word_vectors, pool_embeddings='idf' if word_vectors else False,
                                          word_pool=None if args.no_word_pool else 'auto', lr=args.lr,
                                          teacher_start=not args.no_teacher_start, pseudo_per_doc=args.pseudo_per_doc,
                                          judgment_start=not args.no_judgment_start, choose_lexical=not args.no_lexical_choice,
                                          **({} if args.anchor_weight is None else {'anchor_weight': args.anchor_weight}),
                                          **({} if args.embedding_weight is None else {'embedding_weight': args.embedding_weight}))
            took = time.time() - start
            held_out = train[train['is_valid']]  # what a user tunes on: the validation pairs, never the test pairs
            valid_a, valid_b = held_out['sentence_a'].tolist(), held_out['sentence_b'].tolist()
            valid_truth = held_out['relatedness'].to_numpy()
            with learn.no_bar(): valid_scores = learn.score_pairs(list(zip(valid_a, valid_b)))
            validation[label] = (pair_metrics(valid_scores, valid_truth),
                                 pair_metrics(dense_cosine(learn, valid_a, valid_b), valid_truth))
            with learn.no_bar(): scores = learn.score_pairs(list(zip(a, b)))
            table[f'{label}: pair score'], seconds[f'{label}: pair score'] = pair_metrics(scores, truth), took
            table[f'{label}: dense cosine'], seconds[f'{label}: dense cosine'] = pair_metrics(dense_cosine(learn, a, b), truth), took
        print(f"{label}: {table[f'{label}: pair score']}, dense {table[f'{label}: dense cosine']}, {took:.0f} s", flush=True)

    print(f"\nSICK test: {len(test)} pairs; trained on {int((~train['is_valid']).sum())} train pairs "
          f"({int(train['is_valid'].sum())} for validation, {int(leaked.sum())} dropped: the same two sentences are a "
          f"test pair); LM {lm_epochs} epochs, relevance {epochs}\n")
    print('| method | Spearman | Pearson | seconds |')
    print('|---|---|---|---|')
    for name, m in table.items():
        print(f"| {name} | {m['spearman']:.3f} | {m['pearson']:.3f} | {seconds[name]:.0f} |")
    print(f"\nValidation ({int(train['is_valid'].sum())} held-out train pairs, for choosing options): Spearman")
    for name, (pair, dense) in validation.items():
        print(f"- {name}: pair score {pair['spearman']:.3f}, dense cosine {dense['spearman']:.3f}")
    if args.json:
        result = {name: {**m, 'seconds': round(seconds[name], 1)} for name, m in table.items()}
        result['validation'] = {name: {'pair score': pair, 'dense cosine': dense} for name, (pair, dense) in validation.items()}
        args.json.write_text(json.dumps(result, indent=1))


if __name__ == '__main__':
    main()
