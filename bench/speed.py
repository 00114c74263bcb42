"""Speed, side by side: every figure is a ratio against a baseline timed in the same run (shared machines are noisy).

    python bench/speed.py [--quick] [--json PATH] [--sections encode train rank scale memory teacher] [--teacher NAME]

- encode: tokens/s of `learn.encode` over Cranfield's 1400 documents vs fastai's `text_classifier_learner` +
  `get_preds` on the same texts (same `small` AWD-LSTM config, same vocabulary, no document cut), fp32 and bf16,
  each run tokenizing from scratch (relcollab's tokenizer cache is cleared before each);
  the encoder's GFLOP/s (the LSTMs' multiply-adds) vs a large matrix product timed alongside.
- train: (query, document) pairs per second during `fit` vs a plain PyTorch loop over the same model and batches;
  pairs scored per second with the in-batch score matrix vs one pair per encoding.
- rank: per-query latency from cached document vectors vs bm25s (text in, top 10 out; then reading the query and
  ranking from it, each against bm25s's matching half), and vs `learn.predict` on every pair.
- scale: exact top-10 over 1,000,000 synthetic 400-d vectors vs the memory-bandwidth bound; a faiss IVF index.
- memory: peak RSS of `learn.encode_to_file` over 10k and 100k synthetic documents (one fresh process each).
- teacher (only with `--sections teacher`, needs relcollab[teacher]): the student's encode throughput (the
  default model a teacher trains: `small` AWD-LSTM towers, BM25 term weights, the idf-weighted word pool of corpus
  vectors and the teacher's encoding of each word with its fitted skip map, vectors of the teacher's size) vs the
  teacher's own `encode` (`--teacher`, default all-MiniLM-L6-v2) on the same Cranfield documents and queries, fp32
  both, same threads: `encode_speedup_vs_teacher`.

Timings are medians of repeats that alternate between the two sides of each ratio. The models are built here
and untrained (the train section trains one for a few epochs): speed does not depend on the weights. torch
uses its default number of threads (OMP_NUM_THREADS sets it). On 2 idle cores `--quick` took 2 min 51 s and the
full run about 5 minutes (see the README, Speed).
"""
import argparse
import atexit
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from relcollab.core.bf16 import bf16_support

DATA = os.environ.get('RELCOLLAB_CRANFIELD', str(Path(__file__).resolve().parents[2]/'shared'/'data'/'cranfield'))
MAX_TOKENS = 1024  # no Cranfield document is cut (the longest has about 740 tokens), as fastai cuts none
K = 10
WORK = Path(tempfile.mkdtemp(prefix='relcollab-speed-'))  # models and vector files; removed at exit
TEACHER_CACHE = Path(os.environ.get('RELCOLLAB_TEACHER_CACHE', Path.home()/'.cache'/'relcollab'/'teacher'))  # as bench/cranfield.py
atexit.register(shutil.rmtree, WORK, ignore_errors=True)


# ----------------------------------------------------------------- timing
def timed(fn) -> tuple:
    start = time.perf_counter()
    result = fn()
    return time.perf_counter() - start, result


def interleaved(fns: dict, repeats: int, warmup: bool = False) -> dict:
    """Median seconds of each function, all run once per round (order alternating), so load drifts hit all alike.
    `warmup`: one untimed round first (first calls build kernels and caches)."""
    if warmup:
        for fn in fns.values(): fn()
    times = {name: [] for name in fns}
    for round_ in range(repeats):
        for name in (list(fns) if round_ % 2 == 0 else list(fns)[::-1]): times[name].append(timed(fns[name])[0])
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def per_call(fns: dict, items: list) -> dict:
    "Median seconds of each function called on each item, the functions alternating item by item."
    for fn in fns.values(): fn(items[0])  # warm-up
    times = {name: [] for name in fns}
    for item in items:
        for name, fn in fns.items(): times[name].append(timed(lambda: fn(item))[0])
    return {name: float(np.median(seconds)) for name, seconds in times.items()}


def rss_mb(field='VmHWM') -> float:
    """This process's peak (VmHWM) or current (VmRSS) resident memory in MB. Not getrusage's ru_maxrss: Linux
    keeps that across exec, so a child started by a large parent reports the parent's peak."""
    status = Path('/proc/self/status')
    if not status.exists(): return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 20  # macOS: bytes
    line = next(line for line in status.read_text().splitlines() if line.startswith(field + ':'))
    return int(line.split()[1]) / 1024  # kB


# ----------------------------------------------------------------- models
def cranfield(data_dir):
    from relcollab.datasets.cranfield import load_cranfield
    from relcollab.core.text import TextTokenizer, build_vocab
    cran = load_cranfield(data_dir)
    tokens = TextTokenizer(MAX_TOKENS)(cran.docs.text.tolist())
    return cran, tokens, build_vocab(tokens)


