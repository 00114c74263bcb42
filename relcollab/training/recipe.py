"""The whole ULMFiT recipe in one call: language model on all texts, then the relevance towers."""
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np
import pandas as pd
from fastai.torch_core import set_seed

from .checkpoint import checkpoint_progress, finished_lm, fit_stages, mark_lm_done, run_fingerprint, ulmfit_stages
from ..core.model import lexical_mode, relevance_config
from ..core.data import RelevanceDataLoaders
from .distill import distillation_callback, fit_teacher_stage, start_in_teacher_space
from .judgment_start import ANCHOR_WEIGHT, finish_from_judgments, start_from_judgments
from .learner import RelevanceLearner, relevance_learner
from .lm import language_model_stage
from .pseudo import pseudo_queries
from .self_supervised import as_self_supervised
from .teacher import load_teacher
from ..core.validation import check_triples

__all__ = ['query_split', 'with_pseudo_queries', 'fine_tune_relevance', 'train_relevance_model', 'relevance_lr',
           'with_teacher_words']

LR = 1e-2  # the relevance stage's peak learning rate (ULMFiT's), with or without the word pool (README, The word pool)
TEACHER_LR = 1e-3  # when the word pool holds the teacher's word vectors (README, Learning from a teacher)
TEACHER_EMBEDDING_WEIGHT = 10.  # the embedding distillation term against the relevance loss (README, the teacher start)


def query_split(df: pd.DataFrame, query_col='query', valid_pct=0.2, seed=0) -> pd.Series:
    """A boolean `is_valid` column that holds out whole queries, so validation measures unseen queries.

    >>> int(query_split(pd.DataFrame({'query': list('aabbccddee')}), valid_pct=0.2).sum())
    2
    """
    queries = pd.unique(df[query_col])
    n_valid = max(1, int(round(len(queries) * valid_pct))) if len(queries) > 1 else 0
    valid_queries = set(np.random.default_rng(seed).permutation(queries)[:n_valid])
    return df[query_col].isin(valid_queries).rename('is_valid')


def with_pseudo_queries(df, query_col, doc_col, score_col, valid_col, per_doc=4, score_range=None, seed=0, corpus=()):
    """`df` plus `per_doc` pseudo-queries for each distinct training document and `corpus` text, at the top score.

    The caller's frame is not changed; validation rows get none (they measure real queries only).

    >>> with_pseudo_queries(df, 'query', 'doc', 'score', 'is_valid', per_doc=2)  # doctest: +SKIP
    """
    if not per_doc: return df
    train_docs = pd.unique(pd.concat([df.loc[~df[valid_col].astype(bool), doc_col], pd.Series(list(corpus), dtype=object)]))
    top = float(score_range[1]) if score_range is not None else float(pd.to_numeric(df[score_col]).max())
    weak = pseudo_queries(train_docs, n_per_doc=per_doc, score=top, seed=seed, query_col=query_col,
                          doc_col=doc_col, score_col=score_col).assign(**{valid_col: False})
    return pd.concat([df, weak], ignore_index=True)  # df's other columns are empty for the pseudo-queries


def fine_tune_relevance(learn: RelevanceLearner, epochs=4, lr=1e-2, freeze_epochs=1, checkpoint_dir=None,
                        resume=False):
    """ULMFiT's schedule: the head alone, then the last LSTM layer too, then everything with discriminative lrs.

    With `checkpoint_dir`, a checkpoint is written atomically after every epoch; `resume=True` continues from
    it after a crash (see `relcollab.training.checkpoint`).

    >>> fine_tune_relevance(learn, epochs=4, lr=1e-2)  # doctest: +SKIP
    """
    return fit_stages(learn, ulmfit_stages(epochs, lr, freeze_epochs), checkpoint_dir=checkpoint_dir, resume=resume)


