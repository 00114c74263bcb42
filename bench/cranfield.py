"""Cranfield benchmark, fixed protocol: relcollab vs BM25 vs TF-IDF vs fusions on held-out queries, one run.

Protocol (issue 4): documents = title + ' ' + abstract; query number = position 1..225 in cran.qry; test
queries = number % 5 == FOLD (45), never seen in training (not in the LM corpus, the relevance training or
model selection); every 5th remaining query is a validation query for model selection (fusion weight);
all 1400 documents ranked per query; gain = 5 - code, unjudged = 0; nDCG@10 (graded), MAP and Recall@100
(any judged document relevant), averaged over the test queries with judgments (trec_eval's convention).

    python bench/cranfield.py [--fold K] [--quick] [--json PATH] [--variants NAME ...] [--teacher DIR_OR_NAME]
                              [--self-supervised crops|dropout|ict] [--lr LR] [--no-teacher-words] [--save-vectors DIR]

`--variants` trains several relcollab recipes on one language model and prints an ablation table
(names in VARIANTS below); the first one is the `relcollab` row. `--teacher all-MiniLM-L6-v2` (or a model
directory) trains each variant a second time with the teacher (`relcollab.distill`) and adds the teacher
zero-shot and BM25 + teacher rows; its vectors are cached in $RELCOLLAB_TEACHER_CACHE (default
~/.cache/relcollab/teacher). `--self-supervised VIEWS` adds the self-supervised objective on the dense vectors
(`relcollab.self_supervised`) to every variant's training; every relcollab row and fusion then names it
(`relcollab (self-supervised crops)`, ...) and the JSON records it, so runs with and without it compare side by
side. Lexical variants also get a row for their dense part alone, and every model a row for `HybridSearch` with its
defaults (BM25 feedback on the query vectors, z-score fusion with BM25). `--save-vectors DIR` keeps each model's
vectors for `bench/cranfield_fusion.py`, which compares ways of combining them with BM25. `--quick` with
`--variants default dense-only --teacher all-MiniLM-L6-v2` took 9 minutes on an idle 2-core AMD EPYC. On 2 CPU cores `--quick` (LM 2 epochs,
relevance 3) took 6.4 minutes, the full run with two variants about 50 (both on a machine shared with other jobs);
alone on an idle machine, `--quick` with two variants took 7.7 minutes and the full run with two variants 16.
"""
import argparse
import json
import os
import re
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import Stemmer
from sklearn.feature_extraction.text import TfidfVectorizer

from relcollab.retrieval.bm25 import BM25Baseline
from relcollab.core.model import relevance_config
from relcollab.datasets.cranfield import cranfield_split, cranfield_triples, load_cranfield
from relcollab.core.data import RelevanceDataLoaders
from relcollab.training.distill import distillation_callback, fit_teacher_stage, start_in_teacher_space
from relcollab.training.judgment_start import ANCHOR_WEIGHT, finish_from_judgments, start_from_judgments
from relcollab.training.teacher import load_teacher, teacher_embeddings
from relcollab.retrieval.evaluate import evaluate_run
from relcollab.retrieval.fusion import normalized_fusion, reciprocal_rank_fusion
from relcollab.retrieval.hybrid import HybridSearch
from relcollab.retrieval.index import top_k, SearchResults
from relcollab.training.learner import relevance_learner
from relcollab.training.lm import language_model_stage
from relcollab.training.recipe import LR, TEACHER_EMBEDDING_WEIGHT, fine_tune_relevance, relevance_lr, with_pseudo_queries, with_teacher_words
from relcollab.training.self_supervised import VIEWS as SELF_SUPERVISED_VIEWS, SelfSupervised
from relcollab.retrieval.trec import run_frame

DATA = os.environ.get('RELCOLLAB_CRANFIELD', str(Path(__file__).resolve().parents[2]/'shared'/'data'/'cranfield'))
METRICS = ['ndcg@10', 'map', 'recall@100']
TEACHER_CACHE = Path(os.environ.get('RELCOLLAB_TEACHER_CACHE', Path.home()/'.cache'/'relcollab'/'teacher'))
K = 100