def relcollab_learner(cran, vocab, n_pairs=256, n_valid=64, bs=32, **kwargs):
    "A `small` relevance learner on `n_pairs` Cranfield training pairs (judged and random unjudged), untrained."
    from fastai.torch_core import set_seed
    from relcollab.all import RelevanceDataLoaders, cranfield_triples, relevance_config, relevance_learner
    pairs = cranfield_triples(cran, negatives=1).sample(n_pairs + n_valid, random_state=0)
    pairs['is_valid'] = np.arange(len(pairs)) >= n_pairs
    dls = RelevanceDataLoaders.from_df(pairs, vocab=vocab, valid_col='is_valid', score_range=(0, 4), bs=bs, seed=0,
                                       max_tokens=MAX_TOKENS, path=WORK)
    set_seed(0, reproducible=True)
    return relevance_learner(dls, config=relevance_config('small'), metrics=[], path=WORK, **kwargs)


def fastai_classifier(texts, vocab):
    "fastai's own text classifier with the same encoder config and vocabulary, and the texts as a test frame."
    from fastai.text.all import AWD_LSTM, TextDataLoaders, text_classifier_learner
    from relcollab.core.model import relevance_config
    frame = pd.DataFrame({'text': texts, 'label': np.arange(len(texts)) % 2})
    dls = TextDataLoaders.from_df(frame, text_col='text', label_col='label', text_vocab=vocab, valid_pct=0.1, seed=0,
                                  path=WORK)
    return text_classifier_learner(dls, AWD_LSTM, config=relevance_config('small'), pretrained=False), frame[['text']]


def lstm_macs_per_token(config: dict) -> int:
    "Multiply-adds of the AWD-LSTM's layers per token: 4 gates x hidden x (input + hidden) per layer."
    sizes = [config['emb_sz']] + [config['n_hid']] * (config['n_layers'] - 1) + [config['emb_sz']]
    return sum(4 * hidden * (inputs + hidden) for inputs, hidden in zip(sizes[:-1], sizes[1:]))


def padded_batches(learn, texts, bs) -> list:
    "The padded token batches `learn.encode` builds, made once (for timing the model alone)."
    from relcollab.retrieval.encode import _batches, _token_ids, pad_batch
    numericalize, pad_idx = learn.dls.numericalizer, learn.model.doc_tower.encoder.pad_idx
    tokens = learn.dls.tokenizer(texts)
    return [pad_batch([_token_ids(tokens[i], numericalize) for i in batch], pad_idx) for batch in _batches(texts, bs)]


