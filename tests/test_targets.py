from __future__ import annotations

import itertools
import json
import shutil

import numpy as np
import pandas as pd
import pytest

from conftest import demo_metadata, run_cli
from musicrep.data.manifest import Manifest, Track, tracks_to_frame, write_manifest
from musicrep.data.partition import PartitionConfig, partition, write_partitions
from musicrep.errors import InputError, UsageError
from musicrep.targets.analyzers import TextAnalyzer, TextDocument, fold
from musicrep.targets.space import load_space
from musicrep.targets.tags import embed_tags
from musicrep.targets.text import embed_text
from musicrep.targets.triplets import MiningConfig, mine_triplets, unique_rows

TAGSETS = ["genres", "styles", "moods", "themes"]


@pytest.fixture(scope="module")
def spaces(demo, tmp_path_factory):
    out = tmp_path_factory.mktemp("targets")
    parts = partition(demo.manifest, PartitionConfig())
    write_partitions(demo.manifest, parts, out / "partitions")
    train = sorted(parts.split[parts.split == "train"].index)
    progress = []
    embed_tags(demo.manifest, train, out, on_progress=lambda done, total: progress.append((done, total)))
    assert progress == [(i, 5) for i in range(1, 6)]  # joint + one space per tagset
    embed_text(demo.manifest, train, out)
    return out, train


def _gap(space, frame, related, unrelated):
    ids = list(space.ids)
    sims = np.asarray(space.vectors) @ np.asarray(space.vectors).T
    rows = frame.set_index("track_id").loc[ids]
    close, far = [], []
    for i, j in itertools.combinations(range(len(ids)), 2):
        a, b = rows.iloc[i], rows.iloc[j]
        if related(a, b):
            close.append(sims[i, j])
        elif unrelated(a, b):
            far.append(sims[i, j])
    assert len(close) >= 10 and len(far) >= 10
    return float(np.mean(close) - np.mean(far))


def _share(x, y):
    return bool(set(x) & set(y))


def test_tag_space_tracks_sharing_a_style_are_closer(spaces, demo):
    out, _ = spaces
    joint = load_space(out / "joint")

    def all_tags(row):
        return {(t, v) for t in TAGSETS for v in row[f"tags_{t}"]}

    gap = _gap(joint, demo.manifest.frame, lambda a, b: _share(a.tags_styles, b.tags_styles),
               lambda a, b: not all_tags(a) & all_tags(b))
    assert gap >= 0.15


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_text_space_links_languages(tmp_path, seed):
    # 600 tracks of metadata (~100 training reviews): the 120-track fixture has ~20, too few for a stable gap
    manifest = demo_metadata(tmp_path, 600, seed)
    parts = partition(manifest, PartitionConfig(seed=seed))
    embed_text(manifest, sorted(parts.split[parts.split == "train"].index), tmp_path)
    text = load_space(tmp_path / "text")

    def related(a, b):  # other album, other language, same styles and moods described
        return (a.album != b.album and a.language != b.language and _share(a.tags_styles, b.tags_styles)
                and _share(a.tags_moods, b.tags_moods))

    def unrelated(a, b):
        return a.album != b.album and not any(_share(a[f"tags_{t}"], b[f"tags_{t}"]) for t in ("genres", "styles",
                                                                                               "moods"))

    assert _gap(text, manifest.frame, related, unrelated) >= 0.15


def test_space_layout_and_reprojection(spaces, demo):
    out, train = spaces
    for name in ["joint", *TAGSETS, "text"]:
        space = load_space(out / name)
        assert space.vectors.dtype == np.float32
        assert np.allclose(np.linalg.norm(space.vectors, axis=1), 1.0, atol=1e-5)
        # every manifest track has a vector or a reason, never both
        assert set(space.ids).isdisjoint(space.missing.track_id)
        assert set(space.ids) | set(space.missing.track_id) == set(demo.manifest.frame.track_id)
        # projecting the stored tracks again reproduces the stored vectors (the original projected raw counts)
        rows = demo.manifest.frame.set_index("track_id").loc[list(space.ids)].reset_index()
        documents, missing = space.model.analyzer.documents(rows)
        vectors, has_terms = space.model.project(documents)
        assert not missing and has_terms.all()
        np.testing.assert_allclose(vectors, space.vectors, atol=1e-6)
        assert json.loads((out / name / "model.json").read_text())["space_id"] == space.space_id
    assert (load_space(out / "themes").missing.reason == "no tags in themes").all()
    text_missing = load_space(out / "text").missing
    assert (text_missing.reason == "no text").all() and len(text_missing) > 0


