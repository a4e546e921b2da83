"""Retrieval metrics of embeddings: precision@k, MAP@k and graded nDCG@k, every ``k`` from one ranking.

Every item of a collection queries all the *other* items, ranked by cosine
similarity of their embeddings; a metric scores each query's top ``k`` and
averages over the queries.

Use
---
:func:`retrieval_metrics` ranks once and scores every metric at every ``k``
under both candidate rules. :func:`rank` then :func:`label_metrics` /
:func:`graded_metrics` do the same in steps, so one ranking serves several
tagsets and relevance spaces. :func:`ndcg_at_k`, :func:`precision_at_k` and
:func:`map_at_k` score one metric at one ``k`` (training's validation); they
give the same numbers, bit for bit, as the one-pass functions.

Metrics
-------
nDCG@k (:func:`graded_metrics`, :func:`ndcg_at_k`)
    Graded relevance: candidate ``c`` is as relevant to query ``q`` as the
    cosine similarity of their target-space vectors (e.g. the tag LSI
    vectors), clipped at 0 (dissimilar is simply not relevant).
    ``DCG@k = sum_i rel_i / log2(i + 2)`` over the ranked list (``i`` from 0),
    ``IDCG@k`` is the same sum over the ``k`` most relevant candidates of the
    same candidate set, and ``nDCG@k = DCG@k / IDCG@k`` lies in [0, 1].
    :func:`ndcg_ceiling` ranks by the target vectors themselves: with cosine
    relevance that ranking *is* the ideal one, so the ceiling is 1 up to float
    rounding; it checks the pipeline and the target space, not the model.
precision@k (:func:`label_metrics`, :func:`precision_at_k`)
    Binary relevance: a candidate is relevant when it shares at least one
    label with the query. Precision is the relevant share of the retrieved
    list (``k`` candidates, fewer only where fewer are allowed).
MAP@k (:func:`label_metrics`, :func:`map_at_k`)
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
- Candidates: every other item. Under the ``"artist_filtered"`` rule (or
  ``exclude_same_artist`` with ``artists``) the tracks of the query's artist
  are removed too (a track with an empty artist is its own artist); otherwise
  a model that recognises an artist's production or voice scores as if it
  understood the music. ``"unfiltered"`` removes only the query itself. The
  ideal list of nDCG and the relevant count ``R`` use the same candidate set.
- Skipped queries: a query without any relevant candidate (``IDCG = 0``,
  ``R = 0``) has no defined score; it is counted in ``skipped`` and left out
  of the mean, never scored as 0. A relevance that rounds to 0 on the grid
  below counts as none (float noise of orthogonal vectors is not relevance).
- Zero rows: a zero embedding is equally similar (0) to every candidate, so
  its list is the first candidates by index; a zero relevance vector is
  relevant to nothing (its query is skipped).
- Ties: the similarities and relevances that decide are float64 cosines of
  the unit rows, brought to whole multiples of :data:`RESOLUTION` (2^-24,
  about 6e-8; similarities toward 0, relevances to the nearest), where float
  noise of 1e-16 practically never crosses a step; equal similarities are
  ordered by candidate index (lower first). So a result is the same, bit for
  bit, whatever ``chunk``, :data:`BLOCK`, BLAS kernel or thread count.
- Precision and speed: a float32 product of unit vectors is off by at most
  ``(d + 3) * 2^-24`` (input rounding plus any summation order). Candidates
  are *screened* with float32 matrix products (twice the speed of float64 and
  half the memory traffic) against each query's running best list, with
  twice that bound as margin; only the survivors (the list, and candidates
  within the margin of its last entry) are scored again in float64, pair by
  pair, and ranked by those exact keys. The float32 values never decide a
  rank, they only rule out candidates that cannot be in the list. After the
  first block of candidates a whole block is screened with one comparison
  per entry, so the cost is the float32 products (``N^2 * d``) plus two
  cheap passes over them: 40 s for 100,000 x 128 on two cores, every
  metric at every ``k`` under both candidate rules (``bench/evaluate.py``).
  A query whose near-ties overflow its screened list (masses of duplicate
  vectors) and a zero query are ranked again with exact lists throughout.
- Exact without an ``N x N`` pass: the relevant counts ``R`` come from the
  items grouped by label set (two items share a label exactly when their
  sets overlap), the ideal lists of nDCG from the *distinct* relevance
  vectors, each counted as often as items of other groups hold it: up to
  4,096 of them (a tag space) every gain at once, more (a text space:
  one vector per album text) screened as the embeddings are, which about
  doubles the time.
- Memory: ``chunk`` queries at a time against blocks of :data:`BLOCK`
  candidates (32 MB of float32 scratch at the defaults, whatever ``N``),
  float64 and float32 copies of the inputs (150 MB for 100,000 x 128) and
  the ranked lists (``depth`` int64 per item and rule).
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping, Sequence
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

DEFAULT_KS = (1, 5, 10, 20, 50)
"""List lengths scored by default."""

RULES = ("artist_filtered", "unfiltered")
"""Candidate rules: the query's artist's tracks removed, or only the query itself."""

ProgressFn = Callable[[int, int], None]

_DENSE_LABELS = 256  # label vocabularies up to this size are kept dense
_SET_TABLE = 4096  # up to this many distinct label sets, their pairwise overlaps are one lookup table
_FEW_DISTINCT = 4096  # up to this many distinct relevance vectors, ideal lists come from all their gains at once
_PAIRS = 16384  # pairs scored in float64 per step (memory: 2 x _PAIRS x dims float64)
_IDX_BITS = 37  # a list entry packs (key, candidate index) into one int64 that sorts best first
_IDX_MASK = (1 << _IDX_BITS) - 1
_KEY_OFFSET = 2**25  # keys lie in [-2^24, 2^24]; offset - key is positive and below 2^26
_EMPTY = np.iinfo(np.int64).max  # an unfilled list entry: sorts last


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

    def rows(self, name: str, n_rows: int, n_cols: int, dtype: type) -> np.ndarray:
        """The first ``n_rows`` rows of an array that only grows (so varying sizes reuse it)."""
        array = self._arrays.get(name)
        if array is None or array.shape[0] < n_rows or array.shape[1] != n_cols or array.dtype != dtype:
            array = self._arrays[name] = np.empty((n_rows, n_cols), dtype=dtype)
        return array[:n_rows]


@dataclass(frozen=True)
class RetrievalResult:
    """One retrieval metric over a collection.

    Attributes
    ----------
    metric : str
        ``"ndcg"`` (or ``"ndcg_<space>"``), ``"precision"`` or ``"map"``.
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


