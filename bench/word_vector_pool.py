"""How far do word vectors alone rank Cranfield? The idf-weighted mean of a text's word vectors, no training at all.

The dense part of relcollab's towers starts as exactly this (`pool_embeddings='idf'`: `EmbeddingPool` over the
language model's input embedding, which keeps the word vectors fixed); this script measures that start without a
model, for several sources, sizes and weightings, on the Cranfield protocol of `bench/cranfield.py` (same folds,
the same validation and test queries, all 1400 documents ranked, nDCG@10 and Recall@100):

    python bench/word_vector_pool.py [--fold K] [--teacher all-MiniLM-L6-v2]

- weighting: BM25's idf over the 1400 documents (as `document_idf` counts it with `documents=`), or uniform;
- centred: the mean document vector subtracted before the cosine (what a trained BatchNorm does);
- sizes: `'corpus'` vectors (PPMI + SVD of the documents and training queries, as `language_model_stage` makes
  them) at 128 dimensions (the `small` LM's emb_sz), 256 and 400; with `--teacher`, the teacher's encoding of
  each vocabulary word (as `word_vectors='all-MiniLM-L6-v2'` gives it) and both side by side.
It takes about a minute on 2 CPU cores (plus the teacher's encoding of ~5,000 words once, cached).
"""
import argparse
import warnings

import numpy as np

from cranfield import TEACHER_CACHE, evaluate, load_fold, results_from_scores
from relcollab.core.text import TextTokenizer, build_vocab
from relcollab.training.word_vectors import fit_to_size, vocab_vectors


def pooled(token_ids: list, vectors: np.ndarray, found: np.ndarray, weights: np.ndarray) -> np.ndarray:
    "The weighted mean of each text's word vectors, over the words that have one."
    out = np.zeros((len(token_ids), vectors.shape[1]), dtype=np.float32)
    for i, ids in enumerate(token_ids):
        ids = ids[found[ids]]
        if len(ids): out[i] = (vectors[ids] * weights[ids, None]).sum(0) / max(weights[ids].sum(), 1e-6)
    return out


def unit(rows: np.ndarray) -> np.ndarray: return rows / (np.linalg.norm(rows, axis=1, keepdims=True) + 1e-9)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('--fold', type=int, default=0)
    parser.add_argument('--teacher', default=None, metavar='DIR_OR_NAME')
    args = parser.parse_args(argv)
    warnings.simplefilter('ignore')
    data, (fit_ids, valid_ids, test_ids), qrels = load_fold(args.fold)
    docs, doc_ids = data.docs['text'].tolist(), data.docs['doc_id'].tolist()
    text_of = data.queries.set_index('query_id')['text']
    tokenize = TextTokenizer()
    doc_tokens = tokenize(docs)
    train_query_tokens = tokenize([text_of[q] for q in fit_ids + valid_ids])  # never a test query
    vocab = build_vocab(doc_tokens + train_query_tokens)
    index = {word: i for i, word in enumerate(vocab)}
    ids = lambda token_lists: [np.array([index.get(t, 0) for t in tokens]) for tokens in token_lists]
    doc_ids_tok = ids(doc_tokens)
    query_ids_tok = {split_: ids(tokenize([text_of[q] for q in qids])) for split_, qids in (('valid', valid_ids), ('test', test_ids))}
    df = np.zeros(len(vocab))
    for tokens in doc_ids_tok: df[np.unique(tokens)] += 1
    idf = np.log1p((len(docs) - df + 0.5) / (df + 0.5))
    corpus = doc_ids_tok + ids(train_query_tokens)

    sources = {f'corpus, {dim} dims': vocab_vectors('corpus', vocab, corpus=corpus, dim=dim) for dim in (128, 256, 400)}
    if args.teacher:
        from relcollab.training.teacher import load_teacher
        teacher = load_teacher(args.teacher)
        words, found = vocab_vectors(teacher, vocab, cache_dir=TEACHER_CACHE)
        sources[f'{args.teacher} words, {words.shape[1]} dims'] = (words, found)
        sources[f'{args.teacher} words, PCA to 128 dims'] = (fit_to_size(words, found, 128, 0.1), found)
        corpus_vectors, corpus_found = sources['corpus, 400 dims']
        both = np.concatenate([vectors / (vectors[f].std() or 1.) / np.sqrt(vectors.shape[1])
                               for vectors, f in ((corpus_vectors, corpus_found), (words, found))], axis=1)
        sources[f'corpus 400 + {args.teacher} words'] = (both, corpus_found | found)

    print(f"Cranfield fold {args.fold}: {len(test_ids)} test queries, {len(valid_ids)} validation; vocabulary "
          f"{len(vocab)} words; no training\n")
    print('| word vectors | weights | centred | test nDCG@10 | test R@100 | valid nDCG@10 |')
    print('|---|---|---|---|---|---|')
    for name, (vectors, found) in sources.items():
        for weight_name, weights in (('idf', idf), ('uniform', np.ones_like(idf))):
            doc_vectors = pooled(doc_ids_tok, vectors, found, weights)
            for centred in (False, True):
                mean = doc_vectors.mean(axis=0) if centred else 0.
                d = unit(doc_vectors - mean)
                metrics = {split_: evaluate(results_from_scores(unit(pooled(q, vectors, found, weights) - mean) @ d.T, doc_ids),
                                            valid_ids if split_ == 'valid' else test_ids, qrels)[0]
                           for split_, q in query_ids_tok.items()}
                print(f"| {name} | {weight_name} | {'yes' if centred else 'no'} | {metrics['test']['ndcg@10']:.3f} | "
                      f"{metrics['test']['recall@100']:.3f} | {metrics['valid']['ndcg@10']:.3f} |", flush=True)


if __name__ == '__main__':
    main()
