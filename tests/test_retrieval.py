"""Retrieval metrics: brute-force references, hand-computed lists, structured data, memory."""

from __future__ import annotations

import math
import tracemalloc

import numpy as np
import pandas as pd
import pytest
from scipy import sparse

from musicrep.errors import InputError, UsageError
from musicrep.evaluation import retrieval
from musicrep.evaluation.retrieval import (
    RESOLUTION,
    map_at_k,
    ndcg_at_k,
    ndcg_ceiling,
    precision_at_k,
    retrieval_metrics,
)

L3 = math.log2(3)

# ---------------------------------------------------------------------------
# brute-force references: plain Python loops, one query and one candidate at a time


def _cosine(a: np.ndarray, b: np.ndarray) -> float:
    norm_a = math.sqrt(sum(float(x) * float(x) for x in a))
    norm_b = math.sqrt(sum(float(x) * float(x) for x in b))
    if norm_a == 0 or norm_b == 0:
        return 0.0
    return sum(float(x) * float(y) for x, y in zip(a, b, strict=True)) / (norm_a * norm_b)


def _candidates(q: int, n: int, artists: list | None, exclude: bool) -> list[int]:
    out = []
    for c in range(n):
        if c == q:
            continue
        if exclude and artists is not None and artists[q] not in ("", None) and artists[c] == artists[q]:
            continue
        out.append(c)
    return out


def _ranking(emb: np.ndarray, q: int, candidates: list[int]) -> list[int]:
    # similarity compared on the RESOLUTION grid, ties by candidate index
    return sorted(candidates, key=lambda c: (-int(_cosine(emb[q], emb[c]) / RESOLUTION), c))


def reference_ndcg(emb, rel, k, artists=None, exclude=True) -> list[float]:
    n = len(emb)
    scores = []
    for q in range(n):
        candidates = _candidates(q, n, artists, exclude)
        gain = {}
        for c in candidates:
            g = _cosine(rel[q], rel[c])
            gain[c] = g if g > RESOLUTION / 2 else 0.0
        ranked = _ranking(emb, q, candidates)[:k]
        dcg = sum(gain[c] / math.log2(i + 2) for i, c in enumerate(ranked))
        ideal = sorted(gain.values(), reverse=True)[:k]
        idcg = sum(g / math.log2(i + 2) for i, g in enumerate(ideal))
        scores.append(dcg / idcg if idcg > 0 else math.nan)
    return scores


def reference_binary(emb, labels, k, artists=None, exclude=True) -> tuple[list[float], list[float]]:
    """Per-query precision@k and AP@k (NaN where no candidate is relevant)."""
    n = len(emb)
    precision, average = [], []
    for q in range(n):
        candidates = _candidates(q, n, artists, exclude)
        relevant = {c for c in candidates if set(labels[q]) & set(labels[c])}
        if not relevant:
            precision.append(math.nan)
            average.append(math.nan)
            continue
        ranked = _ranking(emb, q, candidates)[:k]
        hits = [c in relevant for c in ranked]
        precision.append(sum(hits) / len(ranked))
        ap = sum(sum(hits[: i + 1]) / (i + 1) for i in range(len(ranked)) if hits[i])
        average.append(ap / min(k, len(relevant)))
    return precision, average


def _check(result, expected: list[float]) -> None:
    expected = np.array(expected)
    scored = ~np.isnan(expected)
    assert np.array_equal(np.isnan(result.per_query), ~scored)
    np.testing.assert_allclose(result.per_query[scored], expected[scored], rtol=0, atol=1e-6)  # relevances on the grid
    assert result.queries == int(scored.sum())
    assert result.skipped == int((~scored).sum())
    assert result.value == pytest.approx(float(expected[scored].mean()), abs=1e-6)


# ---------------------------------------------------------------------------
# a small collection with every awkward case


