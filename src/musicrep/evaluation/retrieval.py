"""Retrieval metrics of embeddings: graded nDCG@k, precision@k and MAP@k.

Every item of a collection queries all the *other* items, ranked by cosine
similarity of their embeddings; a metric scores each query's top ``k`` and
averages over the queries.

Metrics
-------
nDCG@k (:func:`ndcg_at_k`)
    Graded relevance: candidate ``c`` is as relevant to query ``q`` as the
    cosine similarity of their target-space vectors (e.g. the tag LSI
    vectors), clipped at 0 (dissimilar is simply not relevant).
    ``DCG@k = sum_i rel_i / log2(i + 2)`` over the ranked list (``i`` from 0),
    ``IDCG@k`` is the same sum over the ``k`` most relevant candidates of the
    same candidate set, and ``nDCG@k = DCG@k / IDCG@k`` lies in [0, 1].
    :func:`ndcg_ceiling` ranks by the target vectors themselves: with cosine
    relevance that ranking *is* the ideal one, so the ceiling is 1 up to float
    rounding; it checks the pipeline and the target space, not the model.
precision@k (:func:`precision_at_k`)
    Binary relevance: a candidate is relevant when it shares at least one
    label with the query. Precision is the relevant share of the retrieved
    list (``k`` candidates, fewer only where fewer are allowed).
MAP@k (:func:`map_at_k`)
    Mean of ``AP@k = sum_i P@i * rel_i / min(k, R)``, ``R`` the number of
    relevant candidates of the query: 1 when the first ``min(k, R)`` retrieved
    are all relevant.

Why graded nDCG validates training: a thresholded precision only asks whether
the top ``k`` share a tag with the query. On a small collection with a few
broad tags almost every candidate shares one, so precision@k climbs to its
ceiling within a few epochs and stops telling checkpoints apart. Graded
relevance keeps rewarding putting the *most* similar tracks first, so nDCG
keeps moving while the model still improves.

Rules all metrics share
-----------------------
- Candidates: every other item. With ``artists`` and ``exclude_same_artist``
  the tracks of the query's artist are removed too (a track with an empty
  artist is its own artist); otherwise a model that recognises an artist's
  production or voice scores as if it understood the music. The ideal list
  of nDCG and the relevant count ``R`` use the same candidate set.
- Skipped queries: a query without any relevant candidate (``IDCG = 0``,
  ``R = 0``) has no defined score; it is counted in ``skipped`` and left out
  of the mean, never scored as 0. A relevance that rounds to 0 on the grid
  below counts as none (float noise of orthogonal vectors is not relevance).
- Zero rows: a zero embedding is equally similar (0) to every candidate, so
  its list is the first candidates by index; a zero relevance vector is
  relevant to nothing (its query is skipped).
- Ties: similarities and relevances are computed in float64 and brought to
  whole multiples of :data:`RESOLUTION` (2^-24, about 6e-8; similarities
  toward 0, relevances to the nearest), where float noise of 1e-16
  practically never crosses a step; equal similarities are ordered by
  candidate index (lower first). So a result is the same, bit for bit,
  whatever ``chunk``, BLAS kernel or thread count.
- Memory: ``chunk`` queries at a time against blocks of :data:`BLOCK`
  candidates; only running top-``k`` lists are kept, never an ``N x N``
  matrix. About 250 MB of scratch at the defaults whatever ``N``, plus
  float64 copies of the inputs (100 MB for 100,000 x 128). Time grows as
  ``N^2 * dims``: the float64 matrix products dominate.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from scipy import sparse

from musicrep.errors import InputError, UsageError

logger = logging.getLogger(__name__)

RESOLUTION = 2.0**-24
"""Grid that cosine similarities and relevances are rounded to before they are compared."""

BLOCK = 8192
"""Candidates per block of a query chunk."""

_DENSE_LABELS = 256  # label vocabularies up to this size are kept dense (one GEMM per block)

_EXCLUDED = np.iinfo(np.int32).min + 1  # similarity key of a candidate a query may not retrieve (negatable)

# (c0, c1, excluded, cols) -> relevance of the block's candidates cols (both (n_queries, ...), cols block-local)
_BlockRelevance = Callable[[int, int, np.ndarray, np.ndarray], np.ndarray]


class _Scratch:
    """Arrays reused from block to block: the big temporaries are allocated a few times per call, not per block.

    (Fresh arrays of tens of MB are new pages each time; faulting them in cost
    as much as the arithmetic.)
    """

    def __init__(self) -> None:
        self._arrays: dict[str, np.ndarray] = {}

    def __call__(self, name: str, shape: tuple[int, ...], dtype: type) -> np.ndarray:
        array = self._arrays.get(name)
        if array is None or array.shape != shape or array.dtype != dtype:
            array = self._arrays[name] = np.empty(shape, dtype=dtype)
        return array


@dataclass(frozen=True)
class RetrievalResult:
    """One retrieval metric over a collection.

    Attributes
    ----------
    metric : str
        ``"ndcg"``, ``"precision"`` or ``"map"``.
    k : int
        List length scored.
    value : float
        Mean over the scored queries; NaN when none could be scored.
    queries : int
        Queries scored.
    skipped : int
        Queries without any relevant candidate (not in the mean).
    per_query : np.ndarray [shape=(n,), float64]
        Each item's score as a query, NaN where skipped.
    """

    metric: str
    k: int
    value: float
    queries: int
    skipped: int
    per_query: np.ndarray = field(repr=False)

    @property
    def name(self) -> str:
        """``"<metric>@<k>"``, e.g. ``"ndcg@10"``."""
        return f"{self.metric}@{self.k}"


def ndcg_at_k(
    embeddings: np.ndarray, relevance_vectors: np.ndarray, *, k: int = 10, artists: Sequence[Any] | None = None,
    exclude_same_artist: bool = True, chunk: int = 1024,
) -> RetrievalResult:
    """Mean graded nDCG@k of every item querying all the others.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)]
        What is ranked by cosine similarity (normalized here; zero rows allowed).
    relevance_vectors : np.ndarray [shape=(n, d_rel)]
        Target-space vectors; relevance is their cosine similarity clipped at 0.
    k : int > 0
        List length.
    artists : sequence of str [shape=(n,)], optional
        Artist per row; empty, None or NaN: a track that is its own artist.
    exclude_same_artist : bool
        Remove the query's artist's tracks from its candidates (needs ``artists``).
    chunk : int > 0
        Queries per step; memory grows with it, not with ``n``.

    Returns
    -------
    RetrievalResult
        ``metric="ndcg"``; queries with no relevant candidate are skipped.

    Examples
    --------
    >>> tags = np.array([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0], [0.0, 1.0]])  # two pairs of related tracks
    >>> ndcg_at_k(tags, tags, k=1).value  # each track finds its partner
    1.0
    >>> ndcg_at_k(tags[[0, 2, 0, 2]], tags, k=1).value  # each finds a track of the other pair
    0.0
    """
    _check_options(k, chunk)
    emb = _unit_rows(embeddings, "embeddings")
    n = emb.shape[0]
    rel = _unit_rows(relevance_vectors, "relevance_vectors", n_rows=n)
    codes = _artist_codes(artists, n) if exclude_same_artist else None
    per_query = np.full(n, np.nan)
    scratch = _Scratch()
    for q0, q1 in _spans(n, chunk):
        per_query[q0:q1] = _ndcg_chunk(emb, rel, q0, q1, codes, min(k, n), scratch)
    return _result("ndcg", k, per_query)


def ndcg_ceiling(
    relevance_vectors: np.ndarray, *, k: int = 10, artists: Sequence[Any] | None = None,
    exclude_same_artist: bool = True, chunk: int = 1024,
) -> RetrievalResult:
    """nDCG@k of the target vectors used as embeddings: the most a model can reach.

    With cosine relevance the ranking by the target vectors is the ideal one,
    so the value is 1 up to rounding (and ties on the :data:`RESOLUTION` grid);
    report it next to a model's score to check the evaluation itself.

    Parameters
    ----------
    relevance_vectors : np.ndarray [shape=(n, d_rel)]
    k, artists, exclude_same_artist, chunk
        As in :func:`ndcg_at_k`.

    Returns
    -------
    RetrievalResult
    """
    return ndcg_at_k(relevance_vectors, relevance_vectors, k=k, artists=artists,
                     exclude_same_artist=exclude_same_artist, chunk=chunk)


def precision_at_k(
    embeddings: np.ndarray, labels: Any, *, k: int = 10, artists: Sequence[Any] | None = None,
    exclude_same_artist: bool = True, chunk: int = 1024,
) -> RetrievalResult:
    """Mean precision@k with relevance = sharing at least one label.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)]
        Ranked by cosine similarity (normalized here; zero rows allowed).
    labels : sequence of label collections [shape=(n,)], or multi-hot [shape=(n, n_labels)]
        Per item a list/set of hashable labels (a bare string is one label,
        None or NaN none), or a dense or scipy sparse matrix whose nonzero
        entries mark labels.
    k, artists, exclude_same_artist, chunk
        As in :func:`ndcg_at_k`.

    Returns
    -------
    RetrievalResult
        ``metric="precision"``: relevant share of the retrieved list (``k``
        long, shorter only where fewer candidates are allowed); queries with
        no relevant candidate are skipped.
    """
    return _binary_metric("precision", embeddings, labels, k, artists, exclude_same_artist, chunk, _precision)


def map_at_k(
    embeddings: np.ndarray, labels: Any, *, k: int = 10, artists: Sequence[Any] | None = None,
    exclude_same_artist: bool = True, chunk: int = 1024,
) -> RetrievalResult:
    """Mean average precision@k (AP@k normalized by ``min(k, relevant candidates)``).

    Parameters
    ----------
    embeddings, labels, k, artists, exclude_same_artist, chunk
        As in :func:`precision_at_k`.

    Returns
    -------
    RetrievalResult
        ``metric="map"``; queries with no relevant candidate are skipped.
    """
    return _binary_metric("map", embeddings, labels, k, artists, exclude_same_artist, chunk, _average_precision)


def _ndcg_chunk(
    emb: np.ndarray, rel: np.ndarray, q0: int, q1: int, codes: np.ndarray | None, length: int, scratch: _Scratch,
) -> np.ndarray:
    """nDCG of queries ``q0..q1`` (NaN where skipped)."""
    rel_q = rel[q0:q1]
    ideal = np.zeros((q1 - q0, 0))  # running top relevances (raw similarities) among the allowed candidates

    def relevance(c0: int, c1: int, excluded: np.ndarray, cols: np.ndarray) -> np.ndarray:
        nonlocal ideal
        # target similarities become gains (clipped, on the grid) only where kept
        similarity = np.matmul(rel_q, rel[c0:c1].T, out=scratch("relevance", excluded.shape, np.float64))
        np.copyto(similarity, -np.inf, where=excluded)
        picked = np.take_along_axis(similarity, cols, axis=1)
        ideal = _largest(np.concatenate([ideal, _largest(similarity, length, in_place=True)], axis=1), length)
        return picked

    similarity, _ = _ranked(emb, q0, q1, codes, length, relevance, scratch)
    discount = 1.0 / np.log2(np.arange(length) + 2.0)
    dcg = _discounted(_gain(similarity), discount)
    idcg = _discounted(-np.sort(-_gain(ideal), axis=1), discount)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(idcg > 0, np.minimum(dcg / idcg, 1.0), np.nan)


def _gain(similarity: np.ndarray) -> np.ndarray:
    """Graded relevance of a target-space cosine similarity (NaN and -inf: none), on the grid."""
    return np.rint(np.where(similarity > 0, similarity, 0.0) / RESOLUTION) * RESOLUTION


def _discounted(gains: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """``sum_i gains[:, i] * discount[i]``, summed in one fixed order (BLAS may not)."""
    total = np.zeros(gains.shape[0])
    for i in range(gains.shape[1]):
        total += gains[:, i] * discount[i]
    return total


def _precision(hits: np.ndarray, retrieved: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    return hits.sum(axis=1) / np.maximum(retrieved, 1)


def _average_precision(hits: np.ndarray, retrieved: np.ndarray, relevant: np.ndarray, k: int) -> np.ndarray:
    precision_at = np.cumsum(hits, axis=1) / np.arange(1, hits.shape[1] + 1)
    return (precision_at * hits).sum(axis=1) / np.maximum(np.minimum(relevant, k), 1)


def _binary_metric(
    metric: str, embeddings: np.ndarray, labels: Any, k: int, artists: Sequence[Any] | None,
    exclude_same_artist: bool, chunk: int,
    score: Callable[[np.ndarray, np.ndarray, np.ndarray, int], np.ndarray],
) -> RetrievalResult:
    _check_options(k, chunk)
    emb = _unit_rows(embeddings, "embeddings")
    n = emb.shape[0]
    shared = _LabelOverlap(labels, n)
    codes = _artist_codes(artists, n) if exclude_same_artist else None
    per_query = np.full(n, np.nan)
    scratch = _Scratch()
    for q0, q1 in _spans(n, chunk):
        hits, retrieved, relevant = _binary_chunk(emb, shared, q0, q1, codes, min(k, n), scratch)
        per_query[q0:q1] = np.where(relevant > 0, score(hits, retrieved, relevant, k), np.nan)
    return _result(metric, k, per_query)


def _binary_chunk(
    emb: np.ndarray, shared: _LabelOverlap, q0: int, q1: int, codes: np.ndarray | None, length: int,
    scratch: _Scratch,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hits of queries ``q0..q1`` in rank order (0/1), their list lengths and relevant candidate counts."""
    relevant = np.zeros(q1 - q0, dtype=np.int64)

    def relevance(c0: int, c1: int, excluded: np.ndarray, cols: np.ndarray) -> np.ndarray:
        hit = shared(q0, q1, c0, c1, scratch)
        np.greater(hit, excluded, out=hit)  # shares a label and is not excluded
        relevant[:] += np.count_nonzero(hit, axis=1)
        return np.take_along_axis(hit, cols, axis=1)

    hits, retrieved = _ranked(emb, q0, q1, codes, length, relevance, scratch)
    return np.where(np.isfinite(hits), hits, 0.0), retrieved, relevant