@dataclass(frozen=True)
class Ranking:
    """Each item's best candidates by cosine similarity under one candidate rule.

    Attributes
    ----------
    rule : str
        ``"artist_filtered"`` or ``"unfiltered"``.
    candidates : np.ndarray [shape=(n, depth), int64]
        Candidate rows in rank order; -1 past the end of a list shortened by exclusions.
    groups : np.ndarray [shape=(n,), int64]
        Exclusion groups: a query never retrieves an item of its own group (its artist's tracks,
        or itself).
    """

    rule: str
    candidates: np.ndarray = field(repr=False)
    groups: np.ndarray = field(repr=False)

    @property
    def depth(self) -> int:
        """List length (the largest ``k`` it can score, capped at the collection size)."""
        return int(self.candidates.shape[1])

    @property
    def lengths(self) -> np.ndarray:
        """Candidates in each list."""
        return np.count_nonzero(self.candidates >= 0, axis=1)


# ------------------------------------------------------------------------------------------ one pass


def retrieval_metrics(
    embeddings: np.ndarray, *, labels: Any = None, relevance: Mapping[str, np.ndarray] | None = None,
    ks: Sequence[int] = DEFAULT_KS, artists: Sequence[Any] | None = None, rules: Sequence[str] | None = None,
    chunk: int = 1024, on_progress: ProgressFn | None = None,
) -> dict[str, dict[str, RetrievalResult]]:
    """Every metric at every ``k`` under each candidate rule, from one ranking pass.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)]
        Ranked by cosine similarity (normalized here; zero rows allowed).
    labels : label collections or multi-hot, optional
        As in :func:`precision_at_k`: scores ``precision@k`` and ``map@k``.
    relevance : dict[str, np.ndarray [shape=(n, d_rel)]], optional
        Target-space vectors by space name: scores ``ndcg_<name>@k`` for each
        (``ndcg@k`` for the name ``""``).
    ks : sequence of int > 0
        List lengths.
    artists : sequence of str [shape=(n,)], optional
        Artist per row; empty, None or NaN: a track that is its own artist.
    rules : sequence of {"artist_filtered", "unfiltered"}, optional
        Default: both when ``artists`` are given, else ``("unfiltered",)``.
    chunk : int > 0
        Queries per step; memory grows with it, not with ``n``.
    on_progress : callable, optional
        ``(queries ranked, n)`` after each chunk.

    Returns
    -------
    dict[str, dict[str, RetrievalResult]]
        rule -> metric name (``"precision@10"``, ``"map@10"``, ``"ndcg_joint@10"``) -> result.

    Examples
    --------
    >>> emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9]])
    >>> scores = retrieval_metrics(emb, labels=[["a"], ["a"], ["b"], ["b"]], ks=(1, 2))
    >>> scores["unfiltered"]["precision@1"].value, scores["unfiltered"]["precision@2"].value
    (1.0, 0.5)
    """
    ks = _check_ks(ks)
    _check_positive(chunk=chunk)
    emb = _unit_rows(embeddings, "embeddings")
    n = emb.shape[0]
    rules = _check_rules(rules if rules is not None else (RULES if artists is not None else ("unfiltered",)),
                         artists)
    groups = {rule: _rule_groups(rule, artists, n) for rule in rules}
    label_sets = _LabelSets(labels, n) if labels is not None else None
    spaces = {name: _unit_rows(vectors, f"relevance[{name!r}]", n_rows=n)
              for name, vectors in (relevance or {}).items()}
    rankings = _rank(emb, groups, depth=min(max(ks), n), chunk=chunk, on_progress=on_progress)
    out: dict[str, dict[str, RetrievalResult]] = {}
    for rule, ranking in rankings.items():
        results: dict[str, RetrievalResult] = {}
        if label_sets is not None:
            results.update(_label_results(ranking, label_sets, ks))
        for name, vectors in spaces.items():
            results.update(_graded_results(ranking, vectors, ks, metric=f"ndcg_{name}" if name else "ndcg",
                                           chunk=chunk))
        out[rule] = results
    return out