@pytest.fixture(scope="module")
def collection() -> dict:
    rng = np.random.default_rng(7)
    n = 60
    # small integers: many exactly tied similarities
    emb = rng.integers(-2, 3, size=(n, 6)).astype(np.float64)
    emb[[5, 17, 33]] = 0.0  # zero embeddings
    emb[41] = emb[42] = emb[40]  # identical candidates
    rel = np.zeros((n, 7))
    rel[:, :5] = rng.standard_normal((n, 5))  # negative cosines occur: clipped to 0
    rel[[3, 20]] = 0.0  # relevant to nothing
    rel[50] = [0, 0, 0, 0, 0, 1.0, 0]  # orthogonal to everyone
    rel[[55, 56]] = 0.0
    rel[[55, 56], 6] = [1.0, 2.0]  # relevant only to each other, and they share an artist
    rel[12] = rel[13] = rel[14]  # tied relevance
    artists: list = [f"artist{a}" for a in rng.integers(0, 15, size=n)]
    for row in (2, 9, 31, 47):
        artists[row] = ""
    artists[23] = None
    artists[55] = artists[56] = "solo"
    vocabulary = [f"tag{t}" for t in range(8)]
    labels = [[t for t in vocabulary if rng.random() < 0.2] for _ in range(n)]
    labels[50] = ["only-mine"]
    labels[55] = labels[56] = ["solo-tag"]
    labels[7] = []
    return {"emb": emb, "rel": rel, "artists": artists, "labels": labels}


MODES = [("artists", True), ("artists", False), (None, True)]


@pytest.mark.parametrize("k", [1, 3, 10, 59, 80])
@pytest.mark.parametrize("mode", MODES, ids=["exclude-artist", "keep-artist", "no-artists"])
def test_ndcg_matches_brute_force(collection, k, mode, monkeypatch):
    artists = collection["artists"] if mode[0] else None
    expected = reference_ndcg(collection["emb"], collection["rel"], k, artists, mode[1])
    results = []
    for block in (5, 8192):
        monkeypatch.setattr(retrieval, "BLOCK", block)
        for chunk in (1, 7, 1000):
            result = ndcg_at_k(collection["emb"], collection["rel"], k=k, artists=artists,
                               exclude_same_artist=mode[1], chunk=chunk)
            _check(result, expected)
            results.append(result.per_query)
    for other in results[1:]:  # chunking and candidate blocks change nothing, bit for bit
        np.testing.assert_array_equal(other, results[0])


@pytest.mark.parametrize("k", [1, 3, 10, 80])
@pytest.mark.parametrize("mode", MODES, ids=["exclude-artist", "keep-artist", "no-artists"])
def test_precision_and_map_match_brute_force(collection, k, mode, monkeypatch):
    artists = collection["artists"] if mode[0] else None
    precision, average = reference_binary(collection["emb"], collection["labels"], k, artists, mode[1])
    for block in (5, 8192):
        monkeypatch.setattr(retrieval, "BLOCK", block)
        for chunk in (1, 7, 1000):
            options = {"k": k, "artists": artists, "exclude_same_artist": mode[1], "chunk": chunk}
            _check(precision_at_k(collection["emb"], collection["labels"], **options), precision)
            _check(map_at_k(collection["emb"], collection["labels"], **options), average)


def test_skipped_queries_are_counted_not_scored(collection):
    artists = collection["artists"]
    result = ndcg_at_k(collection["emb"], collection["rel"], artists=artists)
    # no relevance vector (3, 20), orthogonal to all (50), relevant only to its own artist (55, 56)
    assert np.flatnonzero(np.isnan(result.per_query)).tolist() == [3, 20, 50, 55, 56]
    assert (result.queries, result.skipped) == (55, 5)
    assert result.value == pytest.approx(np.nanmean(result.per_query))
    kept = ndcg_at_k(collection["emb"], collection["rel"], artists=artists, exclude_same_artist=False)
    assert np.flatnonzero(np.isnan(kept.per_query)).tolist() == [3, 20, 50]
    binary = precision_at_k(collection["emb"], collection["labels"], artists=artists)
    assert {7, 50, 55, 56} <= set(np.flatnonzero(np.isnan(binary.per_query)).tolist())


# ---------------------------------------------------------------------------
# hand-computed lists


def _unit_circle(degrees: list[float]) -> np.ndarray:
    radians = np.deg2rad(degrees)
    return np.stack([np.cos(radians), np.sin(radians)], axis=1)