def _ranked(
    emb: np.ndarray, q0: int, q1: int, codes: np.ndarray | None, length: int, relevance: _BlockRelevance,
    scratch: _Scratch,
) -> tuple[np.ndarray, np.ndarray]:
    """Relevance of each query's best ``length`` candidates by similarity, in rank order.

    ``relevance`` gives the relevance (any dtype) of a block's best
    candidates by similarity; it is called once per block, so callers can
    also sum over the block. Returns the relevances as float64 (shape
    ``(q1 - q0, length)``, NaN past the end of lists shortened by
    exclusions) and each list's length.
    """
    emb_q = emb[q0:q1]
    best: list[np.ndarray] = []  # candidate index, similarity key, relevance: the running top lists
    for c0, c1 in _spans(emb.shape[0], BLOCK):
        shape = (q1 - q0, c1 - c0)
        excluded = _excluded(codes, q0, q1, c0, c1, scratch("excluded", shape, np.bool_))
        sim = np.matmul(emb_q, emb[c0:c1].T, out=scratch("similarity", shape, np.float64))
        key = scratch("key", shape, np.int32)  # whole grid steps (toward 0): compared exactly
        np.copyto(key, np.multiply(sim, 1 / RESOLUTION, out=sim), casting="unsafe")
        np.copyto(key, _EXCLUDED, where=excluded)
        cols = _top_columns(key, min(length, c1 - c0), scratch)
        picked = [cols + c0, np.take_along_axis(key, cols, axis=1), relevance(c0, c1, excluded, cols)]
        merged = [np.concatenate(pair, axis=1) for pair in zip(best, picked, strict=True)] if best else picked
        order = np.lexsort((merged[0], -merged[1]), axis=1)[:, :length]  # similarity descending, then index
        best = [np.take_along_axis(a, order, axis=1) for a in merged]
    allowed = best[1] > _EXCLUDED
    return np.where(allowed, best[2], np.nan), np.count_nonzero(allowed, axis=1)