# name -> recipe options (see train_relcollab)
VARIANTS = {
    'default': dict(in_batch=True, pseudo=4, lexical='auto'),          # train_relevance_model's defaults
    'learned-lexical': dict(in_batch=True, pseudo=4, lexical='learned'),  # the term weights train too (default before)
    'no-stem': dict(in_batch=True, pseudo=4, lexical='bm25', stemmer=None),  # one term per token
    'no-pseudo': dict(in_batch=True, pseudo=0, lexical='bm25'),        # judged pairs only
    'dense-only': dict(in_batch=True, pseudo=4, lexical=False),        # no lexical channel
    'pointwise': dict(in_batch=False, pseudo=4, lexical='bm25'),       # MSE on the batch's pairs only
    'first-session': dict(in_batch=False, pseudo=0, lexical=False),    # the first recipe: pointwise, dense
    'bm25-negatives': dict(in_batch=True, pseudo=4, lexical='bm25', hard_negatives=1),  # + unjudged docs BM25 ranks high
    'docs-only': dict(in_batch=True, pseudo=4, lexical='bm25', judged=False),  # no judgments: pseudo-queries alone
    'dense-docs-only': dict(in_batch=True, pseudo=4, lexical=False, judged=False),
    'narrow-pool': dict(in_batch=True, pseudo=4, lexical='bm25', word_pool=None),  # with word vectors: pool the LM's embedding
}


def split(data, fold: int):
    train_ids, test_ids = cranfield_split(data.queries, fold=fold)
    valid_ids = train_ids[::5]
    fit_ids = [q for q in train_ids if q not in set(valid_ids)]
    return fit_ids, valid_ids, test_ids


def load_fold(fold: int):
    "`(data, (fit_ids, valid_ids, test_ids), qrels)`: Cranfield, the fold's query split, the judgments as ranx reads them."
    data = load_cranfield(DATA)
    qrels = data.qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'})[['qid', 'docid', 'gain']]
    return data, split(data, fold), qrels.astype({'qid': str, 'docid': str})


def evaluate(results: SearchResults, query_ids, qrels) -> dict:
    run = run_frame([str(q) for q in query_ids], results)
    return evaluate_run(run, qrels, metrics=METRICS), run


def results_from_scores(scores: np.ndarray, doc_ids) -> SearchResults:
    positions, values = top_k(scores, K)
    return SearchResults(np.asarray(doc_ids, dtype=object)[positions], values)


def tfidf_scores(docs, queries) -> np.ndarray:
    "TF-IDF cosine with the same English stopwords and stemmer as the BM25 baseline."
    stem = Stemmer.Stemmer('english').stemWord
    base = TfidfVectorizer(stop_words='english').build_analyzer()
    vectorizer = TfidfVectorizer(analyzer=lambda text: [stem(w) for w in base(text)], sublinear_tf=True)
    doc_matrix = vectorizer.fit_transform(docs)
    return (vectorizer.transform(queries) @ doc_matrix.T).toarray()


def bm25_negatives(data, triples, per_judged: int, depth: int = 30, seed: int = 0):
    """Hard negatives: for each query of `triples`, `per_judged` x (its judged documents) documents drawn from
    BM25's top `depth` that are neither judged for it nor already paired with it, with score 0."""
    bm25 = BM25Baseline().index(data.docs['doc_id'].tolist(), data.docs['text'].tolist())
    queries = triples.drop_duplicates('query_id')[['query_id', 'query', 'is_valid']]
    judged = data.qrels.groupby('query_id')['doc_id'].apply(set).to_dict()
    paired = triples.groupby('query_id')['doc_id'].apply(set).to_dict()
    text_of, rng, rows = data.docs.set_index('doc_id')['text'], np.random.default_rng(seed), []
    top = bm25.search(queries['query'].tolist(), k=depth).ids
    for (query_id, query, is_valid), ids in zip(queries.itertuples(index=False), top):
        seen = judged.get(query_id, set()) | paired.get(query_id, set())
        candidates = [int(doc) for doc in ids if int(doc) not in seen]
        picks = rng.permutation(candidates)[:per_judged * len(judged.get(query_id, ()))]
        rows += [(query_id, doc, query, text_of[doc], 0, is_valid) for doc in picks]
    return pd.DataFrame(rows, columns=['query_id', 'doc_id', 'query', 'doc', 'score', 'is_valid'])