def rank(
    embeddings: np.ndarray, *, depth: int, artists: Sequence[Any] | None = None,
    rules: Sequence[str] = ("artist_filtered",), chunk: int = 1024, on_progress: ProgressFn | None = None,
) -> dict[str, Ranking]:
    """Each item's ``depth`` best candidates by cosine similarity, under each rule, in one pass.

    Parameters
    ----------
    embeddings : np.ndarray [shape=(n, d)]
    depth : int > 0
        List length: the largest ``k`` to score (capped at ``n``).
    artists : sequence of str [shape=(n,)], optional
        Needed by the ``"artist_filtered"`` rule.
    rules : sequence of {"artist_filtered", "unfiltered"}
    chunk, on_progress
        As in :func:`retrieval_metrics`.

    Returns
    -------
    dict[str, Ranking]
        By rule.
    """
    _check_positive(depth=depth, chunk=chunk)
    emb = _unit_rows(embeddings, "embeddings")
    n = emb.shape[0]
    groups = {rule: _rule_groups(rule, artists, n) for rule in _check_rules(rules, artists)}
    return _rank(emb, groups, depth=min(depth, n), chunk=chunk, on_progress=on_progress)


def label_metrics(ranking: Ranking, labels: Any, *, ks: Sequence[int] = DEFAULT_KS) -> dict[str, RetrievalResult]:
    """precision@k and MAP@k of a ranking for every ``k``, relevance = sharing a label.

    Parameters
    ----------
    ranking : Ranking
    labels : label collections or multi-hot
        As in :func:`precision_at_k`, one entry per ranked item.
    ks : sequence of int > 0

    Returns
    -------
    dict[str, RetrievalResult]
        ``"precision@k"`` and ``"map@k"`` for each ``k``.
    """
    ks = _check_ks(ks)
    return _label_results(ranking, _LabelSets(labels, len(ranking.candidates)), ks)


def graded_metrics(ranking: Ranking, relevance_vectors: np.ndarray, *, ks: Sequence[int] = DEFAULT_KS,
                   metric: str = "ndcg", chunk: int = 1024) -> dict[str, RetrievalResult]:
    """nDCG@k of a ranking for every ``k``, graded by the cosine of ``relevance_vectors``.

    Parameters
    ----------
    ranking : Ranking
    relevance_vectors : np.ndarray [shape=(n, d_rel)]
    ks : sequence of int > 0
    metric : str
        Name of the results (``"ndcg_text"`` gives ``"ndcg_text@10"``).
    chunk : int > 0

    Returns
    -------
    dict[str, RetrievalResult]
    """
    ks = _check_ks(ks)
    _check_positive(chunk=chunk)
    vectors = _unit_rows(relevance_vectors, "relevance_vectors", n_rows=len(ranking.candidates))
    return _graded_results(ranking, vectors, ks, metric=metric, chunk=chunk)


# ------------------------------------------------------------------------------------------ one metric


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
    _check_positive(k=k, chunk=chunk)
    emb = _unit_rows(embeddings, "embeddings")
    n = emb.shape[0]
    rel = _unit_rows(relevance_vectors, "relevance_vectors", n_rows=n)
    ranking = _single_ranking(emb, k, artists, exclude_same_artist, chunk)
    return _graded_results(ranking, rel, (k,), metric="ndcg", chunk=chunk)[f"ndcg@{k}"]


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
    return _binary_metric("precision", embeddings, labels, k, artists, exclude_same_artist, chunk)


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
    return _binary_metric("map", embeddings, labels, k, artists, exclude_same_artist, chunk)


def _binary_metric(metric: str, embeddings: np.ndarray, labels: Any, k: int, artists: Sequence[Any] | None,
                   exclude_same_artist: bool, chunk: int) -> RetrievalResult:
    _check_positive(k=k, chunk=chunk)
    emb = _unit_rows(embeddings, "embeddings")
    label_sets = _LabelSets(labels, emb.shape[0])
    ranking = _single_ranking(emb, k, artists, exclude_same_artist, chunk)
    return _label_results(ranking, label_sets, (k,))[f"{metric}@{k}"]


def _single_ranking(emb: np.ndarray, k: int, artists: Sequence[Any] | None, exclude_same_artist: bool,
                    chunk: int) -> Ranking:
    rule = "artist_filtered" if exclude_same_artist and artists is not None else "unfiltered"
    n = emb.shape[0]
    return _rank(emb, {rule: _rule_groups(rule, artists, n)}, depth=min(k, n), chunk=chunk)[rule]


# ------------------------------------------------------------------------------------------- scoring


def _label_results(ranking: Ranking, label_sets: _LabelSets, ks: tuple[int, ...]) -> dict[str, RetrievalResult]:
    candidates = ranking.candidates
    relevant = label_sets.relevant_counts(ranking.groups)
    hits = np.zeros(candidates.shape)
    rows, cols = np.nonzero(candidates >= 0)
    hits[rows, cols] = label_sets.overlap(rows, candidates[rows, cols])
    listed = ranking.lengths
    scored = relevant > 0
    results = {}
    for k in ks:
        length = min(k, ranking.depth)
        top = hits[:, :length]
        precision = top.sum(axis=1) / np.maximum(np.minimum(listed, length), 1)
        precision_at = np.cumsum(top, axis=1) / np.arange(1, length + 1)
        average = (precision_at * top).sum(axis=1) / np.maximum(np.minimum(relevant, k), 1)
        results[f"precision@{k}"] = _result("precision", k, np.where(scored, precision, np.nan))
        results[f"map@{k}"] = _result("map", k, np.where(scored, average, np.nan))
    return results