def _top_columns(key: np.ndarray, k: int, scratch: _Scratch) -> np.ndarray:
    """Per row, the columns of the ``k`` largest keys, ties at the cut going to the lowest columns.

    Returns shape ``(rows, k)``, columns ascending.
    """
    n_cols = key.shape[1]
    partitioned = scratch("partitioned", key.shape, key.dtype)
    np.copyto(partitioned, key)
    partitioned.partition(n_cols - k, axis=1)
    cut = partitioned[:, n_cols - k, None]
    chosen = np.greater_equal(key, cut, out=scratch("chosen", key.shape, np.bool_))
    tied = np.count_nonzero(chosen, axis=1) > k
    if tied.any():  # keep the lowest columns of those equal to the cut
        sub, sub_cut = key[tied], cut[tied]
        above = sub > sub_cut
        room = k - np.count_nonzero(above, axis=1)
        at = sub == sub_cut
        chosen[tied] = above | (at & (np.cumsum(at, axis=1, dtype=np.int32) <= room[:, None]))
    return (np.flatnonzero(chosen) % n_cols).reshape(-1, k)  # flat: several times faster than 2-D nonzero


def _largest(values: np.ndarray, k: int, *, in_place: bool = False) -> np.ndarray:
    """Per row, the ``k`` largest values (all when fewer), unordered; ``in_place`` reorders ``values``."""
    n_cols = values.shape[1]
    if n_cols <= k:
        return values
    if not in_place:
        values = values.copy()
    values.partition(n_cols - k, axis=1)
    return values[:, n_cols - k:]