def train_relcollab(data, fit_ids, valid_ids, lm, workdir: Path, in_batch=True, pseudo=4, epochs=4, bs=32,
                    lr=None, negatives=1, hard_negatives=0, seed=0, size='small', judged=True, teacher=None,
                    self_supervised=None, teacher_epochs=0, teacher_start=True, embedding_weight=TEACHER_EMBEDDING_WEIGHT,
                    judgment_start=True, anchor_weight=ANCHOR_WEIGHT, choose_lexical=True, **model_kwargs):
    """The recipe on the training queries' judgments (`judged=False`: none, only the documents' pseudo-queries;
    the validation queries' pairs stay for fastai's validation metrics), with a `teacher` if given and the
    `self_supervised` views (`relcollab.self_supervised.SelfSupervised`) if given."""
    triples = cranfield_triples(data, query_ids=fit_ids + valid_ids, negatives=negatives, seed=seed)
    triples['is_valid'] = triples['query_id'].isin(valid_ids)
    if not judged: triples = triples[triples['is_valid']]
    if hard_negatives:
        triples = pd.concat([triples, bm25_negatives(data, triples, hard_negatives, seed=seed)], ignore_index=True)
    frame = with_pseudo_queries(triples, 'query', 'doc', 'score', 'is_valid', per_doc=pseudo, score_range=(0, 4),
                                seed=seed, corpus=data.docs['text'].tolist())  # documents, never a test query
    dls = RelevanceDataLoaders.from_df(frame, vocab=lm.vocab, valid_col='is_valid', score_range=(0, 4), bs=bs,
                                       seed=seed, path=workdir)
    cbs = [] if teacher is None else [distillation_callback(teacher, dls, cache_dir=TEACHER_CACHE, embedding_weight=embedding_weight)]
    if model_kwargs.get('word_pool') is None: model_kwargs.pop('pool_skip', None)
    else: model_kwargs.setdefault('pool_skip', True)  # the recipe's skip connection
    # the dense vectors' size as train_relevance_model sets it: the teacher's, else the word pool's, else 256
    model_kwargs.setdefault('proj_sz', cbs[0].vectors.dim if cbs else 'pool' if model_kwargs.get('word_pool') is not None else 256)
    if self_supervised is not None: cbs.append(SelfSupervised(self_supervised))
    documents = data.docs['text'].tolist()  # idf over the collection, as train_relevance_model counts it
    teacher_stage_lr = lr if lr is not None else LR  # as train_relevance_model picks them
    lr = relevance_lr(lr, teacher, model_kwargs.get('word_pool'))
    learn = relevance_learner(dls, config=relevance_config(size), in_batch=in_batch, path=workdir, documents=documents,
                              **model_kwargs)
    learn.load_encoder(lm.encoder_name)
    if teacher is not None and teacher_start: start_in_teacher_space(learn, cbs[0])  # as train_relevance_model does
    if judgment_start and model_kwargs.get('word_pool') is not None:  # as train_relevance_model does
        anchor = start_from_judgments(learn, triples[~triples['is_valid']], embedding_weight=anchor_weight,
                                      valid_pairs=triples[triples['is_valid']], verbose=True, choose_lexical=choose_lexical,
                                      pool=documents)
        if anchor is not None and anchor_weight: cbs.append(anchor)
    if teacher is not None and teacher_epochs:  # train_relevance_model(teacher_epochs=...)'s teacher stage
        fitted = triples[~triples['is_valid'] & (triples['score'] > 0)].drop_duplicates('query')[['query', 'doc']]
        fit_teacher_stage(learn, teacher, documents, fitted, epochs=teacher_epochs, lr=teacher_stage_lr, cache_dir=TEACHER_CACHE, seed=seed)
    with learn.added_cbs(cbs): fine_tune_relevance(learn, epochs=epochs, lr=lr)
    if judgment_start and model_kwargs.get('word_pool') is not None and anchor is not None:  # as train_relevance_model does
        finish_from_judgments(learn, triples[~triples['is_valid']], valid_pairs=triples[triples['is_valid']],
                              choose_lexical=choose_lexical, pool=documents, verbose=True)
    return learn


