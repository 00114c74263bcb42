"""Everything a notebook needs: `from relcollab.all import *` (fastai's text API plus relcollab's)."""
from fastai.basics import *  # noqa: F401,F403  (Learner, DataLoaders, load_learner, set_seed, ...)
from fastai.callback.all import *  # noqa: F401,F403  (fit_one_cycle, lr_find, SaveModelCallback, ...)
from fastai.text.all import *  # noqa: F401,F403  (AWD_LSTM, TextDataLoaders, language_model_learner, ...)

# core: texts, data, the model, losses, metrics, checks
from .core.bf16 import *  # noqa: F401,F403  (Bf16FallbackWarning, bf16_support)
from .core.data import *  # noqa: F401,F403  (RelevanceDataLoaders, ScaleScore, score_range_of)
from .core.metrics import *  # noqa: F401,F403  (pair_metrics, pair_rmse, pair_spearman)
from .core.model import *  # noqa: F401,F403  (RelevanceModel, TermWeights, term_ids, relevance_config, lm_config)
from .core.text import *  # noqa: F401,F403
from .core.validation import *  # noqa: F401,F403
# training: the learner, the language model, the ULMFiT recipe and its extras
from .training.checkpoint import *  # noqa: F401,F403  (EpochCheckpoint, fit_stages)
from .training.distill import *  # noqa: F401,F403  (TeacherDistillation, distillation_callback)
from .training.judgment_start import *  # noqa: F401,F403  (start_from_judgments, fit_pair_map)
from .training.interpret import *  # noqa: F401,F403  (RelevanceInterpretation)
from .training.learner import *  # noqa: F401,F403
from .training.lm import *  # noqa: F401,F403
from .training.recipe import *  # noqa: F401,F403
from .training.self_supervised import *  # noqa: F401,F403  (SelfSupervised: crops, dropout, inverse cloze)
from .training.teacher import *  # noqa: F401,F403  (load_teacher, teacher_embeddings; sentence-transformers only when used)
from .training.word_vectors import *  # noqa: F401,F403  (corpus_word_vectors, word_vector_matrix)
# retrieval: vectors, indexes, BM25, fusion, TREC files and metrics, saved models
from .retrieval.bm25 import *  # noqa: F401,F403  (BM25Baseline)
from .retrieval.encode import *  # noqa: F401,F403  (learn.encode, learn.score_vectors)
from .retrieval.evaluate import *  # noqa: F401,F403
from .retrieval.fusion import *  # noqa: F401,F403
from .retrieval.hybrid import *  # noqa: F401,F403  (HybridSearch)
from .retrieval.index import *  # noqa: F401,F403  (DocIndex, model_fingerprint, learn.index, .search, .rank)
from .retrieval.pretrained import *  # noqa: F401,F403  (learn.save_pretrained, load_pretrained)
from .retrieval.trec import *  # noqa: F401,F403
# datasets: Cranfield, BEIR/TREC collections, documents alone
from .datasets.collection import *  # noqa: F401,F403  (load_collection, collection_triples)
from .datasets.cranfield import *  # noqa: F401,F403
from .datasets.docs_only import *  # noqa: F401,F403  (train_from_documents)
# app
from .app.benchmark import *  # noqa: F401,F403  (benchmark_collection)
