"""The retrieval subcommands of `relcollab`: index, search, bm25, fuse, evaluate, benchmark, cranfield-export.

    relcollab cranfield-export --data cranfield --out cran
    relcollab index model.pkl cran/docs.csv --out cran_index
    relcollab search model.pkl cran/queries.csv --index cran_index --k 100 --out model.trec
    relcollab search model.pkl cran/queries.csv --index cran_index --hybrid cran/docs.csv --out hybrid.trec  # + BM25
    relcollab index model.pkl cran/docs.csv --out cran_hybrid --bm25        # the index with BM25's in one folder,
    relcollab search model.pkl cran/queries.csv --index cran_hybrid --hybrid --out hybrid.trec   # then no DOCS
    relcollab bm25 cran/docs.csv cran/queries.csv --k 100 --out bm25.trec
    relcollab fuse model.trec bm25.trec --method rrf --out fused.trec
    relcollab evaluate model.trec bm25.trec fused.trec --qrels cran/qrels.trec
    relcollab benchmark beir/scifact --model model.pkl --split test --out runs   # all of the above on a collection
"""
from pathlib import Path

from .cli_options import (MODEL_HELP, add_bf16, add_bs, add_cranfield_data, add_id_text_columns, add_id_text_file,
                          add_model)
from ..retrieval.pretrained import check_model_file, load_model  # noqa: F401  (re-exported: their home is relcollab.retrieval.pretrained)
from ..core.validation import RelevanceDataError, check_columns, read_table

__all__ = ['add_retrieval_commands', 'RETRIEVAL_COMMANDS', 'MODEL_HELP', 'check_model_file', 'load_model', 'read_id_texts',
           'markdown_table', 'load_split']

METHODS = ('rrf', 'wsum')
INDEX_BM25 = object()  # `--hybrid` without DOCS: the BM25 index saved in the index folder (argparse passes const as is)


def read_id_texts(path: Path, id_col: str, text_col: str):
    """An id, text table (CSV/TSV): every cell a string, an empty text cell an empty text; ids unique and non-empty."""
    from ..retrieval.index import check_doc_ids
    frame = read_table(path, dtype=str, na_values=[])
    check_columns(frame, {'id_col': id_col, 'text_col': text_col}, source=str(path))
    if (frame[id_col].str.strip() == '').any():
        raise RelevanceDataError(f"{path}: column {id_col!r} has empty ids; give every row an id.")
    check_doc_ids(frame[id_col].tolist(), labels=frame.index, source=str(path))
    return frame


def load_split(path: Path, split, default: str):
    """`load_collection(path, split)`; with no `split`, `default` in a BEIR folder (a TREC-style folder has one
    qrels file, no splits). An unknown split raises `RelevanceDataError` naming the available ones."""
    from ..datasets.collection import BEIR_FILES, load_collection
    beir = (path/BEIR_FILES[0]).is_file()
    if split is None and beir: split = default
    if split is not None and not beir and path.is_dir():
        raise RelevanceDataError(f"{path}: not a BEIR folder (no {BEIR_FILES[0]}), so it has no qrels splits; "
                                 "leave out --split (a TREC-style folder has one qrels file).")
    return load_collection(path, split=split)