# embeddings at 0, 90, 60, 10 degrees: item 0 ranks 3, 2, 1; item 1 ranks 2, 3, 0; item 2 ranks 1, 3, 0;
# item 3 ranks 0, 2, 1. Relevance: rel(0,1) = 1, rel(0,2) = rel(1,2) = 0.6, rel(2,3) = 0.8, rel(0,3) = rel(1,3) = 0.
# Item 4 (embedding at 200 degrees, last for everyone) is relevant to nothing: negative or zero cosines.
TINY_EMB = _unit_circle([0, 90, 60, 10, 200])
TINY_REL = np.array([[1.0, 0.0], [1.0, 0.0], [0.6, 0.8], [0.0, 1.0], [-1.0, 0.0]])


def test_ndcg_hand_computed():
    result = ndcg_at_k(TINY_EMB, TINY_REL, k=2)
    expected = [
        (0.6 / L3) / (1 + 0.6 / L3),  # ranked 3, 2: gains 0, 0.6; ideal 1, 0.6
        0.6 / (1 + 0.6 / L3),  # ranked 2, 3: gains 0.6, 0
        (0.6 + 0.8 / L3) / (0.8 + 0.6 / L3),  # ranked 1, 3: gains 0.6, 0.8; ideal 0.8, 0.6
        (0.8 / L3) / 0.8,  # ranked 0, 2: gains 0, 0.8; ideal 0.8, 0
        math.nan,  # nothing relevant
    ]
    _check(result, expected)
    assert (result.queries, result.skipped, result.name) == (4, 1, "ndcg@2")
    first = ndcg_at_k(TINY_EMB, TINY_REL, k=3).per_query[0]
    assert first == pytest.approx((0.6 / L3 + 1 / 2) / (1 + 0.6 / L3))  # ranked 3, 2, 1


def test_ndcg_hand_computed_artist_exclusion():
    # 0 and 1 share an artist; 3 has none (its own artist)
    result = ndcg_at_k(TINY_EMB, TINY_REL, k=2, artists=["a", "a", "b", "", "c"])
    expected = [
        (0.6 / L3) / 0.6,  # 1 excluded: ranked 3, 2; ideal 0.6, 0
        1.0,  # 0 excluded: ranked 2, 3: gains 0.6, 0 = ideal
        (0.6 + 0.8 / L3) / (0.8 + 0.6 / L3),
        (0.8 / L3) / 0.8,
        math.nan,
    ]
    _check(result, expected)


def test_precision_and_map_hand_computed():
    labels = [{"rock"}, {"rock", "pop"}, {"jazz"}, {"pop"}]
    emb = TINY_EMB[:4]
    # relevant: 0-1 (rock), 1-3 (pop); 2 shares nothing and is skipped
    p2 = precision_at_k(emb, labels, k=2)
    _check(p2, [0.0, 0.5, math.nan, 0.0])
    assert p2.value == pytest.approx(1 / 6)
    _check(map_at_k(emb, labels, k=2), [0.0, (1 / 2) / 2, math.nan, 0.0])
    _check(precision_at_k(emb, labels, k=3), [1 / 3, 2 / 3, math.nan, 1 / 3])
    map3 = map_at_k(emb, labels, k=3)
    _check(map3, [1 / 3, (1 / 2 + 2 / 3) / 2, math.nan, 1 / 3])
    assert map3.value == pytest.approx(5 / 12)


def test_ties_go_to_the_lower_candidate_index():
    emb = np.array([[1.0, 0.0], [0.0, 1.0], [1.0, 0.5], [1.0, 0.5], [0.0, 0.0]])
    rel = np.array([[1.0, 0.0], [0.0, 1.0], [0.0, 1.0], [1.0, 0.0], [1.0, 0.0]])
    result = ndcg_at_k(emb, rel, k=1)
    assert result.per_query[0] == 0.0  # 2 and 3 tie as 0's nearest: 2 (irrelevant) comes first, not 3
    assert result.per_query[4] == 1.0  # a zero embedding ties all: candidate 0 first (relevant to 4)
    rel[4] = [0.0, 1.0]  # now 0 is irrelevant to 4, and still comes first
    assert ndcg_at_k(emb, rel, k=1).per_query[4] == 0.0
    labels = [["a"], ["b"], ["b"], ["a"], []]
    assert precision_at_k(emb, labels, k=1).per_query[0] == 0.0