def model_only(learn, batches, bf16=False):
    def run():
        learn.model.eval()
        with torch.inference_mode(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            for tokens in batches: learn.model.encode_doc(tokens)
    return run


def matmul(n, dtype=torch.float32):
    a, b = torch.randn(n, n).to(dtype), torch.randn(n, n).to(dtype)
    return lambda: a @ b


# ----------------------------------------------------------------- the student against its teacher
def teacher_section(cran, vocab, quick, teacher_name) -> dict:
    "Documents and queries per second: the distilled AWD-LSTM towers vs the sentence-transformers teacher."
    from relcollab.training.recipe import with_teacher_words
    from relcollab.training.teacher import load_teacher
    teacher = load_teacher(teacher_name, device='cpu')
    dim = teacher.get_sentence_embedding_dimension()
    # the student train_relevance_model(teacher=...) builds: the word pool of corpus vectors and the teacher's encoding
    # of each word (fixed lookups), its fitted skip map, BM25 term weights, dense vectors of the teacher's size
    learn = relcollab_learner(cran, vocab, proj_sz=dim, word_pool=with_teacher_words('corpus', teacher), pool_skip=True,
                              documents=cran.docs.text.tolist(), cache_dir=TEACHER_CACHE)
    for proj in (learn.model.head.query_proj, learn.model.head.doc_proj):  # a trained student's skip map is fitted
        n_skip = proj.skip[1] - proj.skip[0]                                  # (teacher and judgment starts): its cost
        proj.fit_map(torch.zeros(n_skip, dim), torch.zeros(dim))
    docs = cran.docs.text.tolist()[:300 if quick else None]
    queries = cran.queries.text.tolist()
    result = {'teacher': teacher_name, 'teacher_docs': len(docs)}
    for name, texts in (('docs', docs), ('queries', queries)):
        def student():
            learn.dls.tokenizer.clear_cache()
            return learn.encode(texts, side='doc' if name == 'docs' else 'query', progress=False)
        def teach(): return teacher.encode(texts, batch_size=64, convert_to_numpy=True, show_progress_bar=False)
        seconds = interleaved({'student': student, 'teacher': teach}, 1 if quick else 2, warmup=True)
        result[f'{name}_per_s_student'] = len(texts) / seconds['student']
        result[f'{name}_per_s_teacher'] = len(texts) / seconds['teacher']
        key = 'encode_speedup_vs_teacher' if name == 'docs' else 'encode_queries_speedup_vs_teacher'
        result[key] = seconds['teacher'] / seconds['student']
    return result


# ----------------------------------------------------------------- 1, 2: encoding and the hardware
def encode_section(cran, tokens, vocab, quick) -> tuple:
    texts, n_tokens = cran.docs.text.tolist(), sum(map(len, tokens))
    learn = relcollab_learner(cran, vocab, lexical=False)
    fastai_learn, frame = fastai_classifier(texts, vocab)
    outputs = {}
    def relcollab_encode(bf16):
        def run():
            learn.dls.tokenizer.clear_cache()  # every run tokenizes from scratch, as fastai's does
            outputs[bf16] = learn.encode(texts, side='doc', bf16=bf16, progress=False)
        return run
    def fastai_encode(dl=None):
        with fastai_learn.no_bar(): return fastai_learn.get_preds(dl=fastai_learn.dls.test_dl(frame) if dl is None else dl)
    batches, size = padded_batches(learn, texts, bs=128), 2048 if quick else 4096
    bf16, reason = bf16_support('cpu')
    fns = {'fastai': fastai_encode, 'relcollab': relcollab_encode(False), 'model': model_only(learn, batches),
           'matmul': matmul(size)}
    if bf16:  # (without native bf16, a bf16 matrix product runs at under 1 GFLOP/s: minutes for nothing)
        fns.update(relcollab_bf16=relcollab_encode(True), model_bf16=model_only(learn, batches, bf16=True),
                   matmul_bf16=matmul(size, torch.bfloat16))
    if not quick:  # fastai's get_preds alone, on texts tokenized before
        test_dl = fastai_learn.dls.test_dl(frame)
        fns['fastai_model'] = lambda: fastai_encode(test_dl)
    result = encode_ratios(interleaved(fns, 2 if quick else 3, warmup=True), n_tokens, matmul_flops=2 * size ** 3)
    result['bf16_lstm'] = 'supported' if bf16 else f'not supported on this CPU ({reason})'
    if bf16: result.update(bf16_deviation(learn, cran, outputs[False], outputs[True]))
    result.update(tokenize_ratio(texts, quick))
    if not quick: result.update(lexical_encode(cran, vocab, texts, n_tokens, bf16))
    return result, learn


def tokenize_ratio(texts, quick) -> dict:
    "relcollab's tokenizer, from an empty cache each time, vs fastai's `Tokenizer` called on each text in one process."
    from fastai.text.core import SpacyTokenizer, Tokenizer, defaults
    from relcollab.core.text import TextTokenizer
    fastai_tokenizer, tokenizer = Tokenizer(SpacyTokenizer(), rules=defaults.text_proc_rules), TextTokenizer(MAX_TOKENS)
    def relcollab_tokenize():
        tokenizer.clear_cache()
        return tokenizer(texts)
    seconds = interleaved({'fastai': lambda: [fastai_tokenizer(text) for text in texts], 'relcollab': relcollab_tokenize},
                          2 if quick else 3)
    return {'tokenize_speedup_vs_fastai_one_process': seconds['fastai'] / seconds['relcollab']}


def encode_ratios(seconds: dict, n_tokens: int, matmul_flops: int) -> dict:
    from relcollab.core.model import relevance_config
    flops = 2 * lstm_macs_per_token(relevance_config('small')) * n_tokens
    rate = {name: flops / seconds[name] for name in ('model', 'model_bf16') if name in seconds}
    rate.update({name: matmul_flops / seconds[name] for name in ('matmul', 'matmul_bf16') if name in seconds})
    result = {'encode_tokens': n_tokens, 'encode_tokens_per_s': n_tokens / seconds['relcollab'],
              'encode_fastai_tokens_per_s': n_tokens / seconds['fastai'],
              'encode_speedup_vs_fastai': seconds['fastai'] / seconds['relcollab'],
              'encoder_gflops': rate['model'] / 1e9, 'matmul_gflops': rate['matmul'] / 1e9,
              'encoder_fraction_of_matmul_peak': rate['model'] / rate['matmul']}
    if 'relcollab_bf16' in seconds:  # only where the CPU runs the LSTM in bfloat16 (see relcollab.bf16)
        result.update({'encode_bf16_speedup_vs_fastai': seconds['fastai'] / seconds['relcollab_bf16'],
                       'encode_bf16_speedup_vs_fp32': seconds['relcollab'] / seconds['relcollab_bf16'],
                       'encoder_bf16_gflops': rate['model_bf16'] / 1e9, 'matmul_bf16_gflops': rate['matmul_bf16'] / 1e9,
                       'encoder_bf16_fraction_of_bf16_matmul_peak': rate['model_bf16'] / rate['matmul_bf16']})
    if 'fastai_model' in seconds: result['encode_model_speedup_vs_fastai_get_preds'] = seconds['fastai_model'] / seconds['model']
    return result


def score_matrix(learn, query_vectors, doc_vectors) -> np.ndarray:
    "Scores in the user's units of every query against every document (the head's scale, bias and sigmoid)."
    from fastai.layers import sigmoid_range
    head = learn.model.head
    with torch.no_grad():
        logits = torch.from_numpy(query_vectors @ doc_vectors.T) * head.log_scale.exp() + head.bias
        return learn.dls.score_scaler.decode(sigmoid_range(logits, *head.y_range)).numpy()


def bf16_deviation(learn, cran, docs_fp32, docs_bf16) -> dict:
    "How far bf16 autocast moves the scores of every (Cranfield query, document) pair, and the top 10s."
    from relcollab.retrieval.index import top_k
    queries = cran.queries.text.tolist()
    fp32 = score_matrix(learn, learn.encode(queries), docs_fp32)
    bf16 = score_matrix(learn, learn.encode(queries, bf16=True), docs_bf16)
    top_fp32, top_bf16 = top_k(fp32, K)[0], top_k(bf16, K)[0]
    overlap = np.mean([len(set(a) & set(b)) / K for a, b in zip(top_fp32, top_bf16)])
    return {'bf16_max_score_deviation': float(np.abs(fp32 - bf16).max()), 'bf16_score_range': 4.0,
            'bf16_max_vector_deviation': float(np.abs(docs_fp32 - docs_bf16).max()), 'bf16_top10_agreement': float(overlap)}


def lexical_encode(cran, vocab, texts, n_tokens, bf16: bool) -> dict:
    """The default recipe's lexical towers (dense dimensions plus one term weight per vocabulary entry), and bf16's
    effect on a ranking that means something: untrained, their term weights are BM25's."""
    learn = relcollab_learner(cran, vocab, lexical='bm25', in_batch=True)
    seconds, fp32 = timed(lambda: learn.encode(texts, side='doc', progress=False))
    result = {'encode_lexical_tokens_per_s': n_tokens / seconds, 'encode_lexical_dim': int(fp32.shape[1])}
    if bf16:
        deviation = bf16_deviation(learn, cran, fp32, learn.encode(texts, side='doc', bf16=True, progress=False))
        result.update({f'lexical_{key}': value for key, value in deviation.items()})
    return result


# ----------------------------------------------------------------- 3: training
def plain_torch_epoch(model, dls, loss_func, opt):
    "One epoch the PyTorch way: forward, loss, backward, step over the training batches; then the validation loss."
    model.train()
    for query, doc, target in dls.train:
        loss = loss_func(model(query, doc), target)
        loss.backward()
        opt.step()
        opt.zero_grad()
    model.eval()
    with torch.no_grad():
        for query, doc, target in dls.valid: loss_func(model(query, doc), target)


def train_section(cran, vocab, quick) -> dict:
    n_pairs, lr = (128 if quick else 384), 1e-3
    pointwise = relcollab_learner(cran, vocab, n_pairs=n_pairs, in_batch=False, lexical=False)
    in_batch = relcollab_learner(cran, vocab, n_pairs=n_pairs, in_batch=True, lexical=False)
    for learn in (pointwise, in_batch): learn.dls.train.shuffle = False  # the same batches in every epoch and loop
    # fastai's default optimizer is Adam with decoupled weight decay 0.01, betas (0.9, 0.99), eps 1e-5
    opt = torch.optim.AdamW(pointwise.model.parameters(), lr=lr, betas=(0.9, 0.99), eps=1e-5, weight_decay=0.01)
    def fastai_fit(learn):
        def fit():
            with learn.no_bar(), learn.no_logging(): learn.fit(1, lr)
        return fit
    seconds = interleaved({'plain': lambda: plain_torch_epoch(pointwise.model, pointwise.dls, pointwise.loss_func, opt),
                           'fastai': fastai_fit(pointwise), 'in_batch': fastai_fit(in_batch)}, 3 if quick else 4, warmup=True)
    sizes = [len(target) for _, _, target in pointwise.dls.train]
    pairs, matrix_pairs = sum(sizes), sum(size ** 2 for size in sizes)
    return {'train_pairs_per_s': pairs / seconds['fastai'], 'train_plain_torch_pairs_per_s': pairs / seconds['plain'],
            'train_overhead_vs_plain_torch': seconds['fastai'] / seconds['plain'] - 1,
            'train_in_batch_pairs_per_s': matrix_pairs / seconds['in_batch'],
            'train_in_batch_pairs_ratio': (matrix_pairs / seconds['in_batch']) / (pairs / seconds['fastai']),
            'train_in_batch_step_time_ratio': seconds['in_batch'] / seconds['fastai'], 'train_bs': sizes[0]}


# ----------------------------------------------------------------- 4: ranking
def rank_section(learn, cran, quick) -> dict:
    """Text in, top 10 out, one query at a time and all at once, vs bm25s; then each half on its own, against
    bm25s's matching half: reading the query (relcollab encodes it, bm25s tokenizes and stems it), and ranking
    from what that gave (a dot product with the cached document vectors; BM25 scores from the tokens)."""
    from relcollab.retrieval.bm25 import BM25Baseline
    from relcollab.retrieval.index import top_k
    learn.model.eval()  # as after fit or loading (encode would switch modes on every call otherwise)
    index = learn.index(cran.docs, id_col='doc_id', text_col='text', progress=False)
    bm25 = BM25Baseline().index(cran.docs.doc_id, cran.docs.text)
    queries = cran.queries.text.tolist()[:60 if quick else None]
    latency = per_call({'relcollab': lambda q: learn.search([q], index, k=K), 'bm25': lambda q: bm25.search([q], k=K)},
                       queries)
    batched = interleaved({'relcollab': lambda: learn.search(queries, index, k=K),
                           'bm25': lambda: bm25.search(queries, k=K)}, 3, warmup=True)
    vectors, tokens = learn.encode(queries), bm25.tokenize(queries)
    positions = list(range(len(queries)))
    halves = {**per_call({'encode': lambda i: learn.encode(queries[i]),
                          'bm25_tokenize': lambda i: bm25.tokenize([queries[i]])}, positions),
              **per_call({'from_vector': lambda i: index.search(vectors[i], K),
                          'bm25_from_tokens': lambda i: top_k(bm25.retriever.get_scores(tokens[i])[None], K)}, positions)}
    rng = np.random.default_rng(0)
    pairs = [(queries[rng.integers(len(queries))], cran.docs.text.iloc[rng.integers(len(cran.docs))])
             for _ in range(20 if quick else 60)]
    with learn.no_bar():
        predict = per_call({'predict': lambda pair: learn.predict(*pair)}, pairs)['predict']
    return {'rank_ms_per_query': 1e3 * latency['relcollab'], 'rank_bm25_ms_per_query': 1e3 * latency['bm25'],
            'rank_speedup_vs_bm25': latency['bm25'] / latency['relcollab'],
            'rank_batched_ms_per_query': 1e3 * batched['relcollab'] / len(queries),
            'rank_bm25_batched_ms_per_query': 1e3 * batched['bm25'] / len(queries),
            'rank_batched_speedup_vs_bm25': batched['bm25'] / batched['relcollab'],
            'rank_query_encode_ms': 1e3 * halves['encode'], 'rank_from_vector_ms': 1e3 * halves['from_vector'],
            'rank_bm25_tokenize_ms': 1e3 * halves['bm25_tokenize'], 'rank_bm25_from_tokens_ms': 1e3 * halves['bm25_from_tokens'],
            'rank_from_vector_speedup_vs_bm25_from_tokens': halves['bm25_from_tokens'] / halves['from_vector'],
            'rank_predict_ms_per_query': 1e3 * predict * len(cran.docs),
            'rank_speedup_vs_predict': predict * len(cran.docs) / latency['relcollab'], 'rank_queries': len(queries)}


# ----------------------------------------------------------------- 5: scale
def synthetic_vectors(n, dim, n_clusters, noise, seed) -> tuple:
    "`n` unit vectors around `n_clusters` random centres (embeddings cluster by topic), and the centres."
    rng = np.random.default_rng(seed)
    centres = rng.standard_normal((n_clusters, dim), dtype=np.float32)
    vectors = np.empty((n, dim), dtype=np.float32)
    for start in range(0, n, 65536):
        rows = vectors[start:start + 65536]
        rows[:] = centres[rng.integers(0, n_clusters, len(rows))]
        rows += noise * rng.standard_normal(rows.shape, dtype=np.float32)
        rows /= np.linalg.norm(rows, axis=1, keepdims=True)
    return vectors, centres


def read_bandwidth(vectors: np.ndarray, repeats=5) -> float:
    "Bytes per second of the fastest full read of `vectors` (a sum, by numpy and by torch)."
    tensor = torch.from_numpy(vectors)
    seconds = interleaved({'numpy': lambda: vectors.sum(), 'torch': lambda: tensor.sum()}, repeats)
    return vectors.nbytes / min(seconds.values())


def bf16_search(matrix: torch.Tensor, query: np.ndarray, k=K):
    scores = torch.mv(matrix, torch.from_numpy(query).to(matrix.dtype))
    values, positions = torch.topk(scores, k)
    return positions.numpy(), values.float().numpy()


def scale_section(quick) -> dict:
    from relcollab.retrieval.index import exact_search
    n, dim = 1_000_000, 400
    vectors, centres = synthetic_vectors(n, dim, n_clusters=10_000, noise=1.0, seed=0)
    queries, _ = synthetic_vectors(20 if quick else 50, dim, n_clusters=10_000, noise=1.0, seed=0)  # same centres
    queries = queries[::-1].copy()
    bandwidth = read_bandwidth(vectors)
    stored = {'bf16': torch.from_numpy(vectors).bfloat16()}
    exact = {}
    latency = per_call({'fp32': lambda q: exact.__setitem__(q.tobytes(), exact_search(q[None], vectors, K)),
                        'bf16': lambda q: bf16_search(stored['bf16'], q)}, list(queries))
    truth = [exact[q.tobytes()][0][0] for q in queries]
    agreement, worst = [], 0.
    for q, best in zip(queries, truth):
        positions, values = bf16_search(stored['bf16'], q)
        agreement.append(len(set(positions) & set(best)) / K)
        worst = max(worst, float(np.abs(vectors[positions] @ q - values).max()))
    bound_fp32, bound_bf16 = vectors.nbytes / bandwidth, vectors.nbytes / 2 / bandwidth
    result = {'exact_1m_ms_per_query': 1e3 * latency['fp32'], 'bandwidth_gb_per_s': bandwidth / 1e9,
              'exact_1m_bound_ms': 1e3 * bound_fp32, 'exact_1m_over_bandwidth_bound': latency['fp32'] / bound_fp32,
              'exact_1m_bf16_ms_per_query': 1e3 * latency['bf16'],
              'exact_1m_bf16_over_bandwidth_bound': latency['bf16'] / bound_bf16,
              'exact_1m_bf16_speedup_vs_fp32': latency['fp32'] / latency['bf16'],
              'exact_1m_bf16_recall_at_10': float(np.mean(agreement)), 'exact_1m_bf16_max_score_error': worst}
    stored.clear()  # 0.8 GB back before faiss copies the vectors
    result.update(faiss_ivf(vectors, queries, truth, latency['fp32'], quick))
    return result


def faiss_ivf(vectors, queries, truth, exact_seconds, quick) -> dict:
    "An IVF-Flat inner-product index (trained on a sample), its recall@10 against exact search and its speedup."
    try:
        import faiss
    except ImportError:
        print('faiss not installed (pip install "relcollab[speed]"): no faiss figures', file=sys.stderr)
        return {}
    faiss.omp_set_num_threads(torch.get_num_threads())
    n_lists = 1024
    ivf = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], n_lists, faiss.METRIC_INNER_PRODUCT)
    sample = np.random.default_rng(1).choice(len(vectors), 40 * n_lists, replace=False)
    build, _ = timed(lambda: (ivf.train(vectors[np.sort(sample)]), ivf.add(vectors)))
    result = {'faiss_ivf_lists': n_lists, 'faiss_ivf_build_s': build}
    for n_probe in (8, 32, 128):
        ivf.nprobe = n_probe
        found = {}
        seconds = per_call({'ivf': lambda q: found.__setitem__(q.tobytes(), ivf.search(q[None], K)[1][0])}, list(queries))
        recall = np.mean([len(set(found[q.tobytes()]) & set(best)) / K for q, best in zip(queries, truth)])
        result[f'faiss_ivf_nprobe{n_probe}_recall_at_10'] = float(recall)
        result[f'faiss_ivf_nprobe{n_probe}_speedup_vs_exact'] = exact_seconds / seconds['ivf']
    return result


