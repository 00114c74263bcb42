"""Data sets: Cranfield, BEIR and TREC-style collections, and documents alone (pseudo-query triples, then
`train_from_documents`). They import core, training and retrieval."""