# ---------------------------------------------------------------------------
# structured data


def _clustered(rng: np.random.Generator, n: int, clusters: int, dims: int, noise: float) -> tuple[np.ndarray, ...]:
    centers = rng.standard_normal((clusters, dims))
    cluster = rng.integers(0, clusters, size=n)
    return centers[cluster] + noise * rng.standard_normal((n, dims)), cluster


def test_ceiling_random_and_informative_embeddings():
    rng = np.random.default_rng(1)
    rel, cluster = _clustered(rng, 400, 8, 16, 0.5)
    ceiling = ndcg_ceiling(rel, k=10)
    assert ceiling.value == pytest.approx(1.0, abs=1e-9)
    assert ceiling.skipped == 0
    perfect = ndcg_at_k(rel, rel, k=10)
    assert perfect.value == ceiling.value
    random = ndcg_at_k(rng.standard_normal((400, 32)), rel, k=10)
    informative = ndcg_at_k(rel + 0.5 * rng.standard_normal(rel.shape), rel, k=10)
    assert random.value < informative.value < ceiling.value
    assert random.value < ceiling.value - 0.3
    labels = [[f"cluster{c}"] for c in cluster]
    assert precision_at_k(rel, labels).value > precision_at_k(rng.standard_normal((400, 32)), labels).value + 0.5


def test_artist_exclusion_matters_when_same_artist_tracks_are_nearest():
    rng = np.random.default_rng(2)
    n_artists, per_artist = 40, 6
    artist = np.repeat(np.arange(n_artists), per_artist)
    genre_of_artist = rng.integers(0, 4, size=n_artists)
    genres = 3.0 * rng.standard_normal((4, 12))
    rel = genres[genre_of_artist[artist]] + rng.standard_normal((len(artist), 12))
    # the embedding knows the artist (its sound), nothing about the genre
    emb = rng.standard_normal((n_artists, 32))[artist] + 0.1 * rng.standard_normal((len(artist), 32))
    names = [f"artist{a}" for a in artist]
    kept = ndcg_at_k(emb, rel, k=5, artists=names, exclude_same_artist=False)
    excluded = ndcg_at_k(emb, rel, k=5, artists=names)
    assert excluded.value < kept.value - 0.15
    assert ndcg_at_k(emb, rel, k=5).value == kept.value  # without artists only the query itself is excluded
    labels = [[f"genre{genre_of_artist[a]}"] for a in artist]
    assert (precision_at_k(emb, labels, k=5, artists=names).value
            < precision_at_k(emb, labels, k=5, artists=names, exclude_same_artist=False).value - 0.3)


# ---------------------------------------------------------------------------
# inputs


def test_label_formats_agree(collection):
    labels = collection["labels"]
    vocabulary = sorted({t for item in labels for t in item})
    dense = np.array([[t in item for t in vocabulary] for item in labels])
    expected = precision_at_k(collection["emb"], labels, k=5)
    for form in (dense, dense.astype(np.float32), sparse.csr_matrix(dense), [set(item) for item in labels]):
        result = precision_at_k(collection["emb"], form, k=5)
        np.testing.assert_array_equal(result.per_query, expected.per_query)
    single = ["a", "b", None, "a", math.nan, "b"]  # a bare string is one label; None and NaN none
    result = precision_at_k(np.eye(6), single, k=1)
    assert result.skipped == 2 and result.queries == 4