# ----------------------------------------------------------------- 6: memory
class SyntheticDocs:
    "`n` made-up documents of `words` (low, high) words, generated on the fly: the collection is never in memory."
    def __init__(self, n, words=(6, 20), seed=0):
        self.n, self.words, self.seed = n, words, seed
        syllables = [c + v for c in 'bdfgklmnprstvz' for v in 'aeiou']
        rng = np.random.default_rng(12345)
        self.vocabulary = sorted({''.join(rng.choice(syllables, rng.integers(2, 4))) for _ in range(3000)})

    def __len__(self): return self.n

    def __iter__(self):
        rng = np.random.default_rng(self.seed)
        for _ in range(self.n):
            yield ' '.join(rng.choice(self.vocabulary, rng.integers(*self.words)))


def rss_worker(n_docs: int, quick: bool):
    "Runs in its own process: builds a `small` learner, streams `n_docs` synthetic documents to a file, prints RSS."
    from relcollab.all import RelevanceDataLoaders, relevance_config, relevance_learner
    docs = SyntheticDocs(n_docs, words=(4, 12) if quick else (10, 40))
    sample = list(SyntheticDocs(2000, docs.words, seed=1))
    frame = pd.DataFrame({'query': [d[:20] for d in sample], 'doc': sample, 'score': np.arange(2000) % 5})
    dls = RelevanceDataLoaders.from_df(frame, bs=32, seed=0, path=WORK)
    learn = relevance_learner(dls, config=relevance_config('small'), lexical=False, path=WORK)  # 256-d vectors
    learn.encode(sample[:256], side='doc', progress=False)  # every buffer and thread pool warmed up
    try: Path('/proc/self/clear_refs').write_text('5')  # the peak restarts from here (Linux)
    except OSError: pass
    before = rss_mb('VmRSS')
    seconds, vectors = timed(lambda: learn.encode_to_file(docs, WORK/'vectors.npy', side='doc', progress=False))
    print(json.dumps({'docs': n_docs, 'peak_rss_mb': rss_mb('VmHWM'), 'rss_before_mb': before, 'seconds': seconds,
                      'shape': list(vectors.shape)}))


