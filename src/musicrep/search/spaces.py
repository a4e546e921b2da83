"""How tag and text queries reach audio: target spaces, the heads and linear maps into them, query terms.

A tag or text query is projected into its target space exactly as the training
items were (:meth:`musicrep.targets.space.LsiModel.project`); the indexed tracks
are in that space too, through one of two routes:

- ``head``: the model's projection head for the space (``config.json`` heads of
  kind ``projection``, trained with a contrastive or other cross-modal objective);
- ``linear``: for a space the model has no head for, a ridge regression from the
  unit audio embeddings to the space's vectors, fitted on the train split, its
  ``alpha`` chosen on the validation split by the mean cosine of the predictions
  (:func:`fit_linear_map`); saved with the index as ``.npz`` (no pickle).

Either way the tracks' vectors are unit rows, compared with the query by cosine.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

from musicrep.data.manifest import normalize_tag
from musicrep.errors import InputError, UsageError
from musicrep.fileio import atomic_path
from musicrep.targets.analyzers import TagAnalyzer, TextDocument, fold
from musicrep.targets.space import LsiModel, Space

logger = logging.getLogger(__name__)

ALPHAS = (0.01, 0.1, 1.0, 10.0, 100.0, 1000.0)
"""Ridge penalties tried on the validation split."""
TAG_SEPARATORS = (";", ",")


def unit_rows(vectors: np.ndarray) -> np.ndarray:
    """float32 rows scaled to unit length (zero rows stay zero)."""
    array = np.asarray(vectors, dtype=np.float32)
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


# ------------------------------------------------------------------------------------------------ routes


def through_head(encoder: Any, head: str, embeddings: np.ndarray, *, batch_size: int = 4096) -> np.ndarray:
    """Raw audio embeddings ``(n, embedding_dim)`` through the model's projection head ``head``: unit rows."""
    import torch

    module = encoder.model.heads[head]
    out = []
    with torch.inference_mode():
        for first in range(0, len(embeddings), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(embeddings[first:first + batch_size], dtype=np.float32))
            out.append(module(x.to(encoder.device)).float().cpu().numpy())
    dims = int(encoder.config["heads"][head]["space_dim"])
    return unit_rows(np.concatenate(out)) if out else np.zeros((0, dims), dtype=np.float32)