def _graded_results(ranking: Ranking, rel: np.ndarray, ks: tuple[int, ...], *, metric: str, chunk: int
                    ) -> dict[str, RetrievalResult]:
    ideal = _ideal_gains(rel, ranking.groups, ranking.depth, chunk)
    gains = _ranked_gains(rel, ranking.candidates)
    results = {}
    for k in ks:
        length = min(k, ranking.depth)
        discount = 1.0 / np.log2(np.arange(length) + 2.0)
        dcg = _discounted(gains[:, :length], discount)
        idcg = _discounted(ideal[:, :length], discount)
        with np.errstate(invalid="ignore", divide="ignore"):
            per_query = np.where(idcg > 0, np.minimum(dcg / idcg, 1.0), np.nan)
        results[f"{metric}@{k}"] = _result(metric, k, per_query)
    return results


def _ranked_gains(rel: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Graded relevance of each ranked candidate to its query (0 past the end of a list)."""
    gains = np.zeros(candidates.shape)
    rows, cols = np.nonzero(candidates >= 0)
    gains[rows, cols] = _keys(_pair_dots(rel, rows, rel, candidates[rows, cols]), gains=True) * RESOLUTION
    return gains


def _ideal_gains(rel: np.ndarray, groups: np.ndarray, depth: int, chunk: int) -> np.ndarray:
    """Per query the ``depth`` largest gains among its allowed candidates, descending (0 where fewer).

    The distinct relevance vectors are ranked instead of the items: each counts as many times as
    items outside the query's group hold it (a vector only the query's group holds is excluded).
    """
    n = rel.shape[0]
    ideal = np.zeros((n, depth))
    if n == 0 or depth == 0:
        return ideal
    distinct, inverse, total = np.unique(rel, axis=0, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    n_distinct = len(distinct)
    low = np.full(n_distinct, np.iinfo(np.int64).max)
    high = np.full(n_distinct, -1)
    np.minimum.at(low, inverse, groups)
    np.maximum.at(high, inverse, groups)
    owner = np.where(low == high, low, -1)  # the one group holding the vector, else -1 (groups are >= 0)
    if n_distinct <= _FEW_DISTINCT:  # a tag space: every (query, vector) gain at once; ties need no order here
        vectors, keys = _top_gains(rel, distinct, groups, owner, min(depth, n_distinct), chunk)
    else:
        [(vectors, keys)] = _best(rel, distinct, [(groups, owner)], depth=min(depth, n_distinct), gains=True,
                                  chunk=chunk)
    own_keys, own_counts = np.unique(groups * n_distinct + inverse, return_counts=True)
    slots = np.arange(depth)
    for r0, r1 in _spans(n, chunk):
        listed = vectors[r0:r1]
        lookup = groups[r0:r1, None] * n_distinct + listed
        at = np.minimum(np.searchsorted(own_keys, lookup), len(own_keys) - 1)
        own = np.where(own_keys[at] == lookup, own_counts[at], 0)
        allowed = np.where(listed >= 0, total[np.maximum(listed, 0)] - own, 0)
        ends = np.cumsum(allowed, axis=1)
        entry = np.count_nonzero(ends[:, None, :] <= slots[None, :, None], axis=2)  # list entry filling each slot
        filled = slots[None, :] < ends[:, -1:]
        picked = np.take_along_axis(keys[r0:r1], np.minimum(entry, listed.shape[1] - 1), axis=1)
        ideal[r0:r1] = np.where(filled, picked * RESOLUTION, 0.0)
    return ideal


def _top_gains(rel: np.ndarray, distinct: np.ndarray, groups: np.ndarray, owner: np.ndarray, depth: int,
               chunk: int) -> tuple[np.ndarray, np.ndarray]:
    """Per query the ``depth`` distinct vectors of largest positive gain that it may retrieve, and the gains' keys.

    Float64 products of every query with every distinct vector: with few distinct vectors (a tag space)
    this is cheaper than screening, whose lists would overflow with the many exactly tied gains.
    """
    n = rel.shape[0]
    vectors = np.full((n, depth), -1, dtype=np.int64)
    keys = np.zeros((n, depth), dtype=np.int64)
    rows = max(1, min(chunk, 2**22 // max(1, len(distinct))))
    for r0, r1 in _spans(n, rows):
        gain = _keys(rel[r0:r1] @ distinct.T, gains=True)
        gain[groups[r0:r1, None] == owner[None, :]] = 0  # held by the query's group only
        top = np.argpartition(-gain, depth - 1, axis=1)[:, :depth]
        top_gain = np.take_along_axis(gain, top, axis=1)
        order = np.argsort(-top_gain, axis=1, kind="stable")
        top, top_gain = np.take_along_axis(top, order, axis=1), np.take_along_axis(top_gain, order, axis=1)
        vectors[r0:r1] = np.where(top_gain > 0, top, -1)
        keys[r0:r1] = np.where(top_gain > 0, top_gain, 0)
    return vectors, keys


def _discounted(gains: np.ndarray, discount: np.ndarray) -> np.ndarray:
    """``sum_i gains[:, i] * discount[i]``, summed in one fixed order (BLAS may not)."""
    total = np.zeros(gains.shape[0])
    for i in range(gains.shape[1]):
        total += gains[:, i] * discount[i]
    return total


# ------------------------------------------------------------------------------------------- ranking


def _rank(emb: np.ndarray, groups: dict[str, np.ndarray], *, depth: int, chunk: int,
          on_progress: ProgressFn | None = None) -> dict[str, Ranking]:
    found = _best(emb, emb, [(g, g) for g in groups.values()], depth=depth, gains=False, chunk=chunk,
                  on_progress=on_progress)
    return {rule: Ranking(rule, candidates, groups[rule]) for rule, (candidates, _) in zip(groups, found, strict=True)}


def _best(
    queries: np.ndarray, candidates: np.ndarray, rules: list[tuple[np.ndarray, np.ndarray]], *, depth: int,
    gains: bool, chunk: int, on_progress: ProgressFn | None = None,
) -> list[tuple[np.ndarray, np.ndarray]]:
    """Per query and rule, the ``depth`` best candidates by exact key, ties to the lower candidate index.

    A first pass keeps, per query, the candidates whose float32 similarity may still put them in the
    list (:class:`_ScreenedList`) and scores those few exactly at the end of each chunk. A query whose
    near-ties overflow that list, and a zero query (every candidate ties), go through a second pass
    that keeps exact lists all along (:class:`_ExactList`).

    Parameters
    ----------
    queries, candidates : np.ndarray [shape=(nq, d), (nc, d)], float64 unit (or zero) rows
    rules : list of (query groups, candidate groups)
        A candidate whose group equals the query's is excluded under that rule.
    gains : bool
        Keys are gains (relevance, rounded to the nearest step, clipped at 0) and only positive ones
        are listed; else similarity keys (rounded toward 0).

    Returns
    -------
    list of (indices, keys), one per rule
        ``(nq, depth)`` int64 each: candidate rows best first (-1 past the end) and their keys.
    """
    nq = queries.shape[0]
    out = [(np.full((nq, depth), -1, dtype=np.int64), np.zeros((nq, depth), dtype=np.int64)) for _ in rules]
    if nq == 0 or candidates.shape[0] == 0 or depth == 0:
        return out
    scan = _Scan(queries, candidates, gains=gains)
    nonzero = np.flatnonzero(scan.errors > 0)
    exact_rows = [np.flatnonzero(scan.errors == 0)]
    for span in _spans(len(nonzero), chunk):
        rows = nonzero[span[0]:span[1]]
        lists = [_ScreenedList(len(rows), depth, scan.errors[rows]) for _ in rules]
        scan.run(rows, [(qg[rows], cg) for qg, cg in rules], lists)
        found = scan.rescored(rows, lists)
        for (indices, keys), exact in zip(out, found, strict=True):
            indices[rows], keys[rows] = exact.decoded()
        exact_rows.append(rows[np.any([screened.overflow for screened in lists], axis=0)])
        if on_progress is not None:
            on_progress(span[1], nq)
    again = np.concatenate(exact_rows)
    if again.size:
        logger.debug("%d queries with zero vectors or many near-ties: ranked with exact lists", again.size)
    for r0, r1 in _spans(len(again), chunk):
        rows = again[r0:r1]
        lists = [_ExactList(len(rows), depth, scan.errors[rows]) for _ in rules]
        scan.run(rows, [(qg[rows], cg) for qg, cg in rules], lists)
        for (indices, keys), exact in zip(out, lists, strict=True):
            indices[rows], keys[rows] = exact.decoded()
    if on_progress is not None:
        on_progress(nq, nq)
    return out


class _ExactList:
    """Each query's best ``depth`` candidates by exact key (ties: lower index), packed into sortable int64."""

    exact = True

    def __init__(self, n_rows: int, depth: int, errors: np.ndarray) -> None:
        self.depth = depth
        self.packed = np.full((n_rows, depth), _EMPTY, dtype=np.int64)
        self.errors = errors

    @property
    def full(self) -> np.ndarray:
        return self.packed[:, -1] != _EMPTY

    def limits(self) -> np.ndarray:
        """A float32 similarity a candidate must exceed to enter a full list (later candidates lose ties)."""
        last = _KEY_OFFSET - (self.packed[:, -1] >> _IDX_BITS)
        return np.where(self.full, last * RESOLUTION - self.errors, -np.inf)

    def add(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, keys: np.ndarray) -> None:
        _merge(self.packed, rows, ((_KEY_OFFSET - keys) << _IDX_BITS) | cols)

    def decoded(self) -> tuple[np.ndarray, np.ndarray]:
        filled = self.packed != _EMPTY
        return (np.where(filled, self.packed & _IDX_MASK, -1),
                np.where(filled, _KEY_OFFSET - (self.packed >> _IDX_BITS), 0))