def memory_section(quick) -> dict:
    result = {}
    for n_docs, name in ((10_000, '10k'), (100_000, '100k')):
        command = [sys.executable, __file__, '--rss-worker', str(n_docs)] + (['--quick'] if quick else [])
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        measured = json.loads(done.stdout.strip().splitlines()[-1])
        result[f'peak_rss_mb_{name}'] = measured['peak_rss_mb']
        result[f'rss_before_encoding_mb_{name}'] = measured['rss_before_mb']
        result[f'encode_to_file_docs_per_s_{name}'] = n_docs / measured['seconds']
    result['peak_rss_ratio_100k_over_10k'] = result['peak_rss_mb_100k'] / result['peak_rss_mb_10k']
    return result


# ----------------------------------------------------------------- report
GOALS = [  # (key, what, goal text, met?)
    ('encode_speedup_vs_teacher', 'encode documents: the distilled student vs its teacher (docs/s)', '>= 10x', lambda v: v >= 10),
    ('encode_queries_speedup_vs_teacher', 'encode queries: the student vs its teacher (queries/s)', '', None),
    ('encode_speedup_vs_fastai', 'encode: learn.encode vs fastai get_preds (tokens/s)', '>= 1.5x', lambda v: v >= 1.5),
    ('tokenize_speedup_vs_fastai_one_process', "tokenizing: relcollab's (empty cache) vs fastai's Tokenizer, one process", '', None),
    ('encode_bf16_speedup_vs_fastai', 'encode, bf16 autocast, vs fastai', '', None),
    ('encode_bf16_speedup_vs_fp32', 'encode, bf16 autocast vs fp32', '', None),
    ('bf16_max_score_deviation', 'bf16: largest score change, all query x doc pairs (0..4 scale)', 'negligible?', None),
    ('bf16_top10_agreement', 'bf16: top-10 overlap with fp32 (untrained dense model)', '', None),
    ('lexical_bf16_top10_agreement', 'bf16: top-10 overlap with fp32 (BM25-initialised lexical model)', '', None),
    ('encoder_fraction_of_matmul_peak', 'encoder GFLOP/s / fp32 matmul GFLOP/s', 'report', None),
    ('encoder_bf16_fraction_of_bf16_matmul_peak', 'bf16 encoder GFLOP/s / bf16 matmul GFLOP/s', 'report', None),
    ('train_overhead_vs_plain_torch', 'fit time / plain PyTorch loop time - 1', '<= 0.10', lambda v: v <= 0.10),
    ('train_in_batch_pairs_ratio', 'pairs scored/s: in-batch matrix vs one pair per encoding', 'report', None),
    ('rank_speedup_vs_bm25', 'per-query latency: bm25s / relcollab (one query at a time)', '> 1', lambda v: v > 1),
    ('rank_batched_speedup_vs_bm25', 'same, all queries in one call', '', None),
    ('rank_query_encode_ms', 'reading one query (ms): relcollab encodes it', '', None),
    ('rank_bm25_tokenize_ms', 'reading one query (ms): bm25s tokenizes and stems it', '', None),
    ('rank_from_vector_speedup_vs_bm25_from_tokens', 'ranking only: bm25s from tokens / relcollab from cached vectors', '> 1', lambda v: v > 1),
    ('rank_speedup_vs_predict', 'per-query latency: learn.predict on every pair / relcollab', '>= 1000x', lambda v: v >= 1000),
    ('exact_1m_over_bandwidth_bound', 'exact top-10 over 1M x 400 fp32 / bandwidth bound', '<= 2x', lambda v: v <= 2),
    ('exact_1m_bf16_over_bandwidth_bound', 'same, bf16 storage / its bound', '', None),
    ('exact_1m_bf16_recall_at_10', 'bf16 storage: top-10 overlap with fp32', '', None),
    *[(f'faiss_ivf_nprobe{p}_{m}', f'faiss IVF1024 nprobe {p}: {w}', 'report', None) for p in (8, 32, 128)
      for m, w in (('recall_at_10', 'recall@10 vs exact'), ('speedup_vs_exact', 'speedup vs exact fp32'))],
    ('peak_rss_mb_10k', 'peak RSS, encode_to_file 10k docs (MB)', 'bounded', None),
    ('peak_rss_mb_100k', 'peak RSS, encode_to_file 100k docs (MB)', 'not growing', None),
    ('peak_rss_ratio_100k_over_10k', 'peak RSS 100k / 10k', '~1', lambda v: v < 1.1),
]


