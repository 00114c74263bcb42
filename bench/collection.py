"""Index layouts at collection scale: the lexical part dense (format 1) vs sparse (format 2), one run.

A model with a lexical channel gives every document BM25-style term weights over the whole vocabulary. Index
format 1 stored them dense (vocabulary-size floats per document); format 2 (`learn.index`) keeps the dense
projection in `vectors.npy` and the term weights a document contains in a CSR matrix (`lexical.npz`). For each
collection size and layout, one fresh process indexes the collection, saves it and searches it:

- index size on disk (and the lexical part's bytes per document), peak RSS while indexing (and saving),
  seconds to index;
- per-query latency (median over the queries, one query per call): exact top-10 search of encoded query
  vectors, and `learn.search` from the query text (encoding included).

Documents are Cranfield abstracts (title + abstract, about 190 tokens) repeated to the size asked; the model is
a `small` relevance learner on Cranfield's vocabulary, untrained (its lexical channel is BM25, its dense part
random): the subject is the layout, and both layouts hold the same model's vectors. `--model DIR` uses a
trained model instead (`relcollab fit ... --out DIR`). Finally both layouts of Cranfield's 1400 documents
rank the 225 queries (top 100): how many rankings are identical, the largest score difference and nDCG@10.

    python bench/collection.py [--quick] [--sizes 10000 100000] [--model DIR] [--json PATH]

`--quick` indexes 2,000 and 10,000 documents.
"""
import argparse
import json
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from speed import DATA, WORK, cranfield, machine, relcollab_learner, rss_mb

LAYOUTS = ('dense-lexical', 'sparse-lexical')  # index format 1 (whole vectors) / format 2 (learn.index)
N_QUERIES = 100


def learner(data_dir, model_dir=None):
    "The model both layouts index with: a trained one from `model_dir`, else an untrained `small` one on Cranfield's vocabulary."
    import relcollab.retrieval  # noqa: F401  (patches learn.encode, .index, .search and .rank)
    cran, _, vocab = cranfield(data_dir)
    if model_dir is None: return cran, relcollab_learner(cran, vocab)
    from relcollab.retrieval.pretrained import load_pretrained
    return cran, load_pretrained(model_dir)


def build_index(learn, ids, texts, layout: str):
    "Format 2 is `learn.index`; format 1 held the whole vectors of `learn.encode` (term weights dense)."
    from relcollab.retrieval.index import DocIndex, model_fingerprint
    if layout == 'sparse-lexical': return learn.index(pd.DataFrame({'id': ids, 'text': texts}), progress=False)
    whole = learn.encode(texts, side='doc', bs=256, progress=False)
    return DocIndex(ids, whole, fingerprint=model_fingerprint(learn))


def directory_bytes(path: Path) -> dict:
    return {file.name: file.stat().st_size for file in path.iterdir()}


def worker(n_docs: int, layout: str, data_dir: str, model_dir):
    "Runs in its own process: indexes `n_docs` repeated Cranfield abstracts in `layout`, saves, searches; prints JSON."
    cran, learn = learner(data_dir, model_dir)
    abstracts = cran.docs['text'].tolist()
    texts = [abstracts[i % len(abstracts)] for i in range(n_docs)]
    ids = [f'd{i}' for i in range(n_docs)]
    queries = cran.queries['text'].tolist()[:N_QUERIES]
    learn.encode(abstracts[:256], side='doc', progress=False)  # buffers and thread pools warmed up
    try: Path('/proc/self/clear_refs').write_text('5')  # the peak restarts from here (Linux)
    except OSError: pass
    before = rss_mb('VmRSS')
    start = time.perf_counter()
    index = build_index(learn, ids, texts, layout)
    out = WORK/f'index-{layout}-{n_docs}'
    index.save(out)
    seconds = time.perf_counter() - start
    peak = rss_mb('VmHWM')
    del texts
    files = directory_bytes(out)
    lexical_bytes = (files.get('lexical.npz', 0) if index.lexical is not None
                     else index.vectors.nbytes * (1 - learn.model.head.dense_features / index.dim))
    encoded = (learn.encode(queries, side='query', output='both') if index.lexical is not None
               else learn.encode(queries, side='query'))
    exact, end_to_end = [], []
    for i in range(len(queries)):
        query = (type(encoded)(encoded.dense[i:i + 1], encoded.lexical[i]) if index.lexical is not None
                 else encoded[i:i + 1])
        start = time.perf_counter(); index.search_positions(query, k=10); exact.append(time.perf_counter() - start)
        start = time.perf_counter(); learn.search(queries[i], index, k=10); end_to_end.append(time.perf_counter() - start)
    print(json.dumps({'docs': n_docs, 'layout': layout, 'index_seconds': seconds, 'peak_rss_mb': peak,
                      'rss_before_mb': before, 'disk_mb': sum(files.values()) / 2 ** 20, 'files': files,
                      'lexical_bytes_per_doc': lexical_bytes / n_docs,
                      'dense_bytes_per_doc': files['vectors.npy'] / n_docs if index.lexical is not None
                      else index.vectors.nbytes / n_docs - lexical_bytes / n_docs,
                      'search_ms_median': 1e3 * float(np.median(exact)),
                      'search_text_ms_median': 1e3 * float(np.median(end_to_end))}))