def test_large_label_vocabulary_matches_brute_force(collection):
    # above the dense-vocabulary size the labels stay sparse
    rng = np.random.default_rng(3)
    n = len(collection["emb"])
    labels = [[f"tag{t}" for t in rng.choice(400, size=rng.integers(0, 40), replace=False)] for _ in range(n)]
    assert len({t for item in labels for t in item}) > retrieval._DENSE_LABELS
    precision, average = reference_binary(collection["emb"], labels, 10, collection["artists"])
    _check(precision_at_k(collection["emb"], labels, k=10, artists=collection["artists"], chunk=7), precision)
    _check(map_at_k(collection["emb"], labels, k=10, artists=collection["artists"], chunk=7), average)


def test_missing_artists_in_any_form_are_their_own_artist(collection):
    blank = ["" if a is None else a for a in collection["artists"]]
    expected = ndcg_at_k(collection["emb"], collection["rel"], artists=blank)
    as_series = pd.Series(collection["artists"]).replace("", np.nan)
    result = ndcg_at_k(collection["emb"], collection["rel"], artists=as_series)
    np.testing.assert_array_equal(result.per_query, expected.per_query)


def test_degenerate_collections():
    one = ndcg_at_k(np.ones((1, 3)), np.ones((1, 3)))
    assert (one.queries, one.skipped) == (0, 1) and math.isnan(one.value)
    empty = precision_at_k(np.zeros((0, 3)), [])
    assert (empty.queries, empty.skipped) == (0, 0) and math.isnan(empty.value)
    all_skipped = ndcg_at_k(np.eye(4), np.zeros((4, 2)))
    assert (all_skipped.queries, all_skipped.skipped) == (0, 4)


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: ndcg_at_k(np.eye(3), np.eye(3), k=0), UsageError, "k must be a positive integer"),
        (lambda: ndcg_at_k(np.eye(3), np.eye(3), chunk=0), UsageError, "chunk must be"),
        (lambda: precision_at_k(np.eye(3), [[1]] * 3, k=2.5), UsageError, "k must be"),
        (lambda: ndcg_at_k(np.eye(3), np.eye(4)), InputError, "relevance_vectors: expected 3 rows"),
        (lambda: ndcg_at_k(np.ones(3), np.eye(3)), InputError, "embeddings: expected a 2-D array"),
        (lambda: ndcg_at_k(np.array([[1.0], [np.nan]]), np.eye(2)), InputError, "1 rows hold NaN"),
        (lambda: ndcg_at_k(np.eye(3), np.eye(3), artists=["a"]), InputError, "artists: expected 3 entries"),
        (lambda: map_at_k(np.eye(3), [["a"]] * 2), InputError, "labels: expected 3 entries"),
        (lambda: map_at_k(np.eye(3), np.ones((2, 4))), InputError, "labels: expected 3 rows"),
    ],
)
def test_errors_name_the_input(call, error, message):
    with pytest.raises(error, match=message):
        call()


# ---------------------------------------------------------------------------
# scale


@pytest.mark.slow
def test_memory_stays_bounded_at_20000_items():
    """20,000 x 128-d (a few seconds): one N x N float32 matrix would be 1.6 GB; the chunks stay far below."""
    rng = np.random.default_rng(4)
    n = 20_000
    emb = rng.standard_normal((n, 128)).astype(np.float32)
    rel = np.abs(rng.standard_normal((n, 8))).astype(np.float32)
    artists = [f"artist{a}" for a in rng.integers(0, 4000, size=n)]
    tracemalloc.start()
    try:
        result = ndcg_at_k(emb, rel, k=10, artists=artists, chunk=512)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert result.queries == n
    assert 0.5 < result.value < 1.0
    assert peak < 400 * 2**20, f"peak {peak / 2**20:.0f} MiB"


# ---------------------------------------------------------------------------
# one pass: every metric at every k, both candidate rules


