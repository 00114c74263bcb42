"""A sentence-transformers teacher's knowledge in the AWD-LSTM towers, as a fastai callback.

    vectors = TeacherVectors.from_texts(texts, teacher_embeddings(teacher, texts), learn.dls)
    learn.fit_one_cycle(3, 1e-2, cbs=TeacherDistillation(vectors))     # or with learn.added_cbs(...)

With a word pool, `start_from_teacher` first makes the dense vectors the ridge map of the pooled word vectors to the
teacher's embeddings (closed form, fixed), so they start in the teacher's space.

Two signals are added to the relevance loss while training (never in validation, never at inference: the
teacher is not part of the model, and the exported model is the AWD-LSTM towers alone):

- embedding distillation (Reimers & Gurevych 2020; sentence-transformers' `MSELoss` recipe): each tower's dense
  unit vector, through a learned linear map when its size differs from the teacher's, matches the teacher's
  normalized embedding of the same text: sum over dimensions of the squared difference, averaged over texts;
- score distillation, Margin-MSE (Hofstätter et al. 2020) over the in-batch matrix: for each query i of a batch
  and every document j of it, the student's margin cos(q_i, d_j) - cos(q_i, d_i) matches the teacher's, so
  the many unjudged in-batch pairs get the teacher's graded opinion instead of a flat 0.
"""
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from fastai.callback.core import Callback
from torch import nn

from ..core.data import RelevanceDataLoaders
from ..core.text import numericalize_texts
from .pseudo import pseudo_queries

__all__ = ['TeacherVectors', 'embedding_distillation_loss', 'margin_mse_loss', 'TeacherDistillation',
           'distillation_callback', 'start_from_teacher', 'start_in_teacher_space', 'teacher_stage_rows', 'fit_teacher_stage']


class TeacherVectors:
    """The teacher's unit vectors of texts, looked up by the token ids a batch carries (padding stripped).

    >>> vectors = TeacherVectors.from_texts(['wing flutter'], np.eye(1, 4, dtype='float32'), learn.dls)  # doctest: +SKIP
    >>> vectors.lookup(batch_tokens, pad_idx=1)  # doctest: +SKIP
    (tensor of (bs, 4), tensor of bs booleans: found)
    """
    def __init__(self, keys: list, vectors: np.ndarray):
        if len(keys) != len(vectors): raise ValueError(f"{len(keys)} texts but {len(vectors)} teacher vectors.")
        self.row_of = {key: row for row, key in enumerate(keys)}
        self.vectors = torch.as_tensor(np.asarray(vectors, dtype=np.float32))

    @classmethod
    def from_texts(cls, texts: list, vectors: np.ndarray, dls) -> 'TeacherVectors':
        "Keys each text by its token ids under `dls`'s tokenizer and vocabulary (the ids its batches will carry)."
        ids = numericalize_texts(list(texts), dls.tokenizer, dls.vocab)
        return cls([_key(t) for t in ids], vectors)

    @property
    def dim(self) -> int: return self.vectors.shape[1]

    def lookup(self, tokens: torch.Tensor, pad_idx: int) -> tuple:
        "`(vectors (bs, dim), found (bs,))` for a padded batch; rows of unknown texts get zeros and found=False."
        lengths = (tokens != pad_idx).sum(dim=1).tolist()
        rows = [self.row_of.get(_key(row[:n]), -1) for row, n in zip(tokens.cpu(), lengths)]
        rows = torch.tensor(rows, dtype=torch.long)
        found = rows >= 0
        vectors = self.vectors[rows.clamp(min=0)] * found[:, None]
        return vectors.to(tokens.device), found.to(tokens.device)


def _key(ids: torch.Tensor) -> bytes: return ids.to(torch.int64).numpy().tobytes()


