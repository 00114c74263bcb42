"""The options the `relcollab` subcommands share, defined once for `relcollab.app.cli` and `relcollab.app.retrieval_cli`.

    add_model(index)                 # positional MODEL: a pretrained directory or an exported learner
    add_id_text_file(index, 'docs')  # positional DOCS: CSV (or .tsv) with an id and a text column
    add_id_text_columns(index)       # --id-col, --text-col
    add_pair_columns(fit)            # --query-col, --doc-col[, --score-col]
    add_bs(index)                    # --bs (default: learn.encode's)
    add_bf16(index)                  # --bf16
    add_cranfield_data(demo)         # --data: the Cranfield directory
"""
from pathlib import Path

__all__ = ['MODEL_HELP', 'add_model', 'add_id_text_file', 'add_id_text_columns', 'add_pair_columns', 'add_bs',
           'add_bf16', 'add_cranfield_data']

MODEL_HELP = ('a model directory (`relcollab fit --pretrained`, `learn.save_pretrained`; no pickle) or an exported '
              'learner (.pkl: unpickled, so only files you trust)')


def add_model(parser, help_prefix: str = ''):
    "The positional `model` (a Path), described by `help_prefix` + MODEL_HELP."
    parser.add_argument('model', type=Path, help=help_prefix + MODEL_HELP)


def add_id_text_file(parser, name: str):
    "A positional table of ids and texts (`docs`, `queries`), a Path."
    parser.add_argument(name, type=Path, help='CSV (or .tsv) with an id and a text column')


def add_id_text_columns(parser):
    "--id-col and --text-col: the columns of an id, text table."
    parser.add_argument('--id-col', default='id', help='column with the ids (default: id)')
    parser.add_argument('--text-col', default='text', help='column with the texts (default: text)')


def add_pair_columns(parser, score: bool = True):
    "--query-col, --doc-col and (with `score`) --score-col: the columns of a pairs or triples table."
    parser.add_argument('--query-col', default='query', help='column with the query text (default: query)')
    parser.add_argument('--doc-col', default='doc', help='column with the document text (default: doc)')
    if score: parser.add_argument('--score-col', default='score', help='column with the relevance score (default: score)')


def add_bs(parser, default: int | None = None):
    "--bs: the batch size (default: `learn.encode`'s, `ENCODE_BS`)."
    if default is None:
        from ..retrieval.encode import ENCODE_BS
        default = ENCODE_BS
    parser.add_argument('--bs', type=int, default=default, help=f'batch size (default: {default})')


def add_bf16(parser):
    "--bf16: encode under bfloat16 autocast where the CPU or GPU runs it (`learn.encode(bf16=True)`)."
    parser.add_argument('--bf16', action='store_true',
                        help='encode under bfloat16 autocast: faster on CPUs with AMX or AVX512-BF16, a float32 '
                             'fallback with a warning elsewhere; vectors move by up to about 2e-3 (README, Speed)')


def add_cranfield_data(parser):
    "--data: the Cranfield directory (None: $RELCOLLAB_CRANFIELD, else download)."
    parser.add_argument('--data', type=Path, default=None,
                        help='Cranfield directory (default: $RELCOLLAB_CRANFIELD, else download)')
