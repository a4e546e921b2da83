from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from musicrep.errors import UsageError
from musicrep.manifest import Manifest, Track, tracks_to_frame, write_manifest
from musicrep.partition import PartitionConfig, adopt_partitions, partition, summarize, write_partitions


def synthetic_manifest(tmp_path, *, n_artists=300, seed=0, tagsets=("genres", "moods")) -> Manifest:
    """Artists with 1-12 tracks, Zipf-like genres, reviews on some artists, no audio needed."""
    rng = np.random.default_rng(seed)
    genres = [f"g{i}" for i in range(12)]
    weights = 1.0 / np.arange(1, 13)
    tracks = []
    for a in range(n_artists):
        genre = genres[rng.choice(12, p=weights / weights.sum())]
        reviewed = rng.random() < 0.5
        for t in range(int(rng.integers(1, 13))):
            tags = {"genres": [genre] + (["g11"] if rng.random() < 0.05 else []), "moods": [f"m{t % 3}"]}
            tags = {k: v for k, v in tags.items() if k in tagsets}
            tracks.append(Track(f"a{a:04d}t{t:02d}", f"a{a}/t{t}.mp3", artist=f"Artist {a}",
                                album=f"Al {a % 7}", text="review" if reviewed else "", tags=tags))
    frame = tracks_to_frame(tracks, list(tagsets))
    manifest = Manifest(frame=frame, tagsets=list(tagsets), audio_root=tmp_path)
    write_manifest(manifest, tmp_path / "manifest.parquet")
    return manifest


def test_no_artist_in_two_splits_and_fractions_hold(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    parts = partition(manifest, PartitionConfig(seed=1))
    split = manifest.frame.track_id.map(parts.split)
    assert split.notna().all()
    assert (manifest.frame.groupby("artist").apply(lambda g: split[g.index].nunique()) == 1).all()
    shares = split.value_counts(normalize=True)
    assert shares["train"] == pytest.approx(0.8, abs=0.02)
    assert shares["val"] == pytest.approx(0.1, abs=0.02) and shares["test"] == pytest.approx(0.1, abs=0.02)


def test_stratification_balances_labels_better_than_random(tmp_path):
    manifest = synthetic_manifest(tmp_path, n_artists=400)
    genres = manifest.frame.tags_genres.map(lambda t: t[0])

    def worst_deviation(split):
        table = pd.crosstab(genres, split, normalize="index")
        return float((table["train"] - 0.8).abs().max())

    stratified = manifest.frame.track_id.map(partition(manifest, PartitionConfig()).split)
    unstratified = manifest.frame.track_id.map(partition(manifest, PartitionConfig(stratify=None)).split)
    assert worst_deviation(stratified) < 0.08
    assert worst_deviation(stratified) < worst_deviation(unstratified)


def test_album_and_none_grouping(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    frame = manifest.frame
    album_split = frame.track_id.map(partition(manifest, PartitionConfig(group="album")).split)
    assert (frame.groupby(["artist", "album"]).apply(lambda g: album_split[g.index].nunique()) == 1).all()
    none_split = frame.track_id.map(partition(manifest, PartitionConfig(group="none")).split)
    assert (frame.groupby("artist").apply(lambda g: none_split[g.index].nunique()) > 1).any()


def test_train_with_text_is_the_original_rule(tmp_path):
    manifest = synthetic_manifest(tmp_path, n_artists=600)
    parts = partition(manifest, PartitionConfig(train_with_text=True, val_fraction=0.05))
    split = manifest.frame.track_id.map(parts.split)
    reviewed = manifest.frame.text != ""
    assert set(split[reviewed]) == {"train", "val"} and set(split[~reviewed]) == {"test"}
    assert (split[reviewed] == "val").mean() == pytest.approx(0.05, abs=0.03)


def test_text_only_collection(tmp_path):
    manifest = synthetic_manifest(tmp_path, tagsets=())
    parts = partition(manifest, PartitionConfig())
    assert parts.stratify is None and parts.split.notna().all()


def test_outputs_use_the_original_format(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "parts",
                     "--fractions", "0.7,0.15,0.15", "--seed", "3")
    assert result.exit_code == 0, result.stderr
    assert "artists in several splits" in result.stdout
    total = 0
    for name in ("train", "val", "test"):
        table = pd.read_csv(tmp_path / "parts" / f"{name}.csv", dtype=str)
        assert list(table.columns) == ["track_id", "filename"]
        assert list(table.track_id) == sorted(table.track_id)
        total += len(table)
    assert total == len(manifest)
    summary = pd.read_csv(tmp_path / "parts" / "summary.csv", keep_default_na=False)
    leak = summary[(summary.tagset == "*") & (summary.label == "artists in several splits")]
    assert int(leak.total.iloc[0]) == 0
    assert set(summary.tagset) == {"*", "genres", "moods"}


def test_adopt_existing_splits(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    ids = list(manifest.frame.track_id)
    pd.DataFrame({"track_id": ids[:50], "filename": "x"}).to_csv(tmp_path / "train_tids.csv", index=False)
    (tmp_path / "autotagging-validation.tsv").write_text(
        "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"
        + "".join(f"{t}\ta\tb\tp.mp3\t1.0\tgenre---x\tgenre---y\n" for t in ids[50:60]) + "unknown_id\ta\tb\tp\t1\n")
    pd.DataFrame({"track_id": ids[60:]}).to_csv(tmp_path / "test.csv", index=False)
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "p",
                     "--from", tmp_path / "train_tids.csv", "--from", tmp_path / "autotagging-validation.tsv",
                     "--from", tmp_path / "test.csv")
    assert result.exit_code == 1  # one unknown id, listed
    assert "unknown_id" in result.stderr
    assert len(pd.read_csv(tmp_path / "p" / "val.csv")) == 10
    assert len(pd.read_csv(tmp_path / "p" / "train.csv")) == 50
    parts = adopt_partitions(manifest, [tmp_path / "train_tids.csv"])
    assert sum("left out" in p.reason for p in parts.problems) == len(ids) - 50


def test_bad_settings_are_usage_errors(tmp_path):
    manifest = synthetic_manifest(tmp_path)
    with pytest.raises(UsageError, match="must sum to 1"):
        partition(manifest, PartitionConfig(fractions=(0.5, 0.2, 0.2)))
    with pytest.raises(UsageError, match="no tagset 'styles'"):
        partition(manifest, PartitionConfig(stratify="styles"))
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "p",
                     "--group", "label")
    assert result.exit_code == 2 and "--group must be one of" in result.stderr
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "p",
                     "--fractions", "0.8,x")
    assert result.exit_code == 2 and "--fractions must be 3 numbers like 0.8,0.1,0.1" in result.stderr
    bad = tmp_path / "holdout.csv"
    bad.write_text("track_id\nx\n")
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "p", "--from", bad)
    assert result.exit_code == 2 and "holdout.csv: cannot tell the split" in result.stderr
    noheader = tmp_path / "train2.csv"
    noheader.write_text("a0000t00,a0/t0.mp3\n")
    result = run_cli("partition", "--manifest", tmp_path / "manifest.parquet", "--out", tmp_path / "p",
                     "--from", noheader)
    assert result.exit_code == 2 and "train2.csv: no track_id column" in result.stderr


def test_demo_partitions_summary(demo, tmp_path):
    parts = partition(demo.manifest, PartitionConfig())
    summary = write_partitions(demo.manifest, parts, tmp_path)
    assert summarize(demo.manifest, parts).equals(summary)
    genres = summary[summary.tagset == "genres"]
    assert len(genres) == 6 and (genres.train > 0).all()
