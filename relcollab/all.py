"""Everything a notebook needs: `from relcollab.all import *` (fastai's text API plus relcollab's)."""
from fastai.basics import *  # noqa: F401,F403  (Learner, DataLoaders, load_learner, set_seed, ...)
from fastai.callback.all import *  # noqa: F401,F403  (fit_one_cycle, lr_find, SaveModelCallback, ...)
from fastai.text.all import *  # noqa: F401,F403  (AWD_LSTM, TextDataLoaders, language_model_learner, ...)

from .bf16 import *  # noqa: F401,F403  (Bf16FallbackWarning, bf16_support)
from .benchmark import *  # noqa: F401,F403  (benchmark_collection)
from .retrieval.bm25 import *  # noqa: F401,F403  (BM25Baseline)
from .checkpoint import *  # noqa: F401,F403  (EpochCheckpoint, fit_stages)
from .collection import *  # noqa: F401,F403  (load_collection, collection_triples)
from .configs import *  # noqa: F401,F403
from .cranfield import *  # noqa: F401,F403
from .data import *  # noqa: F401,F403
from .docs_only import *  # noqa: F401,F403  (train_from_documents)
from .distill import *  # noqa: F401,F403  (TeacherDistillation, distillation_callback)
from .retrieval.encode import *  # noqa: F401,F403  (learn.encode, learn.score_vectors)
from .retrieval.evaluate import *  # noqa: F401,F403
from .retrieval.fusion import *  # noqa: F401,F403
from .retrieval.index import *  # noqa: F401,F403  (DocIndex, model_fingerprint, learn.index, .search, .rank)
from .interpret import *  # noqa: F401,F403  (RelevanceInterpretation)
from .learner import *  # noqa: F401,F403
from .lm import *  # noqa: F401,F403
from .model import *  # noqa: F401,F403
from .pretrained import *  # noqa: F401,F403  (learn.save_pretrained, load_pretrained)
from .recipe import *  # noqa: F401,F403
from .scores import *  # noqa: F401,F403
from .self_supervised import *  # noqa: F401,F403  (SelfSupervised: crops, dropout, inverse cloze)
from .teacher import *  # noqa: F401,F403  (load_teacher, teacher_embeddings; sentence-transformers only when used)
from .text import *  # noqa: F401,F403
from .retrieval.trec import *  # noqa: F401,F403
from .validation import *  # noqa: F401,F403
from .word_vectors import *  # noqa: F401,F403  (corpus_word_vectors, word_vector_matrix)
