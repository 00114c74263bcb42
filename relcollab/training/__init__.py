"""Training: `relevance_learner`, the language model stage, the ULMFiT recipe (`train_relevance_model`), pseudo
queries, distillation from a teacher, corpus word vectors, self-supervision, checkpoints, data-parallel training,
interpretation. It imports `relcollab.core` only."""
