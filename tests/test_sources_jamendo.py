from __future__ import annotations

import pytest

from conftest import write_tone
from musicrep.data.align import align
from musicrep.data.manifest import read_manifest
from musicrep.data.sources import make_source
from musicrep.errors import InputError

HEADER = "TRACK_ID\tARTIST_ID\tALBUM_ID\tPATH\tDURATION\tTAGS\n"


def test_jamendo_tsvs_are_merged_per_track(tmp_path):
    root = tmp_path / "audio"
    write_tone(root / "14" / "214.mp3", seconds=0.5)
    write_tone(root / "25" / "325.mp3", seconds=0.5)
    genre = tmp_path / "autotagging_genre.tsv"
    genre.write_text(HEADER + "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\tgenre---punkrock\n"
                     "track_0000325\tartist_000020\talbum_000040\t25/325.mp3\t99.0\tgenre---pop\tgenre---rock\n"
                     "broken line\n")
    mood = tmp_path / "autotagging_moodtheme.tsv"
    mood.write_text(HEADER + "track_0000214\tartist_000014\talbum_000031\t14/214.mp3\t124.6\t"
                    "mood/theme---energetic\tinstrument---guitar\n")
    report = align(make_source("jamendo", tsv=[genre, mood], audio_root=root), tmp_path / "out")
    manifest = read_manifest(report.manifest_path)
    assert manifest.tagsets == ["genres", "instruments", "moodthemes"]
    row = manifest.frame.set_index("track_id").loc["track_0000214"]
    assert list(row.tags_genres) == ["punkrock"]
    assert list(row.tags_moodthemes) == ["energetic"] and list(row.tags_instruments) == ["guitar"]
    assert row.artist == "artist_000014" and row.album == "album_000031"
    assert [p.reason for p in report.problems] == ["malformed row (empty id, artist, album or path)"]


def test_jamendo_bad_header(tmp_path):
    bad = tmp_path / "x.tsv"
    bad.write_text("id\tpath\n1\ta.mp3\n")
    expected = r"x.tsv: needs the MTG-Jamendo header .* DURATION \(tab-separated\); read the header 'id\\tpath'"
    with pytest.raises(InputError, match=expected):
        align(make_source("jamendo", tsv=[bad], audio_root=tmp_path), tmp_path / "out")