def _excluded(codes: np.ndarray | None, q0: int, q1: int, c0: int, c1: int, out: np.ndarray) -> np.ndarray:
    """Candidates ``c0..c1`` a query ``q0..q1`` may not retrieve: itself, and its artist's tracks."""
    if codes is not None:  # a track has its own code, so it excludes itself
        return np.equal(codes[q0:q1, None], codes[None, c0:c1], out=out)
    excluded = out
    excluded.fill(False)
    own = np.arange(max(q0, c0), min(q1, c1))
    excluded[own - q0, own - c0] = True
    return excluded


def _unit_rows(values: Any, name: str, *, n_rows: int | None = None) -> np.ndarray:
    """float64 rows scaled to unit length (zero rows stay zero)."""
    array = np.asarray(values, dtype=np.float64)
    if array.ndim != 2:
        raise InputError(f"{name}: expected a 2-D array (items x dims), got shape {array.shape}")
    if n_rows is not None and array.shape[0] != n_rows:
        raise InputError(f"{name}: expected {n_rows} rows (one per embedding), got {array.shape[0]}")
    bad = ~np.isfinite(array).all(axis=1)
    if bad.any():
        raise InputError(f"{name}: {int(bad.sum())} rows hold NaN or infinity (first: row {int(np.argmax(bad))})")
    norms = np.linalg.norm(array, axis=1, keepdims=True)
    return np.divide(array, norms, out=np.zeros_like(array), where=norms > 0)