def train_relevance_model(df, query_col='query', doc_col='doc', score_col='score', corpus=(), size='small',
                          lm_epochs=4, epochs=4, valid_pct=0.2, valid_col=None, bs=32, seed=0, score_range=None,
                          lr=None, pretrained=None, path='.', source='data', checkpoint_dir=None,
                          resume=False, pseudo_per_doc=4, in_batch=True, lexical='auto', teacher=None,
                          teacher_cache=None, proj_sz=None, drop_mult=1., word_vectors='auto',
                          pool_embeddings=None, self_supervised=None, documents=None, teacher_epochs=0,
                          teacher_per_doc=8, word_pool='auto', teacher_start=True,
                          embedding_weight=TEACHER_EMBEDDING_WEIGHT, judgment_start=True, choose_lexical=True,
                          anchor_weight=ANCHOR_WEIGHT, fit_scores=True) -> RelevanceLearner:
    """Checks `df`, trains the LM on every query, document and `corpus` text, then the relevance model.

    Validation holds out `valid_pct` of the distinct queries (or uses the boolean `valid_col`). The language
    model reads the training rows' queries and documents plus `corpus`, never a validation query, so the
    validation scores measure queries the model has never seen. `source` (a file name) labels data errors.
    With `checkpoint_dir`, training checkpoints every epoch; `resume=True` continues a killed run from there
    (skipping the language model when it had finished).

    The relevance stage also learns from the documents themselves: `pseudo_per_doc` short spans of every
    training document (and `corpus` text) serve as queries for it, at the top score (`pseudo_queries`; 0 turns this off). It
    trains on the whole in-batch score matrix (`in_batch`) and adds BM25's term weights to the dense vectors
    (`lexical`: `'bm25'` keeps them fixed, `'learned'` trains them, False leaves them out; `'auto'`, the default:
    `'bm25'` with a word pool, `'learned'` without one); see `relevance_learner`.

    With a `teacher` (a sentence-transformers model, its directory or name: see `relcollab.training.teacher.load_teacher`)
    the towers also learn from it while they train (`relcollab.training.distill.TeacherDistillation`): each training text
    is encoded once by the teacher (cached in `teacher_cache`, default `path/teacher_cache`), the dense vectors
    take the teacher's size (`proj_sz`, default: the teacher's dimension; 256 without a teacher), and the trained
    model is the AWD-LSTM towers alone: the teacher never runs when it encodes or scores. Before the relevance
    stage, a teacher stage (`teacher_epochs`, e.g. 4; 0, the default, skips it) trains the towers on the teacher alone, every
    layer unfrozen, on `teacher_per_doc` spans of every document and the training queries
    (`relcollab.training.distill.fit_teacher_stage`). `documents` (texts, default: the training rows' documents
    and `corpus`) is the collection the idf of the lexical channel and of the word pool is counted over.

    `word_vectors` starts the language model's embedding from word vectors: `'auto'` (the default) means `'corpus'`
    (PPMI + SVD vectors of the training texts themselves, seconds, nothing to install) unless `pretrained` LM
    weights are given; None turns them off; or a GloVe/word2vec/fastText text file, a mapping, a
    sentence-transformers model's encoding of each word, or a list of these (`relcollab.training.word_vectors`);
    `pool_embeddings='idf'` (the default with word vectors) adds each text's idf-weighted mean word embedding to
    its dense features, and the dense vectors start as it (`relcollab.core.model.EmbeddingPool`): the words' meaning
    is in the dense vectors before any relevance training. `word_pool='auto'` (the default) pools the word vectors
    themselves at their own size (400 dimensions for `'corpus'`), fixed, instead of the LM's 128-dimensional
    embedding of them, and adds them to the dense vectors through a skip connection
    (`relevance_learner(word_pool=..., pool_skip=True)`); the dense vectors then have the pool's size unless a
    teacher or `proj_sz` sets it. With a teacher, `'auto'` pools the teacher's encoding of each word too, side by side
    with the word vectors (e.g. `['corpus', teacher]`). `word_pool=None` pools the LM's embedding, as before.

    `lr` is the relevance stage's peak learning rate: by default `LR`, 1e-2 (ULMFiT's), and `TEACHER_LR`, 1e-3, when
    the word pool holds the teacher's word vectors (README, Learning from a teacher: the Cranfield and SICK figures
    behind both); the teacher stage takes `lr` or 1e-2.
    With the word pool, 1e-3 keeps the dense vectors nearer the pooled word vectors: on Cranfield's validation
    queries their ranking was better at 1e-3, on SICK's validation pairs their similarity much worse (README,
    The word pool), so pick it on your own validation set.

    With a teacher and a word pool, `teacher_start=True` (the default) starts the dense vectors in the teacher's space:
    the projection from the pooled word vectors is the least-squares map to the teacher's embeddings of the training
    texts (`relcollab.training.distill.start_from_teacher`), and distillation then matches the teacher's vectors
    directly (no learned map), so cosines between dense vectors approximate the teacher's. `embedding_weight`
    (`TEACHER_EMBEDDING_WEIGHT`, 10) weighs that embedding distillation term against the relevance loss
    (`TeacherDistillation`); at 1 relevance training drew the dense vectors away from the teacher (README).

    With a word pool, `judgment_start=True` (the default) then fits the dense vectors to the judgments: the skip map
    from the pooled word vectors (from the identity, or from the teacher start's map after a teacher start) is refined in
    seconds so that the cosine of each training pair's two vectors matches its score (the rows of `df`, not the
    pseudo-queries; the fit stops where the validation rows' error is lowest), and relevance training then keeps near
    that start, each training text's start vector serving as its teacher with embedding weight `anchor_weight`
    (`ANCHOR_WEIGHT`, 10; 0: no anchor), beside the teacher's own distillation when there is one
    (`relcollab.training.judgment_start.start_from_judgments`; README, The judgment start). With the lexical channel it
    also sets the channel's weight beside the dense cosine on the validation rows (`choose_lexical=True`;
    `choose_lexical_scale`; README, The lexical channel); `choose_lexical=False` leaves it to training, from 0.1. The
    map from dot products to scores starts fitted to the training rows. After relevance training the judgment finish
    (`finish_from_judgments`) chooses the lexical weight again for the trained towers (unless `choose_lexical=False`)
    and refits the score map to the validation rows (held out, as temperature scaling), so that predicted scores read
    on the judgments' scale; `fit_scores=False` leaves the score map to training at both (it changes no ranking).

    `self_supervised` adds a self-supervised objective on the dense vectors while the towers train
    (`relcollab.training.self_supervised.SelfSupervised`): None (off), `'crops'` (two random crops of each document),
    `'dropout'` (each text twice, with different dropout) or `'ict'` (a span against the rest of its document),
    or a `SelfSupervised` callback (for its `weight`, `temperature`, crop sizes).

    >>> learn = train_relevance_model(triples, size='small', lm_epochs=3, epochs=3)  # doctest: +SKIP
    >>> learn = train_relevance_model(triples, self_supervised='crops')  # doctest: +SKIP
    >>> learn = train_relevance_model(triples, teacher='all-MiniLM-L6-v2')  # relcollab[teacher]  # doctest: +SKIP
    """
    check_triples(df, query_col, doc_col, score_col, score_range=score_range, source=source)
    self_supervised = as_self_supervised(self_supervised)  # fails now, before any training, if it is not one
    if not (isinstance(lexical, str) and lexical == 'auto'): lexical_mode(lexical)  # an unknown choice fails now too
    if not isinstance(teacher_epochs, int) or teacher_epochs < 0:
        raise ValueError(f"teacher_epochs={teacher_epochs!r}: give a whole number of epochs, 0 or more.")
    for name, weight, default in (('embedding_weight', embedding_weight, TEACHER_EMBEDDING_WEIGHT),
                                  ('anchor_weight', anchor_weight, ANCHOR_WEIGHT)):
        if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not weight >= 0:
            raise ValueError(f"{name}={weight!r}: give a number, 0 or more (the recipe's is {default:g}).")
    if not isinstance(fit_scores, bool): raise ValueError(f"fit_scores={fit_scores!r}: give True or False.")
    if teacher_epochs and teacher is None:
        raise ValueError(f"teacher_epochs={teacher_epochs} needs a teacher (teacher='all-MiniLM-L6-v2' or a model directory).")
    if isinstance(word_vectors, str) and word_vectors == 'auto': word_vectors = 'corpus' if pretrained is None else None
    if pool_embeddings is None: pool_embeddings = 'idf' if word_vectors is not None else False
    auto_pool = isinstance(word_pool, str) and word_pool == 'auto'
    if auto_pool: word_pool = word_vectors if pool_embeddings == 'idf' else None
    if valid_col is None:
        df = df.assign(is_valid=query_split(df, query_col, valid_pct, seed))
        valid_col = 'is_valid'
    train = df[~df[valid_col].astype(bool)]
    texts = list(pd.unique(pd.concat([train[doc_col], train[query_col], pd.Series(list(corpus), dtype=object)])))
    if documents is None: documents = list(pd.unique(pd.concat([train[doc_col], pd.Series(list(corpus), dtype=object)])))
    run = run_fingerprint(df[[query_col, doc_col, score_col, valid_col]], corpus, size, lm_epochs, seed,
                          pretrained if word_vectors is None else (pretrained, _describe_source(word_vectors)))
    if teacher is not None:
        named = teacher
        teacher = load_teacher(teacher)  # fails now, before any training, if it cannot load
        word_vectors, word_pool = (_loaded_teacher_in(source, named, teacher) for source in (word_vectors, word_pool))
        if auto_pool and word_pool is not None: word_pool = with_teacher_words(word_pool, teacher)
    cache = Path(path)/'teacher_cache' if teacher_cache is None else teacher_cache
    lm = finished_lm(checkpoint_dir, run) if resume and checkpoint_dir is not None else None
    if lm is None:
        with stage('language model', f'{len(texts)} texts, {lm_epochs} epochs'):
            lm = language_model_stage(texts, size=size, epochs=lm_epochs, pretrained=pretrained, seed=seed, path=path,
                                      word_vectors=word_vectors, cache_dir=cache)
        if checkpoint_dir is not None: mark_lm_done(checkpoint_dir, lm, run)
        lm = {'vocab': lm.vocab, 'encoder_name': lm.encoder_name}
    set_seed(seed, reproducible=True)
    rows = with_pseudo_queries(df, query_col, doc_col, score_col, valid_col, pseudo_per_doc, score_range, seed, corpus)
    dls = RelevanceDataLoaders.from_df(rows, query_col, doc_col, score_col, vocab=lm['vocab'], valid_col=valid_col,
                                       bs=bs, seed=seed, score_range=score_range, path=path, check=False)  # checked above
    cbs = []
    if teacher is not None:
        with stage('teacher vectors'):
            cbs.append(distillation_callback(teacher, dls, cache, embedding_weight=embedding_weight))
    if proj_sz is None: proj_sz = cbs[0].vectors.dim if cbs else 'pool' if word_pool is not None else 256
    pool = dict(word_pool=word_pool, pool_skip=True, cache_dir=cache) if word_pool is not None else {}
    stage_lr = relevance_lr(lr, teacher, word_pool)
    if self_supervised is not None:
        cbs.append(self_supervised)
        print(f"relcollab: the dense vectors also learn from self-supervised views ({self_supervised.views})", flush=True)
    learn = relevance_learner(dls, config=relevance_config(size), in_batch=in_batch, lexical=lexical,
                              drop_mult=drop_mult, pool_embeddings=pool_embeddings, documents=documents,
                              proj_sz=proj_sz, **pool)
    learn.load_encoder(lm['encoder_name'])
    if teacher_start and teacher is not None:  # cbs[0] is then the distillation callback
        with stage('teacher start', f'the dense vectors fitted to the teacher on {len(cbs[0].vectors.row_of)} texts'):
            if not start_in_teacher_space(learn, cbs[0]): print("relcollab: no word pool of the teacher's size: skipped", flush=True)
    if judgment_start and word_pool is not None:
        refined = ', from the teacher start' if learn.model.head.query_proj.fitted else ''
        with stage('judgment start', f'the dense vectors fitted to {len(train)} training pairs{refined}'):
            anchor = start_from_judgments(learn, train, embedding_weight=anchor_weight,
                                          valid_pairs=df[df[valid_col].astype(bool)], verbose=True,
                                          choose_lexical=choose_lexical, fit_scores=fit_scores, pool=documents)
            if anchor is None: print("relcollab: the training scores do not vary: skipped", flush=True)
            elif anchor_weight: cbs.append(anchor)  # (with a teacher, beside its distillation)
    if teacher is not None and teacher_epochs and not (resume and checkpoint_dir is not None and checkpoint_progress(checkpoint_dir) is not None):
        judged = train[pd.to_numeric(train[score_col]) > (score_range[0] if score_range is not None else train[score_col].min())]
        with stage('teacher', f'{len(documents)} documents x {teacher_per_doc} spans + {judged[query_col].nunique()} '
                              f'queries, {teacher_epochs} epochs, the teacher alone'):
            fit_teacher_stage(learn, teacher, documents, judged.drop_duplicates(query_col)[[query_col, doc_col]],
                              epochs=teacher_epochs, per_doc=teacher_per_doc, lr=lr if lr is not None else LR, cache_dir=cache, seed=seed)
    n_train, n_valid = len(dls.train_ds), len(dls.valid_ds)
    with stage('relevance', f'{n_train} training pairs ({len(rows) - len(df)} of them pseudo-queries), {n_valid} validation '
                            f'pairs, {sum(s.epochs for s in ulmfit_stages(epochs, stage_lr))} epochs, lr {stage_lr:g}'), \
            learn.added_cbs(cbs):
        fine_tune_relevance(learn, epochs=epochs, lr=stage_lr, checkpoint_dir=checkpoint_dir, resume=resume)
    if judgment_start and word_pool is not None and anchor is not None:
        finish_from_judgments(learn, train, valid_pairs=df[df[valid_col].astype(bool)], choose_lexical=choose_lexical,
                              fit_scores=fit_scores, pool=documents, verbose=True)
    return learn