def add_retrieval_commands(commands):
    "Adds the retrieval subcommands to argparse `commands` (from `add_subparsers`)."
    from ..retrieval.index import BACKENDS
    index = commands.add_parser('index', help='encode a document collection once and save the index')
    add_model(index)
    add_id_text_file(index, 'docs')
    index.add_argument('--out', type=Path, required=True, help='index directory to write')
    index.add_argument('--bm25', action='store_true',
                       help='index the documents with BM25 too, into OUT/bm25 (and the default hybrid settings into '
                            'OUT/hybrid.json), for `relcollab search --hybrid` without DOCS')
    add_bs(index)
    add_bf16(index)
    add_id_text_columns(index)
    search = commands.add_parser('search', help='search an index with a queries file; write a TREC run')
    add_model(search, help_prefix='the model that built the index: ')
    add_id_text_file(search, 'queries')
    search.add_argument('--index', type=Path, required=True, help='directory written by `relcollab index`')
    _add_run_options(search, tag='relcollab')
    add_bs(search)
    add_bf16(search)
    search.add_argument('--hybrid', type=Path, metavar='DOCS', nargs='?', const=INDEX_BM25,
                        help='search with BM25 too (HybridSearch: BM25 feedback on the query vectors, z-score fusion): '
                             'the documents file the index was built from (same ids, same order; --id-col/--text-col), '
                             'or nothing for the BM25 index in the index folder (`relcollab index --bm25`, HybridSearch.save); '
                             'put MODEL and QUERIES before --hybrid')
    search.add_argument('--hybrid-weight', type=float, default=None,
                        help="with --hybrid: the model's share of the fusion, 0..1 (default: with --hybrid and no DOCS, "
                             "the index folder's hybrid.json; otherwise 0.7)")
    search.add_argument('--feedback-depth', type=int, default=None,
                        help="with --hybrid: BM25's top documents that move each query vector, 0 for none (default: "
                             "with no DOCS, hybrid.json's; otherwise 3)")
    search.add_argument('--feedback-weight', type=float, default=None,
                        help="with --hybrid: how far they move it (default: with no DOCS, hybrid.json's; otherwise 1.0)")
    search.add_argument('--backend', choices=BACKENDS, default='numpy',
                        help='numpy: exact search of the dense and lexical parts (default); faiss: an exact faiss '
                             'inner-product index, for models without a lexical channel (pip install faiss-cpu)')
    bm25 = commands.add_parser('bm25', help='BM25 baseline run (stopwords, English stemmer)')
    add_id_text_file(bm25, 'docs')
    add_id_text_file(bm25, 'queries')
    _add_run_options(bm25, tag='bm25')
    _add_fuse(commands)
    _add_evaluate(commands)
    _add_benchmark(commands)
    export = commands.add_parser('cranfield-export', help='write Cranfield as docs.csv, queries.csv, qrels.trec')
    add_cranfield_data(export)
    export.add_argument('--out', type=Path, required=True, help='directory to write the three files into')


def _add_run_options(parser, tag):
    parser.add_argument('--k', type=int, default=100, help='documents per query (default: 100)')
    parser.add_argument('--out', type=Path, required=True, help='TREC run file to write')
    parser.add_argument('--tag', default=tag, help=f'run tag, the last column (default: {tag})')
    add_id_text_columns(parser)


def _add_fuse(commands):
    fuse = commands.add_parser('fuse', help='fuse TREC runs: reciprocal rank fusion or min-max weighted sum')
    fuse.add_argument('runs', type=Path, nargs='+', help='two or more TREC run files')
    fuse.add_argument('--method', choices=METHODS, default='rrf')
    fuse.add_argument('--weights', type=float, nargs='+', help='wsum: one weight per run (default: equal)')
    fuse.add_argument('--rrf-k', type=int, default=60, help='rrf: the constant k in 1 / (k + rank) (default: 60)')
    fuse.add_argument('--k', type=int, default=None, help='keep the best k documents per query (default: all)')
    fuse.add_argument('--out', type=Path, required=True, help='TREC run file to write')
    fuse.add_argument('--tag', default='fused')


def _add_evaluate(commands):
    from ..retrieval.evaluate import DEFAULT_METRICS
    evaluate = commands.add_parser('evaluate', help='ranking metrics of TREC runs against TREC qrels (ranx)')
    evaluate.add_argument('runs', type=Path, nargs='+', help='TREC run files')
    evaluate.add_argument('--qrels', type=Path, required=True, help='TREC qrels: qid 0 docid gain')
    evaluate.add_argument('--metrics', nargs='+', default=list(DEFAULT_METRICS),
                          help=f"ranx metric names (default: {' '.join(DEFAULT_METRICS)})")


def _add_benchmark(commands):
    benchmark = commands.add_parser('benchmark', help="a model vs BM25 vs their fusion on a collection's queries: "
                                    'a metrics table and three TREC runs')
    benchmark.add_argument('collection', type=Path, help='a BEIR folder (corpus.jsonl, queries.jsonl, qrels/SPLIT.tsv) '
                           'or a TREC-style folder (docs.csv, queries.csv, qrels.trec)')
    benchmark.add_argument('--model', type=Path, required=True, help=MODEL_HELP)
    benchmark.add_argument('--split', help='the qrels split to evaluate (default: test in a BEIR folder; a TREC-style '
                           'folder has one qrels file)')
    benchmark.add_argument('--out', type=Path, metavar='RUNS_DIR',
                           help='write the runs there as bm25.trec, relcollab.trec, rrf.trec and hybrid.trec')
    benchmark.add_argument('--k', type=int, default=100, help='documents per query in each run (default: 100)')
    add_bs(benchmark)
    add_bf16(benchmark)