def save_vectors(folder: Path, row: str, learn, doc_vectors, query_vectors: dict):
    "The model's vectors for the documents and each query set ({'valid': ..., 'test': ...}), in `folder/<row>.npz`."
    name = re.sub(r'[^A-Za-z0-9]+', '-', row).strip('-')
    np.savez(folder / f'{name}.npz', dense_size=dense_size(learn), docs=doc_vectors, **query_vectors)


def dense_size(learn) -> int:
    "How many leading dimensions of a vector are the dense (AWD-LSTM) part; the rest are lexical term weights."
    return learn.model.head.out_features - learn.model.head.n_lexical


def model_vectors(learn, docs, queries: dict) -> tuple:
    "The model's document vectors and each query set's ({name: texts} -> {name: vectors}), each text encoded once."
    with learn.no_bar():
        return learn.encode(docs, side='doc'), {name: learn.encode(texts, side='query') for name, texts in queries.items()}


def part_scores(query_vectors, doc_vectors, part=None) -> np.ndarray:
    """Dot products of all dimensions (`part` None), the first `part` (an int: the dense part of a lexical model) or
    the `part` slice (`slice(dense_size(learn), None)`: the lexical term weights)."""
    part = slice(None) if part is None else slice(None, part) if isinstance(part, int) else part
    return query_vectors[:, part] @ doc_vectors[:, part].T


def scores_of_part(learn, docs, queries, part) -> np.ndarray:
    "`part_scores` of freshly encoded queries and documents."
    doc_vectors, query_vectors = model_vectors(learn, docs, {'queries': queries})
    return part_scores(query_vectors['queries'], doc_vectors, part)


def relcollab_scores(learn, docs, queries) -> np.ndarray:
    return scores_of_part(learn, docs, queries, None)