def cranfield_agreement(data_dir, model_dir) -> dict:
    "Both layouts of Cranfield's 1400 documents rank all 225 queries: same top 100, same scores?"
    from relcollab.retrieval.evaluate import evaluate_run
    from relcollab.retrieval.trec import run_frame
    cran, learn = learner(data_dir, model_dir)
    ids, texts = cran.docs['doc_id'].astype(str).tolist(), cran.docs['text'].tolist()
    query_ids, queries = cran.queries['query_id'].astype(str).tolist(), cran.queries['text'].tolist()
    results = {layout: learn.search(queries, build_index(learn, ids, texts, layout), k=100) for layout in LAYOUTS}
    dense, sparse = (results[layout] for layout in LAYOUTS)
    found = {'cranfield_queries': len(queries),
             'cranfield_identical_rankings': int((dense.ids == sparse.ids).all(axis=1).sum()),
             'cranfield_max_score_difference': float(np.abs(dense.scores - sparse.scores).max())}
    for layout, result in results.items():
        metrics = evaluate_run(run_frame(query_ids, result), _qrels(cran), metrics=['ndcg@10'])
        found[f'cranfield_ndcg@10_{layout}'] = float(metrics['ndcg@10'])
    return found


def _qrels(cran):
    return cran.qrels.rename(columns={'query_id': 'qid', 'doc_id': 'docid'})[['qid', 'docid', 'gain']]


def report(results: dict, sizes) -> str:
    lines = [f"CPU: {results['cpu']} ({results['cpu_kind']}), {results['cores']} cores, torch {results['torch']}", '',
             '| documents | layout | index on disk | lexical bytes / doc | peak RSS indexing | index time | '
             'exact search / query | `learn.search` / query (text) |', '|---|---|---|---|---|---|---|---|']
    for n in sizes:
        for layout in LAYOUTS:
            r = results[f'{layout}_{n}']
            lines.append(f"| {n:,} | {layout} | {r['disk_mb']:.1f} MB | {r['lexical_bytes_per_doc']:,.0f} | "
                         f"{r['peak_rss_mb']:,.0f} MB | {r['index_seconds']:.0f} s | {r['search_ms_median']:.2f} ms | "
                         f"{r['search_text_ms_median']:.2f} ms |")
        dense, sparse = (results[f'{layout}_{n}'] for layout in LAYOUTS)
        lines.append(f"| {n:,} | sparse / dense | {sparse['disk_mb'] / dense['disk_mb']:.3f} | | "
                     f"{sparse['peak_rss_mb'] / dense['peak_rss_mb']:.2f} | {sparse['index_seconds'] / dense['index_seconds']:.2f} | "
                     f"{sparse['search_ms_median'] / dense['search_ms_median']:.3f} | "
                     f"{sparse['search_text_ms_median'] / dense['search_text_ms_median']:.3f} |")
    if 'cranfield_queries' in results:
        lines += ['', f"Cranfield, 1400 documents, {results['cranfield_queries']} queries, top 100: identical rankings "
                  f"{results['cranfield_identical_rankings']} of {results['cranfield_queries']}, largest score "
                  f"difference {results['cranfield_max_score_difference']:.2e}, nDCG@10 "
                  f"{results['cranfield_ndcg@10_dense-lexical']:.4f} (dense-lexical) vs "
                  f"{results['cranfield_ndcg@10_sparse-lexical']:.4f} (sparse-lexical)."]
    return '\n'.join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='2,000 and 10,000 documents')
    parser.add_argument('--sizes', type=int, nargs='+', default=None, help='collection sizes (default 10000 100000)')
    parser.add_argument('--model', default=None, help='a trained model directory (default: untrained small model)')
    parser.add_argument('--data', default=DATA, help='the Cranfield directory (default: $RELCOLLAB_CRANFIELD)')
    parser.add_argument('--json', type=Path, default=None, help='write every figure as one JSON object')
    parser.add_argument('--worker', nargs=2, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    if args.worker is not None: return worker(int(args.worker[0]), args.worker[1], args.data, args.model)
    sizes = args.sizes or ([2_000, 10_000] if args.quick else [10_000, 100_000])
    results, started = {**machine(), 'quick': args.quick, 'sizes': sizes}, time.time()
    for n in sizes:
        for layout in LAYOUTS:
            command = [sys.executable, __file__, '--worker', str(n), layout, '--data', str(args.data)]
            if args.model: command += ['--model', str(args.model)]
            done = subprocess.run(command, capture_output=True, text=True)
            if done.returncode: sys.exit(f"worker {n} {layout} failed:\n{done.stderr[-3000:]}")
            results[f'{layout}_{n}'] = json.loads(done.stdout.strip().splitlines()[-1])
            print(f"{n} {layout}: {json.dumps(results[f'{layout}_{n}'])}", flush=True)
    results.update(cranfield_agreement(args.data, args.model))
    results['total_seconds'] = time.time() - started
    print(report(results, sizes))
    if args.json: args.json.write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