def _artist_codes(artists: Sequence[Any] | None, n: int) -> np.ndarray | None:
    """One integer per artist; a track without an artist gets a code of its own."""
    if artists is None:
        return None
    names = list(artists)
    if len(names) != n:
        raise InputError(f"artists: expected {n} entries (one per embedding), got {len(names)}")
    names = pd.Series(names, dtype=object).fillna("")  # None, NaN, NA
    codes, _ = pd.factorize(names)
    codes = codes.astype(np.int64)
    blank = (names == "").to_numpy()
    codes[blank] = -1 - np.arange(int(blank.sum()))
    return codes


class _LabelOverlap:
    """Which candidates share at least one label with which queries."""

    def __init__(self, labels: Any, n: int) -> None:
        matrix = _multi_hot(labels, n)
        self._matrix: np.ndarray | sparse.csr_matrix = (
            matrix.toarray() if matrix.shape[1] <= _DENSE_LABELS else matrix
        )

    def __call__(self, q0: int, q1: int, c0: int, c1: int, scratch: _Scratch) -> np.ndarray:
        """Shape ``(q1 - q0, c1 - c0)``, in a scratch array."""
        shape = (q1 - q0, c1 - c0)
        if sparse.issparse(self._matrix):
            product = (self._matrix[q0:q1] @ self._matrix[c0:c1].T).toarray()
        else:
            product = np.matmul(self._matrix[q0:q1], self._matrix[c0:c1].T, out=scratch("labels", shape, np.float32))
        return np.greater(product, 0, out=scratch("shared", shape, np.bool_))


def _multi_hot(labels: Any, n: int) -> sparse.csr_matrix:
    """float32 CSR ``(n, n_labels)`` with 1 where an item has a label."""
    if sparse.issparse(labels) or (isinstance(labels, np.ndarray) and labels.ndim == 2):
        if labels.shape[0] != n:
            raise InputError(f"labels: expected {n} rows (one per embedding), got {labels.shape[0]}")
        if not (np.issubdtype(labels.dtype, np.number) or labels.dtype == bool):
            raise InputError(f"labels: a multi-hot matrix must be numeric or boolean, got {labels.dtype}")
        matrix = sparse.csr_matrix(labels != 0, dtype=np.float32)
        matrix.eliminate_zeros()
        return matrix
    items = list(labels)
    if len(items) != n:
        raise InputError(f"labels: expected {n} entries (one per embedding), got {len(items)}")
    vocabulary: dict[Any, int] = {}
    rows: list[int] = []
    cols: list[int] = []
    for row, item in enumerate(items):
        if not isinstance(item, str) and np.ndim(item) == 0 and pd.isna(item):  # None, NaN, NA
            continue
        for label in {item} if isinstance(item, str) else set(item):
            rows.append(row)
            cols.append(vocabulary.setdefault(label, len(vocabulary)))
    ones = np.ones(len(rows), dtype=np.float32)
    return sparse.csr_matrix((ones, (rows, cols)), shape=(n, len(vocabulary)))


def _check_options(k: int, chunk: int) -> None:
    for name, value in (("k", k), ("chunk", chunk)):
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise UsageError(f"{name} must be a positive integer (got {value!r})")


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _result(metric: str, k: int, per_query: np.ndarray) -> RetrievalResult:
    scored = ~np.isnan(per_query)
    queries = int(scored.sum())
    value = float(per_query[scored].mean()) if queries else math.nan
    logger.debug("%s@%d = %.4f over %d queries (%d skipped)", metric, k, value, queries, per_query.size - queries)
    return RetrievalResult(metric=metric, k=int(k), value=value, queries=queries,
                           skipped=per_query.size - queries, per_query=per_query)