def best_fusion(name_runs_valid, name_runs_test, qrels, name='relcollab'):
    "Fusions of a run (`name`) with BM25; the weight is chosen on the validation queries."
    rows = {}
    valid_rel, valid_bm25 = name_runs_valid
    test_rel, test_bm25 = name_runs_test
    best_w, best = None, -1
    for w in np.round(np.arange(0.05, 1.0, 0.05), 2):
        score = evaluate_run(normalized_fusion([valid_bm25, valid_rel], [1 - w, w]), qrels, metrics=['ndcg@10'])['ndcg@10']
        if score > best: best_w, best = w, score
    rows[f'fusion: min-max, {name} weight {best_w} (chosen on validation)'] = \
        evaluate_run(normalized_fusion([test_bm25, test_rel], [1 - best_w, best_w]), qrels, metrics=METRICS)
    rows['fusion: reciprocal rank (k=60)'] = evaluate_run(reciprocal_rank_fusion([test_bm25, test_rel]), qrels, metrics=METRICS)
    return rows, best_w


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fold', type=int, default=0)
    parser.add_argument('--quick', action='store_true', help='smaller budget: under 10 minutes on 2 cores')
    parser.add_argument('--json', type=Path, default=None)
    parser.add_argument('--variants', nargs='+', default=['default'], choices=list(VARIANTS))
    parser.add_argument('--lm-epochs', type=int, default=None)
    parser.add_argument('--epochs', type=int, default=None)
    parser.add_argument('--word-vectors', nargs='+', default=None, metavar='SOURCE',
                        help="also train every variant on a language model whose embedding starts from these word "
                             "vectors ('corpus', a vector file, or a sentence-transformers model such as "
                             "all-MiniLM-L6-v2; several side by side), and with the idf-weighted pool of the same "
                             "vectors at their own size in the towers, as train_relevance_model does (the variant "
                             "narrow-pool pools the LM's embedding of them instead)")
    parser.add_argument('--only-word-vectors', action='store_true', help='with --word-vectors: skip the runs without them')
    parser.add_argument('--only-teacher', action='store_true', help='with --teacher: skip the runs without it')
    parser.add_argument('--teacher', default=None, metavar='DIR_OR_NAME',
                        help='also train every variant with this sentence-transformers teacher (e.g. all-MiniLM-L6-v2, '
                             'relcollab[teacher]), and add the teacher zero-shot and BM25 + teacher rows')
    parser.add_argument('--lr', type=float, default=None,
                        help="the relevance stage's peak learning rate for every variant (default: the recipe's, "
                             "1e-2, or 1e-3 with a teacher's word vectors in the pool)")
    parser.add_argument('--no-teacher-words', action='store_true',
                        help="with --teacher and --word-vectors: the word pool holds the word vectors alone, not also "
                             "the teacher's encoding of each word (the teacher recipe before 2026-12-06)")
    parser.add_argument('--anchor-weight', type=float, default=None,
                        help="the judgment start's anchor weight (default: the recipe's, 10; 0: no anchor)")
    parser.add_argument('--no-lexical-choice', action='store_true',
                        help="the judgment start and finish leave the lexical channel's weight to training, from 0.1 "
                             "(choose_lexical=False)")
    parser.add_argument('--no-judgment-start', action='store_true',
                        help="the dense vectors are not fitted to the training judgments: they start as the word pool, "
                             "or as the teacher start (judgment_start=False, the earlier recipe)")
    parser.add_argument('--no-teacher-start', action='store_true',
                        help="with --teacher and --word-vectors: the dense vectors start as the word pool, not fitted "
                             "to the teacher (teacher_start=False, the earlier teacher recipe)")
    parser.add_argument('--embedding-weight', type=float, default=None,
                        help="with --teacher: the embedding distillation term's weight (default: the recipe's)")
    parser.add_argument('--teacher-epochs', type=int, default=0,
                        help='with --teacher: epochs of the teacher stage before relevance training (default 0: none)')
    parser.add_argument('--self-supervised', default=None, choices=SELF_SUPERVISED_VIEWS, metavar='VIEWS',
                        help='add the self-supervised objective on the dense vectors to every variant\'s training: '
                             'crops (Contriever), dropout (SimCSE) or ict (inverse cloze); the rows name it')
    parser.add_argument('--save-vectors', type=Path, default=None, metavar='DIR',
                        help="write each model's document, validation-query and test-query vectors (DIR/<row>.npz) "
                             'and the ids (DIR/ids.json), to study fusion or feedback without retraining')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    lm_epochs = args.lm_epochs or (2 if args.quick else 6)
    epochs = args.epochs or (3 if args.quick else 5)

    data, (fit_ids, valid_ids, test_ids), qrels = load_fold(args.fold)
    docs, doc_ids = data.docs['text'].tolist(), data.docs['doc_id'].tolist()
    if args.save_vectors:
        args.save_vectors.mkdir(parents=True, exist_ok=True)
        (args.save_vectors / 'ids.json').write_text(json.dumps({'fold': args.fold, 'doc_ids': [str(d) for d in doc_ids],
            'valid_ids': [str(q) for q in valid_ids], 'test_ids': [str(q) for q in test_ids]}))
    text_of = data.queries.set_index('query_id')['text']
    valid_q, test_q = [text_of[q] for q in valid_ids], [text_of[q] for q in test_ids]
    table, seconds = {}, {}

    start = time.time()
    bm25 = BM25Baseline().index(doc_ids, docs)
    table['bm25'], bm25_test = evaluate(bm25.search(test_q, k=K), test_ids, qrels)
    _, bm25_valid = evaluate(bm25.search(valid_q, k=K), valid_ids, qrels)
    seconds['bm25'] = time.time() - start
    start = time.time()
    table['tfidf'], _ = evaluate(results_from_scores(tfidf_scores(docs, test_q), doc_ids), test_ids, qrels)
    seconds['tfidf'] = time.time() - start

    if args.teacher:
        start = time.time()
        teacher = load_teacher(args.teacher)
        teacher_docs = teacher_embeddings(teacher, docs, cache_dir=TEACHER_CACHE)
        teacher_runs = [evaluate(results_from_scores(teacher_embeddings(teacher, q, cache_dir=TEACHER_CACHE) @ teacher_docs.T,
                                                     doc_ids), ids, qrels) for q, ids in ((valid_q, valid_ids), (test_q, test_ids))]
        table['teacher zero-shot'], seconds['teacher zero-shot'] = teacher_runs[1][0], time.time() - start
        if args.save_vectors:
            np.savez(args.save_vectors / 'teacher-zero-shot.npz', docs=teacher_docs,
                     **{split: teacher_embeddings(teacher, q, cache_dir=TEACHER_CACHE) for split, q in (('valid', valid_q), ('test', test_q))})
        fusions, _ = best_fusion((teacher_runs[0][1], bm25_valid), (teacher_runs[1][1], bm25_test), qrels, name='teacher')
        for fname, fmetrics in fusions.items(): table[f'bm25 + teacher {fname}'], seconds[f'bm25 + teacher {fname}'] = fmetrics, seconds['teacher zero-shot']

    with tempfile.TemporaryDirectory() as workdir:
        start = time.time()
        lm_texts = docs + [text_of[q] for q in fit_ids + valid_ids]  # never a test query
        lms, lm_seconds = {}, {}
        word_vectors = [teacher if source == args.teacher else source for source in args.word_vectors or []]
        word_vectors = word_vectors[0] if len(word_vectors) == 1 else word_vectors
        for wv in ([None] if not args.only_word_vectors else []) + ([word_vectors] if args.word_vectors else []):
            start = time.time()
            lms[wv is not None] = language_model_stage(lm_texts, size='small', epochs=lm_epochs, path=workdir,
                                                       word_vectors=wv, cache_dir=TEACHER_CACHE,
                                                       encoder_name='lm_wv' if wv is not None else 'lm_enc')
            lm_seconds[wv is not None] = time.time() - start
            print(f"language model{' from word vectors' if wv is not None else ''}: valid perplexity "
                  f"{float(lms[wv is not None].learn.recorder.values[-1][-1]):.1f}, {lm_seconds[wv is not None]:.0f} s", flush=True)
        teachers = ([None] if not (args.teacher and args.only_teacher) else []) + ([teacher] if args.teacher else [])
        runs = [(name, t, wv) for wv in lms for t in teachers for name in args.variants]
        ssl = f', self-supervised {args.self_supervised}' if args.self_supervised else ''
        first_row = f'relcollab (self-supervised {args.self_supervised})' if args.self_supervised else 'relcollab'
        for i, (name, with_teacher, wv) in enumerate(runs):
            start = time.time()
            # with word vectors, train_relevance_model's defaults: the idf pool over the word vectors at their own size,
            # with a teacher its encoding of each word beside them
            pool = word_vectors if with_teacher is None or args.no_teacher_words else with_teacher_words(word_vectors, with_teacher)
            extra = dict(pool_embeddings='idf', word_pool=pool, pool_skip=True, cache_dir=TEACHER_CACHE) if wv else {}
            learn = train_relcollab(data, fit_ids, valid_ids, lms[wv], Path(workdir), epochs=epochs, teacher=with_teacher,
                                    self_supervised=args.self_supervised, teacher_epochs=args.teacher_epochs, lr=args.lr,
                                    teacher_start=not args.no_teacher_start, judgment_start=not args.no_judgment_start,
                                    choose_lexical=not args.no_lexical_choice,
                                    **({} if args.anchor_weight is None else {'anchor_weight': args.anchor_weight}),
                                    **({} if args.embedding_weight is None else {'embedding_weight': args.embedding_weight}),
                                    **{**extra, **VARIANTS[name]})
            train_seconds = time.time() - start
            label = name + (', teacher' if with_teacher is not None else '') + (', word vectors' if wv else '') + ssl
            row = first_row if i == 0 else f'relcollab ({label})'
            doc_vectors, query_vectors = model_vectors(learn, docs, {'valid': valid_q, 'test': test_q})
            if args.save_vectors: save_vectors(args.save_vectors, row, learn, doc_vectors, query_vectors)
            parts = [(row, None)] + ([(f'{row}: its dense part alone', dense_size(learn)),
                                      (f'{row}: its lexical part alone', slice(dense_size(learn), None))]
                                     if learn.model.head.n_lexical else [])
            for part_row, size in parts:
                (metrics, test_run), (valid_metrics, valid_run) = (
                    evaluate(results_from_scores(part_scores(query_vectors[split], doc_vectors, size), doc_ids), ids, qrels)
                    for split, ids in (('test', test_ids), ('valid', valid_ids)))
                table[part_row] = {**metrics, 'valid ndcg@10': valid_metrics['ndcg@10']}
                seconds[part_row] = lm_seconds[wv] + train_seconds
                print(f"{part_row}: test {metrics}, valid ndcg@10 {valid_metrics['ndcg@10']:.3f}, {train_seconds:.0f} s", flush=True)
                if size is None:
                    hybrid = HybridSearch(learn, learn.index(pd.DataFrame({'id': doc_ids, 'text': docs}), progress=False), bm25)
                    (h_metrics, _), (h_valid, _) = (evaluate(hybrid.search(q, k=K), ids, qrels)
                                                    for q, ids in ((test_q, test_ids), (valid_q, valid_ids)))
                    table[f'{row}: hybrid with BM25 (HybridSearch defaults)'] = {**h_metrics, 'valid ndcg@10': h_valid['ndcg@10']}
                    seconds[f'{row}: hybrid with BM25 (HybridSearch defaults)'] = seconds[row] + seconds['bm25']
                    print(f"{row}: hybrid with BM25: test {h_metrics}, valid ndcg@10 {h_valid['ndcg@10']:.3f}", flush=True)
                    fusions, _ = best_fusion((valid_run, bm25_valid), (test_run, bm25_test), qrels,
                                             name=first_row if i == 0 else label)
                    for fname, fmetrics in fusions.items():
                        if ssl and fname.startswith('fusion: reciprocal'): fname = f'{fname} with {first_row}'
                        if i == 0 or fname.startswith('fusion: min-max'):
                            table[fname], seconds[fname] = fmetrics, seconds[row] + seconds['bm25']

    print(f"\nCranfield fold {args.fold}: {len(test_ids)} test queries, {len(valid_ids)} validation, "
          f"{len(fit_ids)} training; LM {lm_epochs} epochs, relevance {epochs} epochs{' (quick)' if args.quick else ''}"
          f"{f'; self-supervised: {args.self_supervised}' if args.self_supervised else ''}\n")
    print('| method | nDCG@10 | MAP | R@100 | training seconds |')
    print('|---|---|---|---|---|')
    for name, m in table.items():
        print(f"| {name} | {m['ndcg@10']:.3f} | {m['map']:.3f} | {m['recall@100']:.3f} | {seconds[name]:.0f} |")
    if args.json:
        fusion_name = next(n for n in table if n.startswith('fusion: min-max'))
        names = {'relcollab': first_row, 'bm25': 'bm25', 'tfidf': 'tfidf', 'fusion': fusion_name}
        methods = {key: {**{m: float(table[n][m]) for m in METRICS}, 'seconds': round(seconds[n], 1)} for key, n in names.items()}
        methods.update({n: {**{m: float(table[n][m]) for m in METRICS}, 'seconds': round(seconds[n], 1)}
                        for n in table if n not in names.values()})
        args.json.write_text(json.dumps({'fold': args.fold, 'self_supervised': args.self_supervised, 'methods': methods},
                                        indent=1))


if __name__ == '__main__':
    main()
