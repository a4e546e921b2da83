from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from conftest import run_cli, write_tone
from musicrep.data.align import align
from musicrep.data.manifest import read_manifest
from musicrep.data.sources import make_source
from musicrep.data.sources.msd_amg import msd_audio_path
from musicrep.errors import InputError

IDS = ["TRAAAAK128F9318786", "TRAAAAV128F421A322", "TRAAABD128F429CF47", "TRBBBBB128F0000000"]


def write_labels(path, *, key="data", columns=("genres", "styles", "moods", "themes")):
    """A labels file exactly as the original: DataFrame.to_hdf(path, key='data') with list columns."""
    data = {
        "genres": [["Pop/Rock"], ["Jazz", "Blues"], np.nan, ["Pop/Rock"]],
        "styles": [["Alternative/Indie Rock"], np.nan, np.nan, ["Punk  Revival"]],
        "moods": [["Brooding", "Gloomy"], ["Playful"], np.nan, np.nan],
        "themes": [np.nan, np.nan, np.nan, ["Rainy Day"]],
    }
    frame = pd.DataFrame({c: data[c] for c in columns}, index=pd.Index(IDS, name="track_id"))
    frame["artist_name"] = ["Casual", "Kim Band", "Nobody", "Casual"]
    frame["title"] = ["I Didn't Mean To", "Song", "Silence", "Other"]
    frame["release"] = ["Fear Itself", "Blue", "Nothing", "Fear Itself"]
    frame.to_hdf(path, key=key, format="fixed")
    return path


@pytest.fixture()
def msd(tmp_path):
    root = tmp_path / "msd"
    for tid in IDS[:3]:
        write_tone(root / msd_audio_path(tid), seconds=0.5, sr=22050)
    labels = write_labels(tmp_path / "msd_amglabels_all.h5")
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"artist": ["CASUAL ", "kim band"], "release": ["fear itself", "Blue"],
                  "text": ["A brooding record.", "Playful jazz."], "language": ["en", "EN"]}
                 ).to_csv(reviews, index=False)
    return root, labels, reviews


def test_msd_amg_aligns_tags_reviews_and_audio(tmp_path, msd):
    root, labels, reviews = msd
    report = align(make_source("msd-amg", labels=labels, audio_root=root, reviews=reviews), tmp_path / "out")
    manifest = read_manifest(report.manifest_path)
    frame = manifest.frame.set_index("track_id")
    # a track with neither tag nor text is dropped; a track with missing audio is dropped
    assert list(frame.index) == IDS[:2]
    reasons = {p.track_id: p.reason for p in report.problems}
    assert reasons == {IDS[2]: "no tags and no text", IDS[3]: "audio file missing"}
    first = frame.loc[IDS[0]]
    assert first.audio_path == "A/A/A/TRAAAAK128F9318786.mp3"
    assert list(first.tags_styles) == ["alternative/indie rock"]
    assert list(first.tags_moods) == ["brooding", "gloomy"]
    assert first.text == "A brooding record." and first.language == "en"
    assert first.format == "mp3" and first.sample_rate == 22050 and first.duration > 0.4  # from the header
    assert manifest.tagsets == ["genres", "styles", "moods", "themes"]


def test_no_audio_check_keeps_tracks_without_opening_files(tmp_path, msd):
    root, labels, _ = msd
    report = align(make_source("msd-amg", labels=labels, audio_root=root), tmp_path / "out", check_audio=False)
    frame = read_manifest(report.manifest_path).frame
    assert set(frame.track_id) == {IDS[0], IDS[1], IDS[3]}
    assert frame.duration.isna().all() and (frame.format == "mp3").all()
    assert list(frame.set_index("track_id").loc[IDS[3], "tags_styles"]) == ["punk revival"]


def test_cli_align_msd_amg_exit_codes(tmp_path, msd):
    root, labels, reviews = msd
    result = run_cli("align", "--source", "msd-amg", "--labels", labels, "--audio-root", root,
                     "--reviews", reviews, "--out", tmp_path / "out")
    assert result.exit_code == 1  # finished, with item problems listed
    assert "audio file missing" in result.stderr
    problems = pd.read_csv(tmp_path / "out" / "manifest_problems.csv")
    assert list(problems.columns) == ["track_id", "file", "reason", "action"]
    assert len(problems) == 2


def test_bad_labels_files(tmp_path, msd):
    root, _, _ = msd
    wrong_key = write_labels(tmp_path / "wrong.h5", key="labels")
    with pytest.raises(InputError, match="wrong.h5: no key 'data'.*labels"):
        align(make_source("msd-amg", labels=wrong_key, audio_root=root), tmp_path / "o1")
    no_tags = tmp_path / "notags.h5"
    pd.DataFrame({"artist_name": ["a"]}, index=["TRX"]).to_hdf(no_tags, key="data")
    with pytest.raises(InputError, match="notags.h5: no tagset column"):
        align(make_source("msd-amg", labels=no_tags, audio_root=root), tmp_path / "o2")
    junk = tmp_path / "junk.h5"
    junk.write_text("not hdf5")
    result = run_cli("align", "--source", "msd-amg", "--labels", junk, "--audio-root", root, "--out", tmp_path / "o3")
    assert result.exit_code == 2 and "junk.h5: not a readable pandas HDF5 file" in result.stderr
    assert not (tmp_path / "o3" / "manifest.parquet").exists()


def test_reviews_json_lines_and_missing_column(tmp_path, msd):
    root, labels, _ = msd
    jsonl = tmp_path / "reviews.jsonl"
    jsonl.write_text(json.dumps({"artist": "Kim Band", "album": "blue", "text": "Verspielt.", "language": "de"}) + "\n")
    report = align(make_source("msd-amg", labels=labels, audio_root=root, reviews=jsonl), tmp_path / "out")
    frame = read_manifest(report.manifest_path).frame.set_index("track_id")
    assert frame.loc[IDS[1], "text"] == "Verspielt." and frame.loc[IDS[1], "language"] == "de"
    bad = tmp_path / "bad.csv"
    pd.DataFrame({"artist": ["a"], "text": ["t"]}).to_csv(bad, index=False)
    with pytest.raises(InputError, match="bad.csv: needs a column named album or release"):
        align(make_source("msd-amg", labels=labels, audio_root=root, reviews=bad), tmp_path / "o2")


def test_an_album_reviewed_in_several_languages_is_labelled_mul(tmp_path, msd):
    root, labels, _ = msd
    reviews = tmp_path / "reviews.csv"
    pd.DataFrame({"artist": ["Casual", "casual", "Kim Band", "Kim Band"],
                  "release": ["Fear Itself", "Fear Itself", "Blue", "Blue"],
                  "text": ["Die Platte war gut.", "The war is over.", "Playful jazz.", "Swinging."],
                  "language": ["de", "en", "en-US", "English"]}).to_csv(reviews, index=False)
    report = align(make_source("msd-amg", labels=labels, audio_root=root, reviews=reviews), tmp_path / "out")
    frame = read_manifest(report.manifest_path).frame.set_index("track_id")
    assert frame.loc[IDS[0], "text"] == "Die Platte war gut.\n\nThe war is over."
    assert frame.loc[IDS[0], "language"] == "mul"  # not "de": the English review must keep its "war"
    assert frame.loc[IDS[1], "language"] == "en"  # one language, however it is spelled


def test_source_options_are_checked():
    from musicrep.errors import UsageError

    with pytest.raises(UsageError, match="needs --labels"):
        make_source("msd-amg", audio_root="x")
    with pytest.raises(UsageError, match="does not take --tracks"):
        make_source("msd-amg", labels="x", audio_root="y", tracks=3)
