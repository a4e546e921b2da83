from __future__ import annotations

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from musicrep.data.manifest import (
    Manifest,
    Track,
    is_safe_track_id,
    normalize_tag,
    read_manifest,
    safe_track_id,
    tracks_to_frame,
    write_manifest,
)
from musicrep.errors import InputError


def test_normalize_tag_keeps_one_term():
    assert normalize_tag("  Hard\t ROCK ") == "hard rock"
    # NFD input (e + combining acute) becomes NFC, so both spellings are one tag
    assert normalize_tag("Cafe\u0301  Musique") == normalize_tag("Caf\u00e9 musique") == "caf\u00e9 musique"
    assert normalize_tag("Singer-Songwriter") == "singer-songwriter"


def test_safe_track_id_is_safe_stable_and_distinct():
    assert safe_track_id("TRAAAAK128F9318786") == "TRAAAAK128F9318786"
    a = safe_track_id("Björk/Homogenic/01 Hunter")
    b = safe_track_id("Björk/Homogenic/01 Hunter?")
    assert is_safe_track_id(a) and is_safe_track_id(b)
    assert a != b
    assert a == safe_track_id("Björk/Homogenic/01 Hunter")
    assert is_safe_track_id(safe_track_id("x" * 300))
    assert is_safe_track_id(safe_track_id("..."))


def _manifest(tmp_path, tracks):
    frame = tracks_to_frame(tracks, ["genres", "moods"])
    return Manifest(frame=frame, tagsets=["genres", "moods"], audio_root=tmp_path / "audio")


def test_roundtrip_keeps_lists_metadata_and_relative_root(tmp_path):
    tracks = [
        Track("t1", "a/t1.wav", artist="A", text="nice", language="en", duration=3.5, sample_rate=44100,
              channels=2, format="wav", tags={"genres": ["rock", "pop"], "moods": []}),
        Track("t2", "a/t2.mp3", tags={"genres": [], "moods": ["sad"]}),
    ]
    path = write_manifest(_manifest(tmp_path, tracks), tmp_path / "manifest.parquet")
    meta = pq.read_schema(path).metadata
    assert meta[b"musicrep.audio_root"] == b"audio"  # relative: the run directory can move
    loaded = read_manifest(path)
    assert loaded.tagsets == ["genres", "moods"]
    assert loaded.audio_root == (tmp_path / "audio").resolve()
    back = list(loaded.tracks())
    assert back[0].tags == {"genres": ["rock", "pop"], "moods": []}
    assert back[0].sample_rate == 44100 and back[0].duration == 3.5
    assert back[1].sample_rate is None and back[1].duration is None
    assert pq.read_schema(path).field("tags_genres").type == pa.list_(pa.string())


def test_moved_run_directory_still_finds_audio(tmp_path):
    run = tmp_path / "run"
    path = write_manifest(_manifest(run, [Track("t1", "x.wav", tags={"genres": ["a"]})]), run / "manifest.parquet")
    moved = tmp_path / "moved"
    run.rename(moved)
    assert read_manifest(moved / path.name).audio_root == (moved / "audio").resolve()


def test_read_errors_name_the_file(tmp_path):
    with pytest.raises(InputError, match="manifest not found"):
        read_manifest(tmp_path / "nope.parquet")
    text = tmp_path / "text.parquet"
    text.write_text("not parquet")
    with pytest.raises(InputError, match="text.parquet: not a readable Parquet"):
        read_manifest(text)
    plain = tmp_path / "plain.parquet"
    pd.DataFrame({"a": [1]}).to_parquet(plain)
    with pytest.raises(InputError, match="not a musicrep manifest"):
        read_manifest(plain)


def test_write_refuses_duplicate_and_unsafe_ids(tmp_path):
    dup = _manifest(tmp_path, [Track("t1", "a.wav"), Track("t1", "b.wav")])
    with pytest.raises(InputError, match="duplicate track id 't1'"):
        write_manifest(dup, tmp_path / "m.parquet")
    for bad in ("a b", "..", ".", "../x", "/abs", "t1\n", "x" * 129):
        unsafe = _manifest(tmp_path, [Track(bad, "a.wav")])
        with pytest.raises(InputError, match="unsafe track id"):
            write_manifest(unsafe, tmp_path / "m.parquet")
    assert not list(tmp_path.glob("*.parquet*"))  # nothing half-written


def test_is_safe_track_id_keeps_ids_inside_their_folder():
    assert all(is_safe_track_id(t) for t in ("TRAAAAK128F9318786", "a.b-c_d", ".hidden", "x" * 128))
    assert not any(is_safe_track_id(t) for t in ("", ".", "..", "../x", "a/b", "/abs", "t1\n", "x" * 129, None, 5))


def test_store_refuses_to_make_a_path_from_an_unsafe_id(tmp_path):
    from musicrep.features.store import track_path

    assert track_path(tmp_path, "ok").parent.parent == tmp_path
    for bad in ("..", "../../x", "/etc/x"):
        with pytest.raises(InputError, match="unsafe track id"):
            track_path(tmp_path, bad)