def report(results: dict) -> str:
    lines = [f"CPU: {results['cpu']} ({results['cpu_kind']}), {results['cores']} cores, torch {results['torch']} on "
             f"{results['torch_threads']} threads; bf16 LSTM: {results.get('bf16_lstm', 'not measured')}", '',
             '| figure | what | value | goal | met |', '|---|---|---|---|---|']
    for key, what, goal, check in GOALS:
        if key not in results: continue
        met = '' if check is None else ('yes' if check(results[key]) else 'no')
        lines.append(f"| `{key}` | {what} | {results[key]:.3g} | {goal} | {met} |")
    return '\n'.join(lines)


def machine() -> dict:
    cpu = next((line.split(':', 1)[1].strip() for line in Path('/proc/cpuinfo').read_text().splitlines()
                if line.startswith('model name')), platform.processor()) if Path('/proc/cpuinfo').exists() else platform.processor()
    return {'cpu': cpu, 'cpu_kind': cpu_kind(), 'cores': os.cpu_count(), 'torch_threads': torch.get_num_threads(),
            'torch': torch.__version__, 'load_average_at_start': os.getloadavg()[0]}


def cpu_kind() -> str:
    "What decides the CPU-dependent ratios (bf16, the matmul peak): torch's kernel level and the bf16 flags."
    flags = set()
    if Path('/proc/cpuinfo').exists():
        flags = set(next((line.split(':', 1)[1].split() for line in Path('/proc/cpuinfo').read_text().splitlines()
                          if line.startswith('flags')), []))
    found = [flag for flag in ('avx512_bf16', 'amx_bf16') if flag in flags]
    return f"torch kernels {torch.backends.cpu.get_cpu_capability()}, " + (', '.join(found) or 'no bf16 instructions')