class _ScreenedList:
    """Each query's candidates that its best ``depth`` by exact key may still hold, by float32 value.

    The best ``depth`` by float32 value and every candidate within ``2 * error + 2`` grid steps of
    the last of them: float32 is off by at most ``error``, a key rounds off less than a step, so the
    exact best ``depth`` are among them. Up to ``capacity`` per query; a query with more such near-ties
    is marked in :attr:`overflow` (its list is then not trusted).
    """

    exact = False

    def __init__(self, n_rows: int, depth: int, errors: np.ndarray) -> None:
        self.depth = depth
        self.packed = np.full((n_rows, 2 * depth + 16), _EMPTY_SCREEN, dtype=np.uint64)
        self.margins = 2.0 * errors + 2.0 * RESOLUTION
        self.overflow = np.zeros(n_rows, dtype=bool)

    @property
    def full(self) -> np.ndarray:
        return self.packed[:, self.depth - 1] != _EMPTY_SCREEN

    def limits(self) -> np.ndarray:
        """Candidates at or below this float32 value cannot enter the best ``depth`` of a full list."""
        return np.where(self.full, _screen_values(self.packed[:, self.depth - 1]) - self.margins, -np.inf)

    def add(self, rows: np.ndarray, cols: np.ndarray, values: np.ndarray, keys: np.ndarray | None) -> None:
        if rows.size == 0:
            return
        packed = (_descending(values).astype(np.uint64) << np.uint64(32)) | cols.astype(np.uint64)
        touched, merged = _merged(self.packed, rows, packed)
        cut = _float32_below(_screen_values(merged[:, self.depth - 1]) - self.margins[touched])
        # value >= cut, compared on the packed codes (the order is the same); empty entries fail it
        kept = (merged >> np.uint64(32)) <= _descending(cut).astype(np.uint64)[:, None]
        capacity = self.packed.shape[1]
        self.overflow[touched] |= np.count_nonzero(kept, axis=1) > capacity
        merged[~kept] = _EMPTY_SCREEN
        self.packed[touched] = merged[:, :capacity]

    def entries(self) -> tuple[np.ndarray, np.ndarray]:
        """``(rows, candidate indices)`` of every kept entry."""
        rows, slots = np.nonzero(self.packed != _EMPTY_SCREEN)
        return rows, (self.packed[rows, slots] & np.uint64(0xFFFFFFFF)).astype(np.int64)


