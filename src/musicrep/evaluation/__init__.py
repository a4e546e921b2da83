"""Evaluation of embeddings: retrieval metrics (:mod:`~musicrep.evaluation.retrieval`), classification probes
(:mod:`~musicrep.evaluation.probes`), baselines, the report (:func:`~musicrep.evaluation.evaluate.evaluate`)
and classifier models (:mod:`~musicrep.evaluation.classify`)."""

from musicrep.evaluation.retrieval import (
    DEFAULT_KS,
    RULES,
    Ranking,
    RetrievalResult,
    graded_metrics,
    label_metrics,
    map_at_k,
    ndcg_at_k,
    ndcg_ceiling,
    precision_at_k,
    rank,
    retrieval_metrics,
)

__all__ = ["DEFAULT_KS", "RULES", "Ranking", "RetrievalResult", "graded_metrics", "label_metrics", "map_at_k",
           "ndcg_at_k", "ndcg_ceiling", "precision_at_k", "rank", "retrieval_metrics"]