def test_one_pass_equals_the_single_k_functions_bit_for_bit(collection, monkeypatch):
    emb, labels, rel, artists = collection["emb"], collection["labels"], collection["rel"], collection["artists"]
    ks = (1, 3, 10, 59, 80)
    for block, chunk in ((8192, 1024), (5, 7)):
        monkeypatch.setattr(retrieval, "BLOCK", block)
        scores = retrieval_metrics(emb, labels=labels, relevance={"joint": rel, "": rel}, ks=ks, artists=artists,
                                   chunk=chunk)
        assert set(scores) == {"artist_filtered", "unfiltered"}
        for rule, exclude in (("artist_filtered", True), ("unfiltered", False)):
            for k in ks:
                options = {"k": k, "artists": artists, "exclude_same_artist": exclude}
                for name, single in ((f"precision@{k}", precision_at_k(emb, labels, **options)),
                                     (f"map@{k}", map_at_k(emb, labels, **options)),
                                     (f"ndcg_joint@{k}", ndcg_at_k(emb, rel, **options)),
                                     (f"ndcg@{k}", ndcg_at_k(emb, rel, **options))):
                    result = scores[rule][name]
                    np.testing.assert_array_equal(result.per_query, single.per_query)
                    assert (result.value, result.queries, result.skipped) == pytest.approx(
                        (single.value, single.queries, single.skipped), nan_ok=True)
                    assert result.name == name


def test_one_pass_hand_computed_at_several_k():
    labels = [{"rock"}, {"rock", "pop"}, {"jazz"}, {"pop"}]
    emb = TINY_EMB[:4]  # item 0 ranks 3, 2, 1; item 1 ranks 2, 3, 0; item 3 ranks 0, 2, 1
    scores = retrieval_metrics(emb, labels=labels, relevance={"tags": TINY_REL[:4]}, ks=(1, 2, 3, 10))["unfiltered"]
    _check(scores["precision@1"], [0.0, 0.0, math.nan, 0.0])
    _check(scores["precision@2"], [0.0, 0.5, math.nan, 0.0])
    _check(scores["precision@3"], [1 / 3, 2 / 3, math.nan, 1 / 3])
    _check(scores["precision@10"], [1 / 3, 2 / 3, math.nan, 1 / 3])  # k beyond the 3 candidates: 3 retrieved
    _check(scores["map@3"], [1 / 3, (1 / 2 + 2 / 3) / 2, math.nan, 1 / 3])
    _check(scores["map@10"], [1 / 3, (1 / 2 + 2 / 3) / 2, math.nan, 1 / 3])  # normalized by R, not k
    assert (scores["precision@1"].queries, scores["precision@1"].skipped) == (3, 1)
    _check(scores["ndcg_tags@2"], [(0.6 / L3) / (1 + 0.6 / L3), 0.6 / (1 + 0.6 / L3),
                                   (0.6 + 0.8 / L3) / (0.8 + 0.6 / L3), (0.8 / L3) / 0.8])
    # the artist filter: 0 and 1 share an artist, so 0 has no relevant candidate left by its labels
    filtered = retrieval_metrics(emb, labels=labels, ks=(1, 3), artists=["a", "a", "b", "c"])["artist_filtered"]
    _check(filtered["precision@3"], [math.nan, 1 / 2, math.nan, 1 / 3])  # 1: ranks 2, 3 (0 removed): 3 shares pop
    _check(filtered["map@3"], [math.nan, (1 / 2) / 1, math.nan, (1 / 3) / 1])
    assert filtered["precision@3"].skipped == 2


@pytest.mark.parametrize("distinct", [2, 6])
def test_rankings_match_brute_force_with_masses_of_ties(monkeypatch, distinct):
    """Exact duplicates: with 2 distinct vectors the ties overflow every screened list (the exact second pass
    ranks them); with 6, most lists hold their ties."""
    rng = np.random.default_rng(5)
    emb = np.concatenate([rng.standard_normal((distinct, 8))[rng.integers(0, distinct, size=200)],
                          rng.standard_normal((100, 8))])
    emb[[4, 77]] = 0.0
    artists = [f"a{a}" for a in rng.integers(0, 40, size=300)]
    monkeypatch.setattr(retrieval, "BLOCK", 64)
    rankings = retrieval.rank(emb, depth=20, artists=artists, rules=retrieval.RULES, chunk=50)
    norms = np.linalg.norm(emb, axis=1, keepdims=True)
    unit = np.divide(emb, norms, out=np.zeros_like(emb), where=norms > 0)
    for rule, ranking in rankings.items():
        assert ranking.depth == 20 and ranking.candidates.shape == (300, 20)
        for q in (0, 4, 77, 150, 250, 299):
            keys = np.trunc((unit[q][None, :] * unit).sum(axis=1) / RESOLUTION)  # each pair's float64 sum
            allowed = [c for c in range(300) if c != q and (rule == "unfiltered" or artists[c] != artists[q])]
            expected = sorted(allowed, key=lambda c: (-keys[c], c))[:20]
            assert ranking.candidates[q].tolist() == expected, (rule, q)
    assert rankings["unfiltered"].candidates[4].tolist() == [c for c in range(21) if c != 4]  # zero row: by index


