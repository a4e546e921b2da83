from __future__ import annotations

import json

import mutagen
import pandas as pd
import pytest

from conftest import run_cli, write_tone
from musicrep.data.align import align
from musicrep.data.manifest import is_safe_track_id, read_manifest
from musicrep.data.sources import make_source
from musicrep.errors import InputError


@pytest.fixture()
def folder(tmp_path):
    root = tmp_path / "music"
    write_tone(root / "Artist One" / "01 Intro.flac", seconds=0.5, sr=44100, channels=2)
    write_tone(root / "Artist One" / "02 Über.wav", seconds=0.7, sr=48000)
    write_tone(root / "b" / "song.ogg", seconds=0.6, sr=22050)
    (root / "notes.txt").write_text("not audio, not listed")
    return root


def test_metadata_csv_by_path_and_track_id(tmp_path, folder):
    meta = tmp_path / "meta.csv"
    pd.DataFrame({
        "path": ["Artist One/01 Intro.flac", "Artist One/02 Über.wav", ""],
        "track_id": ["", "", "song"],
        "artist": ["Artist One", "Artist One", "B"],
        "genre": ["Rock; Indie  Rock", "rock", ""],
        "moods": ["", "Happy", ""],
        "text": ["", "", "Ein fröhliches Lied."],
        "language": ["", "", "DE"],
        "year": ["1999", "2000", "2001"],
    }).to_csv(meta, index=False)
    report = align(make_source("folder", audio_root=folder, metadata=meta), tmp_path / "out")
    manifest = read_manifest(report.manifest_path)
    assert manifest.tagsets == ["genres", "moods"]  # 'genre' -> plural; 'year' is not a tagset
    frame = manifest.frame.set_index("audio_path")
    assert list(frame.loc["Artist One/01 Intro.flac", "tags_genres"]) == ["rock", "indie rock"]
    assert frame.loc["b/song.ogg", "track_id"] == "song"
    assert frame.loc["b/song.ogg", "language"] == "de"
    assert all(is_safe_track_id(t) for t in manifest.frame.track_id)
    assert frame.loc["Artist One/01 Intro.flac", "channels"] == 2
    assert report.problems == []


def test_metadata_json_lines_problems(tmp_path, folder):
    meta = tmp_path / "meta.jsonl"
    rows = [
        {"path": "Artist One/01 Intro.flac", "track_id": "dup", "tags_styles": "a;b"},
        {"path": "Artist One/02 Über.wav", "track_id": "dup", "tags_styles": "c"},
        {"track_id": "ghost", "tags_styles": "x"},
        {"path": "b/missing.wav", "track_id": "gone", "tags_styles": "y"},
        {"path": "b/song.ogg", "track_id": "bad id/../x", "tags_styles": "z"},
    ]
    meta.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    result = run_cli("align", "--source", "folder", "--audio-root", folder, "--metadata", meta,
                     "--out", tmp_path / "out")
    assert result.exit_code == 1
    problems = pd.read_csv(tmp_path / "out" / "manifest_problems.csv").set_index("track_id")
    assert "duplicate track id" in problems.loc["dup", "reason"]
    assert problems.loc["ghost", "reason"] == "no audio file for this track_id"
    assert problems.loc["gone", "reason"] == "audio file missing"
    assert problems.loc["bad id/../x", "reason"] == "unsafe track id (allowed: [A-Za-z0-9._-]{1,128}, not . or ..)"
    frame = read_manifest(tmp_path / "out" / "manifest.parquet").frame
    assert list(frame.track_id) == ["dup"]


