"""Evaluation of embeddings: retrieval metrics (:mod:`musicrep.evaluation.retrieval`)."""

from musicrep.evaluation.retrieval import (
    RetrievalResult,
    map_at_k,
    ndcg_at_k,
    ndcg_ceiling,
    precision_at_k,
)

__all__ = ["RetrievalResult", "map_at_k", "ndcg_at_k", "ndcg_ceiling", "precision_at_k"]