def run_index(args):
    check_model_file(args.model)
    docs = read_id_texts(args.docs, args.id_col, args.text_col)
    learn = load_model(args.model)
    index = learn.index(docs, args.id_col, args.text_col, bs=args.bs, source=str(args.docs), bf16=args.bf16)
    if args.bm25:
        from ..retrieval.bm25 import BM25Baseline
        from ..retrieval.hybrid import save_hybrid_parts
        save_hybrid_parts(args.out, index, BM25Baseline().index(docs[args.id_col], docs[args.text_col]))
    else:
        index.save(args.out)
    print(f"relcollab: indexed {len(index)} documents (dim {index.dim}) {'and BM25 ' if args.bm25 else ''}into {args.out}")


def _hybrid_inputs(args, index) -> tuple:
    """`relcollab search --hybrid [DOCS]`: (BM25 over the index's documents, HybridSearch's options), checked against
    the index; (None, {}) without --hybrid. Without DOCS, BM25 and the settings come from the index folder (options
    given override its settings). Raises RelevanceDataError naming the option or the file."""
    from ..retrieval.bm25 import BM25Baseline
    from ..retrieval.hybrid import (FEEDBACK_DEPTH, FEEDBACK_WEIGHT, HYBRID_WEIGHT, check_hybrid_setting, first_difference,
                                    load_hybrid_parts)
    options = {name: value for name, value in (('weight', args.hybrid_weight), ('feedback_depth', args.feedback_depth),
                                                ('feedback_weight', args.feedback_weight)) if value is not None}
    if args.hybrid is None:
        if options: raise RelevanceDataError("--hybrid-weight, --feedback-depth and --feedback-weight go with --hybrid.")
        return None, {}
    if args.backend == 'faiss': raise RelevanceDataError("--hybrid scores every document exactly: leave out --backend faiss.")
    saved = {}
    if args.hybrid is INDEX_BM25:
        try: _, bm25, saved = load_hybrid_parts(args.index, index=index)
        except ValueError as error: raise RelevanceDataError(f"--hybrid: {error}") from None
    options = {**saved, **options}
    try: check_hybrid_setting(options.get('weight', HYBRID_WEIGHT), options.get('feedback_depth', FEEDBACK_DEPTH),
                              options.get('feedback_weight', FEEDBACK_WEIGHT))
    except ValueError as error: raise RelevanceDataError(f"--hybrid: {error}") from None
    if args.hybrid is INDEX_BM25: return bm25, options
    docs = read_id_texts(args.hybrid, args.id_col, args.text_col)
    ids = docs[args.id_col].tolist()
    differ = first_difference(ids, index.ids)
    if differ is not None:
        raise RelevanceDataError(f"--hybrid {args.hybrid}: its {len(ids)} documents are not the index's {len(index)} in "
                                 f"the same order (first difference at row {differ + 1}); pass the file the index was "
                                 f"built from (`relcollab index`).")
    return BM25Baseline().index(docs[args.id_col], docs[args.text_col]), options


def run_search(args):
    from ..retrieval.index import DocIndex, IndexMismatchError
    from ..retrieval.trec import run_frame, write_run
    check_model_file(args.model)
    queries = read_id_texts(args.queries, args.id_col, args.text_col)
    try: index = DocIndex.load(args.index, backend=args.backend)
    except ValueError as error:  # e.g. --backend faiss on an index with a lexical part
        raise RelevanceDataError(f"{args.index}: {error}") from None
    bm25, hybrid_options = _hybrid_inputs(args, index)  # checked before the model loads
    learn = load_model(args.model)
    if bm25 is None:
        results = learn.search(queries[args.text_col].tolist(), index, k=args.k, bs=args.bs, bf16=args.bf16)
    else:
        from ..retrieval.hybrid import HybridSearch
        try:
            hybrid = HybridSearch(learn, index, bm25, bs=args.bs, bf16=args.bf16, **hybrid_options)
        except IndexMismatchError:
            raise
        except ValueError as error:  # e.g. an index saved before the dense and lexical parts were stored apart
            raise RelevanceDataError(f"{args.index}: {error}") from None
        results = hybrid.search(queries[args.text_col].tolist(), k=args.k)
    write_run(run_frame(queries[args.id_col], results), args.out, tag=args.tag)
    print(f"relcollab: wrote the top {results.ids.shape[1]} documents of {len(queries)} queries to {args.out}")