def test_miner_obeys_thresholds_and_exclusions(spaces, demo, tmp_path):
    out, train = spaces
    space = load_space(out / "styles")
    artists = demo.manifest.frame.set_index("track_id")["artist"]
    config = MiningConfig(pos=0.9, neg=0.5, max_pos=3, exclude_same_artist=True, seed=1)
    report = mine_triplets(space, train, tmp_path / "t.parquet", config, artists=artists)
    table = pd.read_parquet(tmp_path / "t.parquet")
    assert len(table) == report.n_triplets > 0
    assert (table.cos_pos >= 0.9 - 1e-6).all() and (table.cos_neg < 0.5).all()
    assert (table.groupby("anchor").size() <= 3).all()
    assert not (table.anchor.map(artists) == table.positive.map(artists)).any()
    assert not (table.anchor.map(artists) == table.negative.map(artists)).any()
    assert set(table.anchor) | set(table.positive) | set(table.negative) <= set(train)
    vectors = {t: np.asarray(space.vectors[i]) for i, t in enumerate(space.ids)}
    for row in table.head(20).itertuples():
        assert float(vectors[row.anchor] @ vectors[row.positive]) == pytest.approx(row.cos_pos, abs=1e-5)
    # the hardest negative: no candidate below the threshold is more similar (without artist exclusion)
    plain = mine_triplets(space, train, tmp_path / "p.parquet", MiningConfig(pos=0.9, neg=0.5, seed=1))
    plain_table = pd.read_parquet(tmp_path / "p.parquet")
    candidates = [t for t in train if t in vectors]
    for row in plain_table.drop_duplicates("anchor").head(10).itertuples():
        best = max(float(vectors[row.anchor] @ vectors[c]) for c in candidates
                   if float(vectors[row.anchor] @ vectors[c]) < 0.5)
        assert row.cos_neg == pytest.approx(best, abs=1e-5)
    unmatched = pd.read_csv(tmp_path / "p_unmatched.csv")
    assert plain.n_anchors == plain_table.anchor.nunique() + len(unmatched)
    # deterministic for a seed
    again = mine_triplets(space, train, tmp_path / "again.parquet", MiningConfig(pos=0.9, neg=0.5, seed=1))
    assert pd.read_parquet(tmp_path / "again.parquet").equals(plain_table) and again.n_triplets == plain.n_triplets


def test_unique_rows():
    vectors = np.array([[1, 0], [0, 1], [1, 0], [0, 1], [0.6, 0.8]], dtype=np.float32)
    unique, inverse = unique_rows(vectors)
    assert len(unique) == 3
    np.testing.assert_array_equal(unique[inverse], vectors)


def test_text_analyzer_folds_and_drops_stop_words():
    analyzer = TextAnalyzer(stop_words={"de": ["der", "et"]})
    document = TextDocument("Der fröhliche Sänger et l'album: 1999!", "de")
    assert analyzer(document) == ["frohliche", "sanger", "album", "1999"]
    assert fold("ÉTÉ") == "ete"
    grams = TextAnalyzer(char_ngrams=(3, 3))("jazz")
    assert grams == [" ja", "jaz", "azz", "zz "]


def _small_manifest(tmp_path, tracks, tagsets=("genres",)):
    manifest = Manifest(tracks_to_frame(tracks, list(tagsets)), list(tagsets), tmp_path)
    write_manifest(manifest, tmp_path / "manifest.parquet")
    return manifest