_EMPTY_SCREEN = np.iinfo(np.uint64).max


def _descending(values: np.ndarray) -> np.ndarray:
    """uint32 codes of float32 values whose ascending order is the values' descending order (-inf: 0xFF800000)."""
    bits = (values.astype(np.float32) + np.float32(0.0)).view(np.uint32)  # -0.0 + 0.0 is 0.0: one code for zero
    return ~np.where(bits & 0x80000000, ~bits, bits | 0x80000000).astype(np.uint32)


def _screen_values(packed: np.ndarray) -> np.ndarray:
    """float64 similarities of packed screen entries (-inf for empty ones)."""
    ascending = ~(packed >> np.uint64(32)).astype(np.uint32)
    bits = np.where(ascending & 0x80000000, ascending & 0x7FFFFFFF, ~ascending).astype(np.uint32)
    return np.where(packed == _EMPTY_SCREEN, -np.inf, bits.view(np.float32).astype(np.float64))


class _Scan:
    """Candidate blocks against query chunks: float32 products, screened against the lists' limits."""

    def __init__(self, queries: np.ndarray, candidates: np.ndarray, *, gains: bool) -> None:
        self.queries, self.candidates, self.gains = queries, candidates, gains
        self.candidates32 = candidates.astype(np.float32)
        bound = 2.0 * (queries.shape[1] + 3) * 2.0**-24  # float32 error of a unit-vector cosine, doubled
        self.errors = np.where(np.any(queries != 0, axis=1), bound, 0.0)  # a zero row's products are exact
        self.scratch = _Scratch()

    def run(self, rows: np.ndarray, rules: list[tuple[np.ndarray, np.ndarray]], lists: list) -> None:
        """Add every candidate that passes the screen to the lists of queries ``rows`` (rules: local query groups)."""
        queries32 = self.queries[rows].astype(np.float32)
        errors = self.errors[rows]
        exact = any(lst.exact for lst in lists)
        for c0, c1 in _spans(self.candidates.shape[0], BLOCK):
            shape = (len(rows), c1 - c0)
            similarity = np.matmul(queries32, self.candidates32[c0:c1].T,
                                   out=self.scratch("similarity", shape, np.float32))
            threshold = _thresholds(similarity, lists, rules, (c0, c1), errors, self.gains)
            passed = np.greater(similarity, threshold[:, None], out=self.scratch("passed", shape, np.bool_))
            local, cols = np.divmod(np.flatnonzero(passed), shape[1])
            if local.size == 0:
                continue
            values = similarity[local, cols]
            cols += c0
            keys = None
            if exact:
                dots = _pair_dots(self.queries, rows[local], self.candidates, cols, self.scratch)
                keys = _keys(dots, gains=self.gains)
            for (query_groups, candidate_groups), lst in zip(rules, lists, strict=True):
                keep = query_groups[local] != candidate_groups[cols]
                if lst.exact and self.gains:
                    keep &= keys > 0
                lst.add(local[keep], cols[keep], values[keep], None if keys is None else keys[keep])

    def rescored(self, rows: np.ndarray, lists: list[_ScreenedList]) -> list[_ExactList]:
        """The screened lists scored exactly: each distinct (query, candidate) pair once, whatever the rules."""
        entries = [lst.entries() for lst in lists]
        n_candidates = self.candidates.shape[0]
        pairs, inverse = np.unique(np.concatenate([r * n_candidates + c for r, c in entries]), return_inverse=True)
        local, cols = np.divmod(pairs, n_candidates)
        keys = _keys(_pair_dots(self.queries, rows[local], self.candidates, cols, self.scratch), gains=self.gains)
        found = []
        start = 0
        for r, c in entries:
            exact = _ExactList(len(rows), lists[0].depth, self.errors[rows])
            these = keys[inverse[start:start + r.size]]
            keep = these > 0 if self.gains else np.ones(r.size, dtype=bool)
            exact.add(r[keep], c[keep], None, these[keep])
            found.append(exact)
            start += r.size
        return found