def _sources(source) -> list:
    "A word-vector source or list of them, as a list."
    return list(source) if isinstance(source, (list, tuple)) else [source]


def with_teacher_words(source, teacher) -> list:
    """The word-vector `source` (or list) plus the loaded `teacher` (its encoding of each word), unless it is there.

    >>> with_teacher_words('corpus', teacher)  # doctest: +SKIP
    ['corpus', SentenceTransformer(...)]
    """
    sources = _sources(source)
    return sources if any(one is teacher for one in sources) else sources + [teacher]


def relevance_lr(lr, teacher=None, word_pool=None) -> float:
    """The relevance stage's peak learning rate: `lr` when given, else `TEACHER_LR` when the `word_pool` holds the
    loaded `teacher`'s word vectors, else `LR`.

    >>> relevance_lr(None), relevance_lr(3e-3)
    (0.01, 0.003)
    """
    if lr is not None: return lr
    holds_teacher = teacher is not None and word_pool is not None and any(one is teacher for one in _sources(word_pool))
    return TEACHER_LR if holds_teacher else LR


def _loaded_teacher_in(source, named, teacher):
    "A word-vector `source` (or list) with the teacher's name `named` replaced by the `teacher` loaded once."
    if isinstance(source, (list, tuple)): return [_loaded_teacher_in(one, named, teacher) for one in source]
    same = isinstance(source, (str, Path)) and isinstance(named, (str, Path)) and str(source) == str(named)
    return teacher if same or source is named else source


def _describe_source(source) -> str:
    "What names a word-vector source in the run's fingerprint (a path or name as given; a model by its class)."
    if isinstance(source, (list, tuple)): return repr([_describe_source(one) for one in source])
    return str(source) if isinstance(source, (str, Path)) else type(source).__name__


@contextmanager
def stage(name: str, detail: str = ''):
    "Prints a stage of the recipe (with `detail`: how much it has to do), then how long it took."
    start = time.time()
    print(f"relcollab: {name}{f' ({detail})' if detail else ''} ...", flush=True)
    yield
    print(f"relcollab: {name} done in {time.time() - start:.0f} s", flush=True)