def test_embedded_tags_with_mutagen(tmp_path, folder):
    audio = mutagen.File(folder / "Artist One" / "01 Intro.flac", easy=True)
    audio["genre"] = ["Jazz", "Bebop"]
    audio["artist"] = ["Artist One"]
    audio["album"] = ["First"]
    audio["title"] = ["Intro"]
    audio["comment"] = ["Recorded live."]
    audio.save()
    report = align(make_source("folder", audio_root=folder), tmp_path / "out")
    frame = read_manifest(report.manifest_path).frame.set_index("audio_path")
    row = frame.loc["Artist One/01 Intro.flac"]
    assert list(row.tags_genres) == ["jazz", "bebop"]
    assert (row.artist, row.album, row.title, row.text) == ("Artist One", "First", "Intro", "Recorded live.")
    # untagged files have neither tags nor text: listed, not in the manifest
    assert {p.file for p in report.problems} == {"Artist One/02 Über.wav", "b/song.ogg"}


def test_metadata_without_path_or_id_column(tmp_path, folder):
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"artist": ["x"]}).to_csv(meta, index=False)
    with pytest.raises(InputError, match="meta.csv: needs a column named path or track_id"):
        align(make_source("folder", audio_root=folder, metadata=meta), tmp_path / "out")


def test_unwritable_output_fails_before_work(tmp_path, folder):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = run_cli("align", "--source", "folder", "--audio-root", folder, "--out", blocker / "sub")
    assert result.exit_code == 2
    assert "cannot create output directory" in result.stderr


def test_files_without_a_metadata_row_are_listed(tmp_path, folder):
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"path": ["b/song.ogg"], "genres": ["pop"]}).to_csv(meta, index=False)
    report = align(make_source("folder", audio_root=folder, metadata=meta), tmp_path / "out")
    assert {p.file: p.reason for p in report.problems} == {
        "Artist One/01 Intro.flac": "no row in meta.csv", "Artist One/02 Über.wav": "no row in meta.csv"}
    assert report.n_tracks == 1


def test_json_lines_tag_lists_are_lists(tmp_path, folder):
    meta = tmp_path / "meta.jsonl"
    rows = [
        {"path": "Artist One/01 Intro.flac", "genres": ["Jazz", "Blues", ""], "moods": "calm; warm"},
        {"path": "Artist One/02 Über.wav", "genres": "Rock;Pop", "moods": None},
        {"path": "b/song.ogg", "genres": [], "moods": ["Happy"]},
    ]
    meta.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    report = align(make_source("folder", audio_root=folder, metadata=meta), tmp_path / "out")
    frame = read_manifest(report.manifest_path).frame.set_index("audio_path")
    assert list(frame.loc["Artist One/01 Intro.flac", "tags_genres"]) == ["jazz", "blues"]
    assert list(frame.loc["Artist One/01 Intro.flac", "tags_moods"]) == ["calm", "warm"]
    assert list(frame.loc["Artist One/02 Über.wav", "tags_genres"]) == ["rock", "pop"]
    assert list(frame.loc["b/song.ogg", "tags_genres"]) == [] and list(frame.loc["b/song.ogg", "tags_moods"]) == [
        "happy"]


def test_languages_and_artists_are_normalized_for_the_manifest_and_info(tmp_path, folder):
    import unicodedata

    from musicrep.data.info import manifest_info

    meta = tmp_path / "meta.csv"
    pd.DataFrame({
        "path": ["Artist One/01 Intro.flac", "Artist One/02 Über.wav", "b/song.ogg"],
        "artist": ["Björk", "BJÖRK", unicodedata.normalize("NFD", "björk")],
        "album": ["Debut", "debut", "Post"],
        "text": ["One.", "Two.", "Three."],
        "language": ["en-US", "eng", "English (US)"],
    }).to_csv(meta, index=False)
    report = align(make_source("folder", audio_root=folder, metadata=meta), tmp_path / "out")
    manifest = read_manifest(report.manifest_path)
    assert manifest.frame.language.tolist() == ["en", "en", "en"]
    info = manifest_info(manifest)
    assert info.languages.to_dict() == {"en": 3}
    assert (info.n_artists, info.n_albums) == (1, 2)  # one artist however spelled; Debut and Post