def test_bad_inputs(tmp_path, spaces):
    tracks = [Track(f"t{i}", f"{i}.wav", tags={"genres": ["rock"] if i % 2 else ["pop"]}) for i in range(6)]
    manifest = _small_manifest(tmp_path, tracks)
    ids = [t.track_id for t in tracks]
    with pytest.raises(UsageError, match="no tagset 'moods'"):
        embed_tags(manifest, ids, tmp_path / "o", tagsets=["moods"])
    with pytest.raises(UsageError, match="no track has text"):
        embed_text(manifest, ids, tmp_path / "o")
    empty = _small_manifest(tmp_path, [Track(f"e{i}", "x.wav", text="hello world", tags={"genres": []})
                                       for i in range(4)])
    with pytest.raises(UsageError, match="tagset 'genres' has no tags in the training partition"):
        embed_tags(empty, [f"e{i}" for i in range(4)], tmp_path / "o")
    with pytest.raises(UsageError, match="none of the training track ids"):
        embed_tags(manifest, ["nope"], tmp_path / "o")
    report = embed_tags(manifest, ids, tmp_path / "small", dims=340)  # vocabulary of 2: capped, not an error
    assert load_space(report.spaces[0]).model.dims == 2

    out, _ = spaces
    broken = tmp_path / "broken"
    shutil.copytree(out / "styles", broken)
    (broken / "ids.csv").unlink()
    with pytest.raises(InputError, match="missing ids.csv"):
        load_space(broken)
    shutil.copy(out / "moods" / "svd.npz", broken / "svd.npz")
    shutil.copy(out / "styles" / "ids.csv", broken / "ids.csv")
    with pytest.raises(InputError, match="do not match"):
        load_space(broken)
    shutil.copy(out / "styles" / "svd.npz", broken / "svd.npz")
    shutil.copy(out / "moods" / "ids.csv", broken / "ids.csv")
    with pytest.raises(InputError, match="vectors.npy shape"):
        load_space(broken)


def test_min_tag_count_drops_and_lists(tmp_path):
    tracks = [Track(f"t{i}", f"{i}.wav", tags={"genres": ["rock", "pop"] if i < 5 else ["rare"]}) for i in range(6)]
    manifest = _small_manifest(tmp_path, tracks)
    report = embed_tags(manifest, [t.track_id for t in tracks], tmp_path / "o", min_tag_count=2)
    assert report.dropped_tags["genres"] == ["genres:rare"]
    space = load_space(tmp_path / "o" / "genres")
    assert "genres:rare" not in space.model.vocabulary
    assert space.missing.set_index("track_id").loc["t5", "reason"] == "no term of the fitted vocabulary"
    assert pd.read_csv(tmp_path / "o" / "genres" / "dropped_tags.csv").term.tolist() == ["genres:rare"]


def test_cli_targets(spaces, demo, tmp_path):
    out, _ = spaces
    train = out / "partitions" / "train.csv"
    result = run_cli("embed-tags", "--manifest", demo.report.manifest_path, "--partition", train,
                     "--out", tmp_path / "t", "--tagsets", "genres,moods", "--dims", "4")
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "t").iterdir()) == ["genres", "joint", "moods"]
    result = run_cli("embed-text", "--manifest", demo.report.manifest_path, "--tidfile", train,
                     "--out", tmp_path / "t", "--char-ngrams", "3,4", "--min-df", "1")
    assert result.exit_code == 0, result.stderr
    result = run_cli("mine-triplets", "--space", tmp_path / "t" / "genres", "--tidfile", train,
                     "--out", tmp_path / "trip.parquet", "--exclude-same-artist")
    assert result.exit_code == 0, result.stderr
    assert "anchors have a positive" in result.stdout and (tmp_path / "trip.parquet").is_file()
    result = run_cli("mine-triplets", "--space", tmp_path / "nowhere", "--tidfile", train, "--out", tmp_path / "x")
    assert result.exit_code == 2 and "space folder not found" in result.stderr


def test_spaces_on_an_msd_amg_manifest(tmp_path):
    from musicrep.data.align import align
    from musicrep.data.manifest import read_manifest
    from musicrep.data.sources import make_source
    from test_sources_msd_amg import IDS, write_labels

    labels = write_labels(tmp_path / "msd_amglabels_all.h5")
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"artist": ["Casual", "Kim Band"], "release": ["Fear Itself", "Blue"],
                  "text": ["A brooding, gloomy record.", "Playful jazz, brooding too."]}).to_csv(reviews, index=False)
    report = align(make_source("msd-amg", labels=labels, audio_root=tmp_path, reviews=reviews), tmp_path / "run",
                   check_audio=False)
    manifest = read_manifest(report.manifest_path)
    train = list(manifest.frame.track_id)
    tags = embed_tags(manifest, train, tmp_path / "targets")
    assert [p.name for p in tags.spaces] == ["joint", "genres", "styles", "moods", "themes"]
    joint = load_space(tmp_path / "targets" / "joint")
    assert set(joint.ids) == {IDS[0], IDS[1], IDS[3]}
    embed_text(manifest, train, tmp_path / "targets", min_df=1, max_df=1.0)
    text = load_space(tmp_path / "targets" / "text")
    assert set(text.ids) == {IDS[0], IDS[1], IDS[3]}  # IDS[3] shares the album review of IDS[0]
    assert np.allclose(text.vectors[list(text.ids).index(IDS[0])], text.vectors[list(text.ids).index(IDS[3])])