SECTIONS = ('encode', 'train', 'rank', 'scale', 'memory', 'teacher')
DEFAULT_SECTIONS = SECTIONS[:-1]  # the teacher section needs relcollab[teacher]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--quick', action='store_true', help='fewer repeats and smaller sizes: about 4 minutes')
    parser.add_argument('--json', type=Path, default=None, help='write every figure as one flat JSON object')
    parser.add_argument('--data', default=DATA, help='the Cranfield directory (default: $RELCOLLAB_CRANFIELD)')
    parser.add_argument('--sections', nargs='+', default=list(DEFAULT_SECTIONS), choices=SECTIONS)
    parser.add_argument('--teacher', default='all-MiniLM-L6-v2', help='the teacher of the teacher section')
    parser.add_argument('--rss-worker', type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    if args.rss_worker is not None: return rss_worker(args.rss_worker, args.quick)
    results, started = {**machine(), 'quick': args.quick}, time.time()
    if {'encode', 'train', 'rank', 'teacher'} & set(args.sections): cran, tokens, vocab = cranfield(args.data)
    learn = None
    for section in args.sections:
        start = time.time()
        if section == 'encode': found, learn = encode_section(cran, tokens, vocab, args.quick)
        elif section == 'train': found = train_section(cran, vocab, args.quick)
        elif section == 'rank': found = rank_section(learn or relcollab_learner(cran, vocab, lexical=False), cran, args.quick)
        elif section == 'scale': found = scale_section(args.quick)
        elif section == 'teacher': found = teacher_section(cran, vocab, args.quick, args.teacher)
        else: found = memory_section(args.quick)
        results.update(found)
        print(f"{section}: {time.time() - start:.0f} s " + json.dumps({k: round(v, 4) if isinstance(v, float) else v
                                                                     for k, v in found.items()}), flush=True)
    results['total_seconds'] = time.time() - started
    print(report(results))
    if args.json: args.json.write_text(json.dumps(results, indent=1))


if __name__ == '__main__':
    main()