def projection_heads(config: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The model's projection heads by the space they map into: ``{space: {"head": task, "space_id": ...}}``."""
    heads: dict[str, dict[str, Any]] = {}
    for task, spec in config.get("heads", {}).items():
        if spec.get("kind") == "projection" and spec.get("space") not in heads:
            heads[spec["space"]] = {"head": task, "space_id": spec.get("space_id")}
    return heads


@dataclass
class LinearMap:
    """Unit audio embeddings -> a target space: ``normalize(x @ coef.T + intercept)``.

    Attributes
    ----------
    coef : np.ndarray [shape=(space_dims, embedding_dim)], float32
    intercept : np.ndarray [shape=(space_dims,)], float32
    alpha : float
        The ridge penalty chosen on the validation split.
    val_cosine : float
        Mean cosine of the validation predictions with their targets at ``alpha`` (NaN without a split).
    """

    coef: np.ndarray
    intercept: np.ndarray
    alpha: float
    val_cosine: float

    def apply(self, audio: np.ndarray) -> np.ndarray:
        """Unit audio rows ``(n, embedding_dim)`` -> unit rows of the space ``(n, space_dims)``."""
        return unit_rows(np.asarray(audio, dtype=np.float32) @ self.coef.T + self.intercept)

    def save(self, path: Path) -> None:
        with atomic_path(path) as tmp, tmp.open("wb") as handle:
            np.savez(handle, coef=self.coef, intercept=self.intercept, alpha=np.float64(self.alpha),
                     val_cosine=np.float64(self.val_cosine))

    @classmethod
    def load(cls, path: Path) -> LinearMap:
        try:
            with np.load(path, allow_pickle=False) as data:
                return cls(coef=data["coef"].astype(np.float32), intercept=data["intercept"].astype(np.float32),
                           alpha=float(data["alpha"]), val_cosine=float(data["val_cosine"]))
        except (OSError, ValueError, KeyError) as exc:
            raise InputError(f"{path}: unreadable linear map ({exc})") from exc


def fit_linear_map(train_x: np.ndarray, train_y: np.ndarray, val_x: np.ndarray, val_y: np.ndarray, *,
                   alphas: Sequence[float] = ALPHAS) -> LinearMap:
    """Ridge regression from unit audio rows to space vectors, ``alpha`` chosen by validation cosine.

    Parameters
    ----------
    train_x, val_x : np.ndarray [shape=(n, embedding_dim)]
    train_y, val_y : np.ndarray [shape=(n, space_dims)]
        The space's vectors of the same tracks. Without validation rows the middle ``alpha`` is used.

    Raises
    ------
    UsageError
        Fewer than two training rows.
    """
    from sklearn.linear_model import Ridge

    if len(train_x) < 2:
        raise UsageError(f"a linear map needs at least 2 training tracks with vectors in the space "
                         f"(got {len(train_x)})")
    scores: dict[float, float] = {}
    if len(val_x):
        for alpha in alphas:
            ridge = Ridge(alpha=alpha).fit(train_x, train_y)
            predicted = unit_rows(ridge.predict(val_x))
            scores[alpha] = float(np.mean(np.sum(predicted * unit_rows(val_y), axis=1)))
        alpha = max(scores, key=lambda a: (scores[a], a))  # ties: the stronger penalty
    else:
        alpha = alphas[len(alphas) // 2]
    ridge = Ridge(alpha=alpha).fit(train_x, train_y)
    logger.info("linear map: alpha %g, validation cosine %s", alpha,
                {a: round(s, 4) for a, s in scores.items()} or "n/a (no validation split)")
    return LinearMap(coef=ridge.coef_.astype(np.float32), intercept=np.atleast_1d(ridge.intercept_).astype(
        np.float32), alpha=float(alpha), val_cosine=scores.get(alpha, float("nan")))


# ---------------------------------------------------------------------------------------------- queries


@dataclass
class QueryTerms:
    """A query as its target space reads it.

    Attributes
    ----------
    terms : list[str]
        Vocabulary terms the query is projected from (``genres:jazz``, ``calme``).
    known : list[str]
        What the user wrote that the space knows (tags as written, or text terms).
    unknown : list[str]
        What the space does not know (tags, or text words that are not stop words).
    """

    terms: list[str]
    known: list[str]
    unknown: list[str]


def split_tags(tags: str | Sequence[str]) -> list[str]:
    """``"jazz; Mellow"`` or a list -> normalized, distinct tags in order (``;`` or ``,`` separates)."""
    pieces = [tags] if isinstance(tags, str) else [str(t) for t in tags]
    for separator in TAG_SEPARATORS:
        pieces = [part for piece in pieces for part in piece.split(separator)]
    return list(dict.fromkeys(t for t in (normalize_tag(p) for p in pieces) if t))


def tag_terms(space: Space, tags: str | Sequence[str]) -> QueryTerms:
    """The vocabulary terms of a tag query in a tag space (terms are ``tagset:tag``).

    A bare tag matches the tag in every tagset of the space (``jazz`` -> ``genres:jazz``);
    ``tagset:tag`` names one.

    Raises
    ------
    UsageError
        No tag given.
    """
    wanted = split_tags(tags)
    if not wanted:
        raise UsageError("empty tag query: give tags such as \"jazz;calm\"")
    vocabulary = set(space.model.vocabulary)
    by_tag: dict[str, list[str]] = {}
    for term in space.model.vocabulary:
        by_tag.setdefault(term.split(":", 1)[-1], []).append(term)
    terms: list[str] = []
    known, unknown = [], []
    for tag in wanted:
        found = [tag] if tag in vocabulary else by_tag.get(tag, [])
        (known if found else unknown).append(tag)
        terms.extend(found)
    return QueryTerms(terms=list(dict.fromkeys(terms)), known=known, unknown=unknown)


def text_terms(space: Space, text: str) -> QueryTerms:
    """The vocabulary terms of a free-text query in a text space.

    The query is analyzed as the space's documents were (its analyzer: folding, tokens,
    n-grams), without a language; the stop words of every language the space knows are then
    dropped, since a short query's language is not known. Terms outside the vocabulary are
    ``unknown``.

    Raises
    ------
    UsageError
        Blank text.
    """
    if not text.strip():
        raise UsageError("empty text query: describe the music, e.g. \"calm piano for a rainy evening\"")
    analyzer = space.model.analyzer
    stop = {fold(word) for words in getattr(analyzer, "stop_words", {}).values() for word in words}
    words = [term for term in analyzer(TextDocument(text, "")) if term not in stop]
    vocabulary = set(space.model.vocabulary)
    known = list(dict.fromkeys(t for t in words if t in vocabulary))
    unknown = list(dict.fromkeys(t for t in words if t not in vocabulary))
    return QueryTerms(terms=known, known=known, unknown=unknown)


def project_terms(model: LsiModel, terms: Sequence[str]) -> np.ndarray | None:
    """The unit vector of a list of vocabulary terms, by the space's own TF-IDF and SVD; None without terms.

    The terms are already analyzed, so they are projected through an identity analyzer (a
    :class:`~musicrep.targets.analyzers.TagAnalyzer` passes a list through unchanged).
    """
    if not terms:
        return None
    vectors, has_terms = replace(model, analyzer=TagAnalyzer(tagsets=[])).project([list(terms)])
    return vectors[0] if has_terms[0] else None


def weighted_terms(model: LsiModel, document: object, terms: Sequence[str], *, limit: int = 5) -> list[str]:
    """Those of ``terms`` that weigh most in ``document``'s TF-IDF row (weight > 0), heaviest first."""
    if not terms:
        return []
    row = model.tfidf([document]).tocsr()
    column = {t: i for i, t in enumerate(model.vocabulary)}
    weights = {t: float(row[0, column[t]]) for t in terms if t in column}
    ranked = sorted((t for t, w in weights.items() if w > 0), key=lambda t: (-weights[t], t))
    return ranked[:limit]
