"""Triplet mining with ``exclude_same_artist``: exact whatever the number of same-artist candidates."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from musicrep.targets import triplets
from musicrep.targets.space import Space
from musicrep.targets.triplets import MiningConfig, mine_triplets


def make_space(tmp_path, ids: list[str], vectors: np.ndarray) -> Space:
    """A loaded-space stand-in: the fields :func:`mine_triplets` reads."""
    vectors = np.asarray(vectors, dtype=np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return Space(path=tmp_path, name="test", space_id="test", model=None, vectors=vectors, ids=pd.Series(ids),
                 missing=pd.DataFrame(columns=["track_id", "reason"]), params={})


def at_cosines(cosines) -> np.ndarray:
    """Unit vectors in the plane whose cosine with (1, 0) is each of ``cosines``."""
    angles = np.arccos(np.asarray(cosines, dtype=np.float64))
    return np.stack([np.cos(angles), np.sin(angles)], axis=1)


def crowded_space(tmp_path):
    """Anchor ``a000`` of artist A, 60 other tracks of A closer to it than any other artist's track.

    30 same-artist tracks rank above every other-artist positive, 30 rank
    above every other-artist negative; ``d0`` shares its vector with one of A's
    tracks; ``b0`` is the only other positive, ``c0`` the only negative.
    """
    cosines = {"a000": 1.0}
    cosines |= {f"a{i:03d}": c for i, c in enumerate(np.linspace(0.999, 0.95, 30), start=1)}  # positives of A
    cosines |= {f"a{i:03d}": c for i, c in enumerate(np.linspace(0.49, 0.40, 30), start=31)}  # negatives of A
    cosines |= {"a_shared": 0.99, "d0": 0.99, "b0": 0.91, "c0": 0.10}
    ids = list(cosines)
    artists = pd.Series({t: {"a": "A", "b": "B", "c": "C", "d": "D"}[t[0]] for t in ids})
    return make_space(tmp_path, ids, at_cosines(list(cosines.values()))), ids, artists


def test_many_same_artist_candidates_do_not_hide_the_others(tmp_path):
    space, ids, artists = crowded_space(tmp_path)
    config = MiningConfig(pos=0.9, neg=0.5, max_pos=3, exclude_same_artist=True, seed=0)
    report = mine_triplets(space, ids, tmp_path / "t.parquet", config, artists=artists)
    table = pd.read_parquet(tmp_path / "t.parquet")
    anchor = table[table.anchor == "a000"]
    # the nearest other-artist tracks, most related first: d0 (its vector shared with an A track), then b0
    assert list(anchor.positive) == ["d0", "b0"]
    assert anchor.cos_pos.tolist() == pytest.approx([0.99, 0.91], abs=1e-5)
    assert set(anchor.negative) == {"c0"} and anchor.cos_neg.iloc[0] == pytest.approx(0.10, abs=1e-5)
    assert "a000" not in set(report.unmatched.track_id)
    # d0 finds A's tracks (the shared vector holds an A track) and never itself
    d0 = table[table.anchor == "d0"]
    assert len(d0) == 3 and (d0.positive.map(artists) != "D").all() and "a_shared" in set(d0.positive)
    assert_never_own_artist(table, artists)


def test_crowded_space_matches_brute_force(tmp_path):
    space, ids, artists = crowded_space(tmp_path)
    config = MiningConfig(pos=0.9, neg=0.5, max_pos=3, exclude_same_artist=True, seed=0)
    report = mine_triplets(space, ids, tmp_path / "t.parquet", config, artists=artists)
    assert_exact(space, ids, artists, config, pd.read_parquet(tmp_path / "t.parquet"), report)


def test_random_space_with_shared_vectors_is_exact_in_small_chunks(tmp_path, monkeypatch):
    rng = np.random.default_rng(0)
    n = 400
    # coarse vectors: many tracks share one, often across artists
    vectors = rng.integers(0, 6, size=(n, 3)).astype(np.float32) + np.array([4.0, 0.0, 0.0], dtype=np.float32)
    ids = [f"t{i:04d}" for i in range(n)]
    # mostly one artist per region of the space, so that an anchor's nearest tracks are mostly its own artist's
    region = [f"artist {int(v[1]) // 2}" if rng.random() < 0.9 else f"artist {rng.integers(0, 3)}" for v in vectors]
    artists = pd.Series({t: r if rng.random() < 0.95 else "" for t, r in zip(ids, region, strict=True)})
    space = make_space(tmp_path, ids, vectors)
    n_unique = len(np.unique(space.vectors, axis=0))
    monkeypatch.setattr(triplets, "_CHUNK_BYTES", 4 * n_unique * 5)  # five rows per chunk
    pos, neg = between_cosines(space.vectors, 0.98), between_cosines(space.vectors, 0.93)
    for exclude in (True, False):
        config = MiningConfig(pos=pos, neg=neg, max_pos=4, exclude_same_artist=exclude, seed=2)
        train = ids[:350]
        report = mine_triplets(space, train, tmp_path / "t.parquet", config, artists=artists)
        table = pd.read_parquet(tmp_path / "t.parquet")
        assert report.n_triplets > 0
        assert_exact(space, train, artists if exclude else None, config, table, report)
        if exclude:
            assert_never_own_artist(table, artists)


def between_cosines(vectors: np.ndarray, near: float) -> float:
    """A threshold halfway between two cosines that occur, close to ``near`` (so rounding decides nothing)."""
    values = np.unique(np.round(np.asarray(vectors, dtype=np.float64) @ np.asarray(vectors, dtype=np.float64).T, 6))
    middles = ((values[1:] + values[:-1]) / 2)[np.diff(values) > 1e-4]
    return float(middles[np.argmin(np.abs(middles - near))])


def assert_never_own_artist(table: pd.DataFrame, artists: pd.Series) -> None:
    own = artists.where(artists != "", other=pd.Series(artists.index, index=artists.index))  # blank: its own artist
    assert len(table) > 0
    assert not (table.anchor.map(own) == table.positive.map(own)).any()
    assert not (table.anchor.map(own) == table.negative.map(own)).any()
    assert not (table.anchor == table.positive).any() and not (table.anchor == table.negative).any()


def assert_exact(space, train, artists, config, table, report) -> None:
    """Each anchor against every candidate: positives are the most related valid ones, the negative the hardest."""
    row_of = space.row_of()
    vectors = np.asarray(space.vectors)[[row_of[t] for t in train]]
    sims = vectors.astype(np.float64) @ vectors.T.astype(np.float64)
    for threshold in (config.pos, config.neg):  # no cosine so close to a threshold that rounding decides
        assert not (np.abs(sims - threshold) < 1e-5).any()
    own = None
    if artists is not None:
        own = artists.where(artists != "", other=pd.Series(artists.index, index=artists.index))
        own = own.loc[train].to_numpy()
    unmatched = dict(zip(report.unmatched.track_id, report.unmatched.reason, strict=True))
    by_anchor = {a: rows for a, rows in table.groupby("anchor")}
    position = {t: i for i, t in enumerate(train)}
    for i, anchor in enumerate(train):
        valid = np.arange(len(train)) != i
        if own is not None:
            valid &= own != own[i]
        positives = np.flatnonzero(valid & (sims[i] >= config.pos))
        negatives = np.flatnonzero(valid & (sims[i] < config.neg))
        if len(positives) == 0:
            assert unmatched.get(anchor, "").startswith("no positive"), anchor
            continue
        if len(negatives) == 0:
            assert unmatched.get(anchor, "").startswith("no negative"), anchor
            continue
        assert anchor not in unmatched, (anchor, unmatched.get(anchor))
        rows = by_anchor[anchor]
        chosen = np.array([position[p] for p in rows.positive])
        assert len(chosen) == min(config.max_pos, len(positives)) == len(set(chosen))
        assert set(chosen) <= set(positives)
        left = np.setdiff1d(positives, chosen)
        if len(left):  # the most related first: nothing left out is more related than a chosen one
            assert sims[i, left].max() <= sims[i, chosen].min() + 1e-6
        assert rows.negative.nunique() == 1 and position[rows.negative.iloc[0]] in set(negatives)
        assert rows.cos_neg.iloc[0] == pytest.approx(sims[i, negatives].max(), abs=1e-5)


def test_spellings_of_one_artist_are_one_artist(tmp_path):
    import unicodedata

    spellings = ["Björk", "björk", "BJÖRK", unicodedata.normalize("NFD", "Björk"), " Björk  "]
    ids = [f"b{i}" for i in range(len(spellings))] + ["o0", "n0"]
    artists = pd.Series(dict(zip(ids, [*spellings, "Other", "Far"], strict=True)))
    space = make_space(tmp_path, ids, at_cosines([1.0, 0.995, 0.99, 0.985, 0.98, 0.95, 0.1]))
    config = MiningConfig(pos=0.9, neg=0.5, max_pos=5, exclude_same_artist=True)
    mine_triplets(space, ids, tmp_path / "t.parquet", config, artists=artists)
    table = pd.read_parquet(tmp_path / "t.parquet")
    björk = table[table.anchor.str.startswith("b")]
    # every spelling is the same artist (as partitions group them): only the other artist's track is a positive
    assert set(björk.anchor) == set(ids[:5])
    assert set(björk.positive) == {"o0"} and set(björk.negative) == {"n0"}