def _thresholds(similarity: np.ndarray, lists: list, rules: list[tuple[np.ndarray, np.ndarray]],
                span: tuple[int, int], errors: np.ndarray, gains: bool) -> np.ndarray:
    """Per query, a float32 value that every candidate of the block able to enter a list exceeds.

    A query whose lists are full: the lists' own limits. Otherwise the block's ``depth``-th best
    allowed float32 value, less twice the error and two grid steps, bounds the final list's last
    entry from below.
    """
    c0, c1 = span
    depth = lists[0].depth
    full = np.all([lst.full for lst in lists], axis=0)
    threshold = np.min([lst.limits() for lst in lists], axis=0)
    threshold[~full] = -np.inf
    still_open = np.flatnonzero(~full)
    width = c1 - c0
    if still_open.size and width > depth:
        block = similarity[still_open]  # a copy
        for query_groups, candidate_groups in rules:
            block[query_groups[still_open, None] == candidate_groups[None, c0:c1]] = -np.inf
        block.partition(width - depth, axis=1)
        cut = block[:, width - depth].astype(np.float64)
        threshold[still_open] = cut - 2.0 * errors[still_open] - 2.0 * RESOLUTION
    if gains:  # only positive gains are listed: similarity of at least half a step
        threshold = np.maximum(threshold, 0.5 * RESOLUTION - errors)
    return _float32_below(threshold)


def _float32_below(values: np.ndarray) -> np.ndarray:
    """float32 values not above ``values`` (rounding could otherwise raise a threshold)."""
    rounded = values.astype(np.float32)
    high = rounded.astype(np.float64) > values
    rounded[high] = np.nextafter(rounded[high], np.float32(-np.inf))
    return rounded


def _keys(similarities: np.ndarray, *, gains: bool) -> np.ndarray:
    """Whole grid steps of exact similarities: toward 0, or (gains) clipped at 0 and to the nearest step."""
    if gains:
        return np.rint(np.where(similarities > 0, similarities, 0.0) / RESOLUTION).astype(np.int64)
    return np.trunc(similarities / RESOLUTION).astype(np.int64)


def _pair_dots(a: np.ndarray, a_rows: np.ndarray, b: np.ndarray, b_rows: np.ndarray,
               scratch: _Scratch | None = None) -> np.ndarray:
    """``a[a_rows[i]] . b[b_rows[i]]`` in float64; each pair summed alone, so batching changes no bit."""
    scratch = scratch or _Scratch()
    out = np.empty(len(a_rows))
    size = min(_PAIRS, len(a_rows))
    left = scratch.rows("left", size, a.shape[1], np.float64)  # reused: fresh pages cost more than the products
    right = scratch.rows("right", size, b.shape[1], np.float64)
    for start in range(0, len(a_rows), _PAIRS):
        stop = min(start + _PAIRS, len(a_rows))
        x, y = left[:stop - start], right[:stop - start]
        np.take(a, a_rows[start:stop], axis=0, out=x)
        np.take(b, b_rows[start:stop], axis=0, out=y)
        out[start:stop] = np.multiply(x, y, out=x).sum(axis=1)
    return out