def run_bm25(args):
    from ..retrieval.bm25 import BM25Baseline
    from ..retrieval.trec import run_frame, write_run
    docs = read_id_texts(args.docs, args.id_col, args.text_col)
    queries = read_id_texts(args.queries, args.id_col, args.text_col)
    results = BM25Baseline().index(docs[args.id_col], docs[args.text_col]).search(queries[args.text_col], k=args.k)
    write_run(run_frame(queries[args.id_col], results), args.out, tag=args.tag)
    print(f"relcollab: wrote BM25's top {results.ids.shape[1]} documents of {len(queries)} queries to {args.out}")


def run_fuse(args):
    from ..retrieval.fusion import normalized_fusion, reciprocal_rank_fusion
    from ..retrieval.trec import read_run, write_run
    if len(args.runs) < 2: raise RelevanceDataError("fuse needs at least two runs.")
    if args.weights is not None and (args.method != 'wsum' or len(args.weights) != len(args.runs)):
        raise RelevanceDataError(f"--weights go with --method wsum, one per run ({len(args.runs)} runs).")
    runs = [read_run(path) for path in args.runs]
    fused = (reciprocal_rank_fusion(runs, k=args.rrf_k) if args.method == 'rrf' else
             normalized_fusion(runs, weights=args.weights))
    if args.k is not None: fused = fused[fused['rank'] <= args.k]
    write_run(fused, args.out, tag=args.tag)
    print(f"relcollab: wrote the {args.method} fusion of {len(runs)} runs to {args.out}")


def markdown_table(rows: dict, columns: list) -> str:
    """A markdown table: one row per key of `rows` ({name: {column: value}}), numbers to 4 decimals.

    >>> print(markdown_table({'bm25.trec': {'map': 0.5}}, ['map']))
    | run | map |
    |---|---|
    | bm25.trec | 0.5000 |
    """
    lines = ['| run | ' + ' | '.join(columns) + ' |', '|---' * (len(columns) + 1) + '|']
    lines += [f'| {name} | ' + ' | '.join(f'{values[c]:.4f}' for c in columns) + ' |' for name, values in rows.items()]
    return '\n'.join(lines)


def run_evaluate(args):
    from ..retrieval.evaluate import evaluate_run
    from ..retrieval.trec import read_qrels, read_run
    qrels = read_qrels(args.qrels)
    rows = {}
    for path in args.runs:
        try:
            rows[str(path)] = evaluate_run(read_run(path), qrels, metrics=args.metrics)
        except RelevanceDataError as error:
            raise RelevanceDataError(f"{path}: {error}") from None
        except ValueError as error:  # an unknown metric name
            raise RelevanceDataError(str(error)) from None
    print(markdown_table(rows, args.metrics))


def run_benchmark(args):
    from .benchmark import benchmark_collection, write_runs
    check_model_file(args.model)
    collection = load_split(args.collection, args.split, default='test')
    split = collection.qrels['split'].iloc[0] if 'split' in collection.qrels.columns else None
    learn = load_model(args.model)
    result = benchmark_collection(learn, collection, split=split, k=args.k, bs=args.bs, bf16=args.bf16)
    n_queries = result.runs['bm25']['qid'].nunique()
    print(f"relcollab: {collection}, {f'split {split}, ' if split else ''}{n_queries} judged queries, top {args.k}")
    print(markdown_table(result.table.to_dict('index'), list(result.table.columns)))
    if args.out is not None:
        paths = write_runs(result.runs, args.out)
        print(f"relcollab: wrote {', '.join(map(str, paths))}")


def run_cranfield_export(args):
    from ..datasets.cranfield import load_cranfield, write_cranfield
    try:
        data = load_cranfield(args.data)
    except (ValueError, FileNotFoundError) as error:
        raise RelevanceDataError(str(error)) from None
    paths = write_cranfield(data, args.out)
    print(f"relcollab: wrote {data} as {', '.join(str(p) for p in paths.values())}")


RETRIEVAL_COMMANDS = {'index': run_index, 'search': run_search, 'bm25': run_bm25, 'fuse': run_fuse,
                      'evaluate': run_evaluate, 'benchmark': run_benchmark, 'cranfield-export': run_cranfield_export}