def embedding_distillation_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Squared distance between student and teacher vectors (bs, dim), summed over dimensions, averaged over rows
    (for unit vectors, 2 - 2 cos).

    >>> embedding_distillation_loss(torch.eye(2), torch.eye(2)).item()
    0.0
    """
    if len(student) == 0: return student.new_zeros(())
    return (student - teacher).pow(2).sum(dim=1).mean()


def margin_mse_loss(student: torch.Tensor, teacher: torch.Tensor) -> torch.Tensor:
    """Margin-MSE on square (bs, bs) similarity matrices whose diagonal holds each query's own document: the mean
    over off-diagonal pairs of ((s_ij - s_ii) - (t_ij - t_ii))^2.

    >>> margin_mse_loss(torch.eye(2), torch.eye(2) * 3).item()
    4.0
    """
    if len(student) < 2: return student.new_zeros(())
    margins = (student - student.diagonal()[:, None]) - (teacher - teacher.diagonal()[:, None])
    off_diagonal = ~torch.eye(len(student), dtype=torch.bool, device=student.device)
    return margins[off_diagonal].pow(2).mean()


class TeacherDistillation(Callback):
    """Adds `embedding_weight` x embedding distillation and `score_weight` x Margin-MSE to the training loss (the
    learner's own loss weighs `relevance_weight`: 0 trains on the teacher alone).

    It reads each tower's dense vector from forward hooks on the head's projections (so it works for in-batch
    and pointwise models alike) and the teacher's vectors from `TeacherVectors`; texts the teacher has no vector
    for (none, normally) are left out of both terms. A linear map per side (learned by its own Adam, `map_lr`)
    carries the student's vector to the teacher's space for the embedding term (`always_map=False`: only when
    the sizes differ), so the student keeps its own axes (its dense vectors may start as pooled word vectors,
    see `relcollab.core.model.EmbeddingPool`); the score term compares cosines and needs none.

    >>> learn.fit_one_cycle(1, 1e-2, cbs=TeacherDistillation(vectors))  # doctest: +SKIP
    """
    order = 5  # after the batch is on its device, before the recorder reads the loss

    def __init__(self, vectors: TeacherVectors, embedding_weight: float = 1., score_weight: float = 1.,
                 relevance_weight: float = 1., map_lr: float = 1e-3, always_map: bool = True):
        self.vectors, self.embedding_weight, self.score_weight, self.map_lr = vectors, embedding_weight, score_weight, map_lr
        self.always_map = always_map
        self.relevance_weight = relevance_weight
        self.maps, self.map_opt, self.hooks, self.captured, self.targets = None, None, [], {}, None

    def before_fit(self):
        head = self.learn.model.head
        self.hooks = [head.query_proj.register_forward_hook(self._capture('query')),
                      head.doc_proj.register_forward_hook(self._capture('doc'))]
        proj_sz = head.query_proj[-1].out_features
        if self.maps is None and (self.always_map or proj_sz != self.vectors.dim):
            device = head.bias.device
            self.maps = nn.ModuleDict({side: nn.Linear(proj_sz, self.vectors.dim) for side in ('query', 'doc')}).to(device)
            self.map_opt = torch.optim.Adam(self.maps.parameters(), lr=self.map_lr)

    def _capture(self, side: str):
        def hook(module, inputs, output):
            if module.training: self.captured[side] = output
        return hook

    def before_batch(self):
        self.captured, self.targets = {}, None
        if not self.training: return
        pad_idx = self.learn.model.query_tower.encoder.pad_idx
        self.targets = [self.vectors.lookup(tokens, pad_idx) for tokens in self.xb[:2]]

    def after_loss(self):
        if not self.training or self.targets is None or len(self.captured) < 2: return
        self.learn.loss_grad = self.relevance_weight * self.loss_grad + self.distillation_loss()
        self.learn.loss = self.learn.loss_grad.clone()

    def distillation_loss(self) -> torch.Tensor:
        "The weighted sum of both terms for the batch just seen."
        (teacher_q, found_q), (teacher_d, found_d) = self.targets
        student_q, student_d = F.normalize(self.captured['query'], dim=-1), F.normalize(self.captured['doc'], dim=-1)
        loss = student_q.new_zeros(())
        if self.embedding_weight:
            mapped_q, mapped_d = ((self.maps['query'](student_q), self.maps['doc'](student_d)) if self.maps is not None
                                  else (student_q, student_d))
            loss = loss + self.embedding_weight * (embedding_distillation_loss(mapped_q[found_q], teacher_q[found_q]) +
                                                   embedding_distillation_loss(mapped_d[found_d], teacher_d[found_d]))
        if self.score_weight:
            both = found_q & found_d
            student, teacher = student_q[both] @ student_d[both].T, teacher_q[both] @ teacher_d[both].T
            loss = loss + self.score_weight * margin_mse_loss(student, teacher)
        return loss

    def after_step(self):
        if self.map_opt is not None:
            self.map_opt.step()
            self.map_opt.zero_grad()

    def after_fit(self):
        for hook in self.hooks: hook.remove()
        self.hooks, self.captured, self.targets = [], {}, None


def distillation_callback(teacher, dls, cache_dir=None, embedding_weight: float = 1., score_weight: float = 1.,
                          relevance_weight: float = 1., bs: int = 64) -> TeacherDistillation:
    """A `TeacherDistillation` for every training query and document of `dls`, the teacher encoding each text once
    (cached in `cache_dir`; `teacher` as `relcollab.training.teacher.load_teacher` takes it).

    >>> with learn.added_cbs(distillation_callback('all-MiniLM-L6-v2', learn.dls, 'teacher_cache')):  # doctest: +SKIP
    ...     learn.fit_one_cycle(3, 1e-2)
    """
    from .teacher import teacher_embeddings
    items = dls.train_ds.items
    texts = list(dict.fromkeys([*items[dls.query_col].tolist(), *items[dls.doc_col].tolist()]))
    vectors = teacher_embeddings(teacher, texts, cache_dir=cache_dir, bs=bs)
    return TeacherDistillation(TeacherVectors.from_texts(texts, vectors, dls), embedding_weight=embedding_weight,
                               score_weight=score_weight, relevance_weight=relevance_weight)


def start_from_teacher(learn, vectors: TeacherVectors, alpha: float = 1e-3, bs: int = 256):
    """The dense vectors start in the teacher's space: both projections become the ridge regression of the teacher's
    embeddings of `vectors`' texts on those texts' pooled word vectors (`RelevanceHead.start_from_targets`), so before
    any training a text's dense vector is the best linear copy of the teacher's vector its words allow, and cosines
    between dense vectors approximate the teacher's. Needs a word pool (`relevance_learner(word_pool=...)`) and dense
    vectors of the teacher's size; distil with `TeacherDistillation(always_map=False)` afterwards to stay there.

    >>> callback = distillation_callback('all-MiniLM-L6-v2', learn.dls, 'teacher_cache')  # doctest: +SKIP
    >>> start_from_teacher(learn, callback.vectors); callback.always_map = False  # doctest: +SKIP
    """
    head, tower = learn.model.head, learn.model.doc_tower
    if not tower.word_pool: raise ValueError("start_from_teacher fits the word pool to the teacher: build the learner with word_pool=...")
    if head.dense_features != vectors.dim:
        raise ValueError(f"The dense vectors have {head.dense_features} dimensions, the teacher's {vectors.dim}: "
                         f"build the learner with proj_sz={vectors.dim}.")
    features = tower.mean_embedding_of([torch.from_numpy(np.frombuffer(key, dtype=np.int64).copy()) for key in vectors.row_of], bs=bs)
    targets = vectors.vectors[list(vectors.row_of.values())]
    head.start_from_targets(features, targets, head.n_in - tower.pool_features, head.n_in, alpha)
    if hasattr(learn.model, 'hparams') and learn.model.hparams.get('pool_skip'):
        learn.model.hparams['pool_map'] = True  # a saved copy rebuilds the fitted skip map
    return learn


def start_in_teacher_space(learn, callback: TeacherDistillation) -> bool:
    """`start_from_teacher` with the `callback`'s teacher vectors, and the callback then distils without a learned map,
    when `learn` has a word pool and dense vectors of the teacher's size (else nothing changes); True when it did.

    >>> start_in_teacher_space(learn, distillation_callback(teacher, learn.dls))  # doctest: +SKIP
    True
    """
    if not learn.model.doc_tower.word_pool or learn.model.head.dense_features != callback.vectors.dim: return False
    start_from_teacher(learn, callback.vectors)
    callback.always_map, callback.maps, callback.map_opt = False, None, None  # no learned map from an earlier fit
    return True


def teacher_stage_rows(docs, pairs=None, per_doc: int = 8, seed: int = 0) -> pd.DataFrame:
    """(query, doc) rows for the teacher stage: `per_doc` spans of every document (3-12 words, the document kept
    whole) with their document, plus `pairs` (a frame with 'query' and 'doc', e.g. training queries and a document
    judged for each), every distinct pair once.

    >>> teacher_stage_rows(['the lift of a wing rises with the angle of attack .'], per_doc=2).columns.tolist()
    ['query', 'doc']
    """
    rows = pseudo_queries(list(docs), n_per_doc=per_doc, remove=0., seed=seed)[['query', 'doc']]
    if pairs is not None: rows = pd.concat([rows, pairs[['query', 'doc']]], ignore_index=True)
    return rows.drop_duplicates(ignore_index=True)


def fit_teacher_stage(learn, teacher, docs, pairs=None, epochs: int = 4, per_doc: int = 8, lr: float = 1e-2,
                      bs: int = 64, cache_dir=None, seed: int = 0):
    """The towers learn the teacher alone before relevance training: on spans of every document and on `pairs`
    (`teacher_stage_rows`), every layer unfrozen, the loss `TeacherDistillation` with `relevance_weight=0`
    (each tower's dense vector matches the teacher's embedding, and in-batch cosine margins the teacher's). The
    teacher encodes each text once (cached in `cache_dir`); `learn.dls` is restored afterwards, and the validation
    pairs of `learn.dls` are those of the stage's dataloaders (its metrics watch the relevance task). `teacher` is
    what `relcollab.training.teacher.load_teacher` takes, or a function from a list of texts to unit vectors.

    >>> fit_teacher_stage(learn, 'all-MiniLM-L6-v2', docs['text'], epochs=4, cache_dir='teacher_cache')  # doctest: +SKIP
    """
    from .teacher import teacher_embeddings
    dls = learn.dls
    q, d, y = dls.query_col, dls.doc_col, dls.score_col
    rows = teacher_stage_rows(docs, pairs if pairs is None else pairs.rename(columns={q: 'query', d: 'doc'}),
                              per_doc=per_doc, seed=seed).rename(columns={'query': q, 'doc': d})
    valid = pd.DataFrame(dls.valid_ds.items)[[q, d, y]]
    frame = pd.concat([rows.assign(**{y: dls.score_scaler.hi, '_teacher_valid': False}),
                       valid.assign(_teacher_valid=True)], ignore_index=True)
    stage_dls = RelevanceDataLoaders.from_df(frame, q, d, y, vocab=dls.vocab, valid_col='_teacher_valid', bs=bs, seed=seed,
                                             score_range=(dls.score_scaler.lo, dls.score_scaler.hi), path=learn.path,
                                             check=False, device=dls.device)
    texts = list(dict.fromkeys([*rows[q], *rows[d]]))
    plain_function = callable(teacher) and not hasattr(teacher, 'encode')  # texts -> unit vectors (tests, custom teachers)
    embedded = np.asarray(teacher(texts)) if plain_function else teacher_embeddings(teacher, texts, cache_dir=cache_dir)
    vectors = TeacherVectors.from_texts(texts, embedded, stage_dls)
    callback = TeacherDistillation(vectors, relevance_weight=0., always_map=learn.model.head.dense_features != vectors.dim)
    learn.dls = stage_dls
    try:
        learn.unfreeze()
        with learn.added_cbs(callback): learn.fit_one_cycle(epochs, slice(lr / 10, lr))
    finally:
        learn.dls = dls
    return learn