def test_label_sets_without_lookup_table_or_dense_labels(collection, monkeypatch):
    expected = retrieval_metrics(collection["emb"], labels=collection["labels"], ks=(5,), artists=collection["artists"])
    monkeypatch.setattr(retrieval, "_SET_TABLE", 1)
    for dense in (256, 0):  # dense rows, then sparse products
        monkeypatch.setattr(retrieval, "_DENSE_LABELS", dense)
        found = retrieval_metrics(collection["emb"], labels=collection["labels"], ks=(5,),
                                  artists=collection["artists"])
        for rule in expected:
            for name in ("precision@5", "map@5"):
                np.testing.assert_array_equal(found[rule][name].per_query, expected[rule][name].per_query)


def test_step_api_one_ranking_several_tagsets(collection):
    rankings = retrieval.rank(collection["emb"], depth=10, artists=collection["artists"],
                              rules=("artist_filtered", "unfiltered"))
    other = [[t.upper() for t in item] for item in collection["labels"]]
    for rule, ranking in rankings.items():
        first = retrieval.label_metrics(ranking, collection["labels"], ks=(10,))
        second = retrieval.label_metrics(ranking, other, ks=(10,))
        np.testing.assert_array_equal(first["precision@10"].per_query, second["precision@10"].per_query)
        graded = retrieval.graded_metrics(ranking, collection["rel"], ks=(10,), metric="ndcg_x")
        single = ndcg_at_k(collection["emb"], collection["rel"], artists=collection["artists"],
                           exclude_same_artist=rule == "artist_filtered")
        np.testing.assert_array_equal(graded["ndcg_x@10"].per_query, single.per_query)
    assert rankings["unfiltered"].lengths.tolist() == [10] * 60


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (lambda: retrieval_metrics(np.eye(3), labels=[["a"]] * 3, ks=()), UsageError, "at least one list length"),
        (lambda: retrieval_metrics(np.eye(3), labels=[["a"]] * 3, ks=(0, 5)), UsageError, "k must be"),
        (lambda: retrieval_metrics(np.eye(3), rules=("artist_filtered",)), UsageError, "needs the artists"),
        (lambda: retrieval_metrics(np.eye(3), rules=("nearest",)), UsageError, "rules must be"),
        (lambda: retrieval_metrics(np.eye(3), relevance={"joint": np.eye(2)}), InputError,
         r"relevance\['joint'\]: expected 3 rows"),
        (lambda: retrieval.rank(np.eye(3), depth=0), UsageError, "depth must be"),
    ],
)
def test_one_pass_errors(call, error, message):
    with pytest.raises(error, match=message):
        call()


@pytest.mark.parametrize("mode", MODES, ids=["exclude-artist", "keep-artist", "no-artists"])
def test_ideal_lists_from_all_gains_or_screened_agree(collection, mode, monkeypatch):
    """Few distinct relevance vectors take every gain at once; many are screened: the same nDCG, bit for bit."""
    artists = collection["artists"] if mode[0] else None
    options = {"artists": artists, "exclude_same_artist": mode[1]}
    for k in (1, 10, 80):
        direct = ndcg_at_k(collection["emb"], collection["rel"], k=k, **options)
        monkeypatch.setattr(retrieval, "_FEW_DISTINCT", 0)
        monkeypatch.setattr(retrieval, "BLOCK", 7)
        screened = ndcg_at_k(collection["emb"], collection["rel"], k=k, **options)
        monkeypatch.undo()
        np.testing.assert_array_equal(direct.per_query, screened.per_query)