def test_impossible_space_options_are_one_line_errors_naming_the_flag(tmp_path):
    import warnings

    tracks = [Track(f"t{i}", f"{i}.wav", text=f"review number {i} of a record", language="en",
                    tags={"genres": ["rock"] if i % 2 else ["pop"]}) for i in range(6)]
    _small_manifest(tmp_path, tracks)
    train = tmp_path / "train.csv"
    pd.DataFrame({"track_id": [t.track_id for t in tracks]}).to_csv(train, index=False)
    common = ["--manifest", tmp_path / "manifest.parquet", "--tidfile", train, "--out", tmp_path / "o"]
    cases = [
        (["embed-tags", "--dims", "0"], "error: --dims must be at least 1 (got 0)"),
        (["embed-tags", "--dims", "-3"], "error: --dims must be at least 1 (got -3)"),
        (["embed-tags", "--min-tag-count", "50"],
         "error: joint: --min-tag-count 50 drops every tag (the most used one is on 3 of the 6 training tracks)"),
        (["embed-text", "--dims", "0"], "error: --dims must be at least 1 (got 0)"),
        *[(["embed-text", "--char-ngrams", bad], f"error: --char-ngrams must be LOW,HIGH with 1 <= LOW <= HIGH "
                                                  f"(got {bad})") for bad in ("0,2", "5,3")],
        (["embed-text", "--min-df", "0"], "error: --min-df must be at least 1 (got 0)"),
        (["embed-text", "--max-features", "0"], "error: --max-features must be at least 1 (got 0)"),
        (["embed-text", "--min-df", "7", "--max-df", "1"],
         "error: text: 6 distinct training texts; --min-df 7 / --max-df 1.0 leave no term "
         "(lower --min-df or raise --max-df)"),
    ]
    for args, message in cases:
        result = run_cli(*args, *common)
        assert result.exit_code == 2 and result.stderr.strip() == message, (args, result.stderr)
    # what is left of each text ("review", "number", "record"; one-digit numbers are too short) is in every text
    result = run_cli("embed-text", *common)
    assert result.exit_code == 2 and result.stderr.strip() == (
        "error: text: 6 distinct training texts; --min-df 2 / --max-df 0.5 leave no term "
        "(lower --min-df or raise --max-df)")
    stop_words_only = _small_manifest(tmp_path / "s", [Track("s0", "0.wav", text="the of and", language="en")])
    with pytest.raises(UsageError, match=r"text: the 1 distinct training texts have no term \(only stop words"):
        embed_text(stop_words_only, ["s0"], tmp_path / "s" / "o", min_df=1, max_df=1.0)
    # a one-text space: no "divide by zero" from the SVD's (unused) explained variance
    one = _small_manifest(tmp_path / "one", [Track("u0", "0.wav", text="alpha beta gamma", language="en")])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        embed_text(one, ["u0"], tmp_path / "one" / "o", dims=1, min_df=1, max_df=1.0)


def test_mine_triplets_out_is_a_directory(spaces, tmp_path):
    out, train = spaces
    (tmp_path / "dir").mkdir()
    result = run_cli("mine-triplets", "--space", out / "genres", "--tidfile", out / "partitions" / "train.csv",
                     "--out", tmp_path / "dir")
    assert result.exit_code == 2
    assert result.stderr.strip() == (f"error: {tmp_path / 'dir'}: is a directory (--out names the triplets file, "
                                     f"e.g. {tmp_path / 'dir' / 'triplets.parquet'})")
    assert list((tmp_path / "dir").iterdir()) == []