def _merged(lists: np.ndarray, rows: np.ndarray, packed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The rows of ``lists`` that get new entries (``rows`` ascending), with them, each row sorted."""
    starts = np.flatnonzero(np.concatenate([[True], rows[1:] != rows[:-1]]))
    counts = np.diff(np.append(starts, rows.size))
    touched = rows[starts]
    empty = lists.dtype.type(np.iinfo(lists.dtype).max)
    new = np.full((touched.size, int(counts.max())), empty, dtype=lists.dtype)
    new[np.repeat(np.arange(touched.size), counts), np.arange(rows.size) - np.repeat(starts, counts)] = packed
    merged = np.concatenate([lists[touched], new], axis=1)
    merged.sort(axis=1)
    return touched, merged


def _merge(best: np.ndarray, rows: np.ndarray, packed: np.ndarray) -> None:
    """Merge new entries (``rows`` ascending) into the sorted lists ``best``, keeping the first ``depth``."""
    if rows.size == 0:
        return
    touched, merged = _merged(best, rows, packed)
    best[touched] = merged[:, :best.shape[1]]


# ------------------------------------------------------------------------------------------- labels


class _LabelSets:
    """Items grouped by label set: two items share a label exactly when their sets overlap.

    Overlaps are decided per pair of distinct sets (a lookup table when there are few), and the
    relevant count of a query is the size of the overlapping sets, less the items of its own
    group, without visiting pairs of items.
    """

    def __init__(self, labels: Any, n: int) -> None:
        matrix = _multi_hot(labels, n)
        matrix.sort_indices()
        indices, starts = matrix.indices, matrix.indptr
        keys = [indices[starts[i]:starts[i + 1]].tobytes() for i in range(n)]
        codes, _ = pd.factorize(pd.Series(keys, dtype=object))
        self.codes = codes.astype(np.int64)
        first = np.unique(self.codes, return_index=True)[1]
        self.sets: sparse.csr_matrix = matrix[first]
        self.sizes = np.bincount(self.codes, minlength=len(first))
        self._dense = self.sets.toarray() > 0 if matrix.shape[1] <= _DENSE_LABELS else None
        self._table = (self.sets @ self.sets.T).toarray() > 0 if len(first) <= _SET_TABLE else None

    def overlap(self, items_a: np.ndarray, items_b: np.ndarray) -> np.ndarray:
        """Whether items ``items_a[i]`` and ``items_b[i]`` share a label."""
        return self._set_overlap(self.codes[items_a], self.codes[items_b])

    def _set_overlap(self, sets_a: np.ndarray, sets_b: np.ndarray) -> np.ndarray:
        if self._table is not None:
            return self._table[sets_a, sets_b]
        out = np.empty(len(sets_a), dtype=bool)
        for start in range(0, len(sets_a), _PAIRS):
            a, b = sets_a[start:start + _PAIRS], sets_b[start:start + _PAIRS]
            if self._dense is not None:
                out[start:start + _PAIRS] = (self._dense[a] & self._dense[b]).any(axis=1)
            else:
                out[start:start + _PAIRS] = self.sets[a].multiply(self.sets[b]).getnnz(axis=1) > 0
        return out

    def relevant_counts(self, groups: np.ndarray) -> np.ndarray:
        """Per item, the items outside its group that share a label with it."""
        n_sets = len(self.sizes)
        if self._table is not None:
            sharing = self._table.astype(np.int64) @ self.sizes
        else:
            sharing = np.empty(n_sets, dtype=np.int64)
            for s0, s1 in _spans(n_sets, 256):
                overlaps = (self.sets[s0:s1] @ self.sets.T).toarray() > 0
                sharing[s0:s1] = overlaps.astype(np.int64) @ self.sizes
        # the items of each (group, set) entry's own group that overlap it: pairs of entries within a group
        entries, entry_of, entry_count = np.unique(groups * n_sets + self.codes, return_inverse=True,
                                                   return_counts=True)
        entry_of = entry_of.reshape(-1)
        entry_group, entry_set = entries // n_sets, entries % n_sets
        starts = np.flatnonzero(np.concatenate([[True], entry_group[1:] != entry_group[:-1]]))
        group_size = np.diff(np.append(starts, len(entries)))
        partners = np.repeat(group_size, group_size)  # entries of the group, for each entry
        first_partner = np.repeat(starts, group_size)
        left = np.repeat(np.arange(len(entries)), partners)
        offset = np.arange(len(left)) - np.repeat(np.cumsum(partners) - partners, partners)
        right = first_partner[left] + offset
        shared = self._set_overlap(entry_set[left], entry_set[right])
        own = np.bincount(left, weights=shared * entry_count[right], minlength=len(entries))
        return sharing[self.codes] - own[entry_of].astype(np.int64)


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


# ------------------------------------------------------------------------------------------- inputs


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


def _rule_groups(rule: str, artists: Sequence[Any] | None, n: int) -> np.ndarray:
    """Exclusion group of each item under a rule: its artist (a track without one is its own), or itself."""
    if rule == "unfiltered":
        return np.arange(n, dtype=np.int64)
    if artists is None:
        raise UsageError("the artist_filtered rule needs the artists")
    names = list(artists)
    if len(names) != n:
        raise InputError(f"artists: expected {n} entries (one per embedding), got {len(names)}")
    names = pd.Series(names, dtype=object).fillna("")  # None, NaN, NA
    codes, uniques = pd.factorize(names)
    codes = codes.astype(np.int64)
    blank = (names == "").to_numpy()
    codes[blank] = len(uniques) + np.arange(int(blank.sum()))
    return codes


def _check_rules(rules: Sequence[str], artists: Sequence[Any] | None) -> tuple[str, ...]:
    rules = tuple(rules)
    unknown = [r for r in rules if r not in RULES]
    if unknown or not rules or len(set(rules)) != len(rules):
        raise UsageError(f"rules must be distinct names among {', '.join(RULES)} (got {list(rules)})")
    if "artist_filtered" in rules and artists is None:
        raise UsageError("the artist_filtered rule needs the artists")
    return rules


def _check_positive(**values: Any) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
            raise UsageError(f"{name} must be a positive integer (got {value!r})")


def _check_ks(ks: Sequence[int]) -> tuple[int, ...]:
    ks = tuple(ks)
    if not ks:
        raise UsageError("ks: give at least one list length")
    for k in ks:
        _check_positive(k=k)
    return tuple(sorted({int(k) for k in ks}))


def _spans(n: int, size: int) -> list[tuple[int, int]]:
    return [(start, min(start + size, n)) for start in range(0, n, size)]


def _result(metric: str, k: int, per_query: np.ndarray) -> RetrievalResult:
    scored = ~np.isnan(per_query)
    queries = int(scored.sum())
    value = float(per_query[scored].mean()) if queries else math.nan
    logger.debug("%s@%d = %.4f over %d queries (%d skipped)", metric, k, value, queries, per_query.size - queries)
    return RetrievalResult(metric=metric, k=int(k), value=value, queries=queries,
                           skipped=per_query.size - queries, per_query=per_query)
