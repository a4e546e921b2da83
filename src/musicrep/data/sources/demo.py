"""The embedded demo collection: synthesized, deterministic, tags you can hear.

``musicrep align --source demo --out DIR`` writes ``DIR/audio/`` and the
manifest. Four tagsets (genres, styles tied to genres, moods, themes);
artists with a consistent timbre; albums with reviews in four languages (some
in two, some none); wav/flac/ogg/mp3 at 22.05/44.1/48 kHz, mono and stereo,
4-40 s; and, from 50 tracks on, a few deliberately broken files of each kind
(empty, truncated, not audio) plus a silent file, a 0.1-s file and a missing
one, so every error path of every stage runs in the demo too.
"""

from __future__ import annotations

import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

from musicrep.data.sources import ProgressFn, SourceRecords
from musicrep.data.sources.demo_synth import Sound, synthesize
from musicrep.data.sources.demo_text import LANGUAGES, write_review
from musicrep.errors import UsageError
from musicrep.fileio import atomic_path, ensure_dir
from musicrep.targets.stopwords import joined_language

TAGSETS = ["genres", "styles", "moods", "themes"]

GENRES: dict[str, dict] = {
    "rock": dict(tempo=(110, 140), drums="rock", lead="guitar", bass="bass", pad=False,
                 density=2, distortion=2.5, brightness=1.1),
    "electronic": dict(tempo=(122, 132), drums="four", lead="synth", bass="square", pad=True,
                       density=4, distortion=0.0, brightness=1.2),
    "jazz": dict(tempo=(100, 170), drums="swing", lead="piano", bass="bass", pad=False,
                 density=2, distortion=0.0, brightness=0.95, swing=0.3),
    "classical": dict(tempo=(60, 96), drums="none", lead="strings", bass="none", pad=True,
                      density=1, distortion=0.0, brightness=0.9),
    "hip hop": dict(tempo=(80, 96), drums="hiphop", lead="keys", bass="sub", pad=False,
                    density=1, distortion=0.0, brightness=0.85, syncopation=0.4),
    "folk": dict(tempo=(90, 120), drums="shaker", lead="pluck", bass="bass", pad=False,
                 density=2, distortion=0.0, brightness=1.0),
}

STYLES: dict[str, tuple[str, dict]] = {
    "hard rock": ("rock", dict(distortion=5.0, brightness=1.25)),
    "punk": ("rock", dict(tempo=(160, 190), distortion=4.0, syncopation=0.0)),
    "indie rock": ("rock", dict(distortion=1.2, detune_cents=18.0, syncopation=0.25)),
    "techno": ("electronic", dict(tempo=(128, 136), pad=False, lead="square")),
    "ambient": ("electronic", dict(tempo=(70, 90), drums="none", density=1, reverb=0.5)),
    "drum and bass": ("electronic", dict(tempo=(168, 176), drums="break", bass="sub")),
    "bebop": ("jazz", dict(tempo=(180, 220), density=4)),
    "smooth jazz": ("jazz", dict(tempo=(80, 96), lead="sax", brightness=0.8)),
    "baroque": ("classical", dict(lead="harpsichord", density=4, brightness=1.2)),
    "romantic": ("classical", dict(tempo=(56, 72), reverb=0.4)),
    "boom bap": ("hip hop", dict(swing=0.2, noise=0.02)),
    "trap": ("hip hop", dict(tempo=(136, 148), drums="trap")),
    "celtic": ("folk", dict(lead="strings", density=3, pad=True)),
    "singer-songwriter": ("folk", dict(drums="none", density=1, syncopation=0.3)),
    "bluegrass": ("folk", dict(tempo=(130, 160), density=4, brightness=1.1)),
}

MOODS: dict[str, dict] = {
    # brightness: cutoff in Hz; eq: the mood's production colour (see demo_synth._equalize)
    "happy": dict(minor=False, brightness=3500.0, loudness_db=-15.0, tempo=1.1, root=5, drum_level=1.2,
                  eq=(4.0, -3.0, 2.0, 0.0)),
    "sad": dict(minor=True, brightness=1000.0, loudness_db=-29.0, tempo=0.8, root=-5, drum_level=0.35,
                eq=(-5.0, 2.0, 3.0, -2.0)),
    "aggressive": dict(minor=True, brightness=5500.0, loudness_db=-11.0, tempo=1.15, distortion=2.0,
                       drum_level=1.6, eq=(6.0, 3.0, -3.0, 2.0)),
    "calm": dict(minor=False, brightness=1400.0, loudness_db=-26.0, tempo=0.85, drum_level=0.4,
                 eq=(-3.0, -3.0, 0.0, 3.0)),
    "dark": dict(minor=True, brightness=700.0, loudness_db=-20.0, tempo=0.95, root=-12, drum_level=0.8,
                 eq=(-6.0, 4.0, -2.0, 0.0)),
    "uplifting": dict(minor=False, brightness=4500.0, loudness_db=-13.0, tempo=1.05, root=7, drum_level=1.3,
                      eq=(3.0, 4.0, 3.0, -2.0)),
    "dreamy": dict(minor=False, brightness=1800.0, loudness_db=-23.0, tempo=0.9, tremolo=3.0, reverb=0.6,
                   drum_level=0.5, eq=(-2.0, -4.0, 4.0, 2.0)),
    "tense": dict(minor=True, brightness=2700.0, loudness_db=-18.0, tempo=1.0, tremolo=9.0, drum_level=1.0,
                  eq=(1.0, -2.0, -4.0, 4.0)),
}

THEMES: dict[str, dict] = {
    "love": dict(tempo=0.97),
    "party": dict(tempo=1.03, loudness_db=1.0),
    "night": dict(brightness=0.9),
    "travel": dict(),
    "nature": dict(noise=0.01),
    "protest": dict(distortion=1.1),
}

FORMATS = ("wav", "flac", "ogg", "mp3")
_SF_FORMATS = {"wav": ("WAV", "PCM_16"), "flac": ("FLAC", "PCM_16"),
               "ogg": ("OGG", "VORBIS"), "mp3": ("MP3", "MPEG_LAYER_III")}
SAMPLE_RATES = (22050, 44100, 48000)
BROKEN_KINDS = ("empty", "truncated", "not audio")
EDGE_KINDS = ("silent", "short", "missing")
_SYLLABLES = ["ka", "lo", "mi", "ra", "ten", "vo", "sun", "da", "bel", "nor", "zi", "fa",
              "ro", "lin", "tu", "mar", "es", "quo", "pel", "ga"]


@dataclass
class DemoTrack:
    """The recipe of one demo track: metadata, tags, file and sound."""

    track_id: str
    artist: str
    album: str
    title: str
    audio_path: str
    format: str
    sample_rate: int
    channels: int
    duration: float
    tags: dict[str, list[str]]
    sound: Sound
    seed: int
    defect: str = ""


@dataclass
class DemoSource:
    """Synthesize the demo collection into ``OUT/audio`` (options: --tracks, --seed, --jobs).

    Parameters
    ----------
    tracks : int
        Number of tracks (broken files included), at least 12.
    seed : int
        Seed of everything; the same seed gives byte-identical metadata and audio.
    jobs : int
        Processes used to render audio.
    """

    tracks: int = 600
    seed: int = 0
    jobs: int = field(default_factory=lambda: min(4, os.cpu_count() or 1))

    def collect(self, out_dir: Path, *, on_progress: ProgressFn | None = None) -> SourceRecords:
        """Write the audio and return the collection's records."""
        if self.tracks < 12:
            raise UsageError(f"--tracks must be at least 12 for the demo (got {self.tracks})")
        if self.jobs < 1:
            raise UsageError(f"--jobs must be at least 1 (got {self.jobs})")
        audio_root = ensure_dir(Path(out_dir) / "audio")
        plan, reviews = plan_collection(self.tracks, self.seed)
        _render_all(plan, audio_root, jobs=self.jobs, on_progress=on_progress)
        return SourceRecords(
            frame=plan_frame(plan, reviews),
            tagsets=list(TAGSETS),
            audio_root=audio_root,
            expected_problems={t.track_id: t.defect for t in plan if t.defect},
        )


def plan_frame(plan: list[DemoTrack], reviews: dict) -> pd.DataFrame:
    """The raw manifest rows of a planned collection (no audio needed): an album's reviews are
    joined, labelled with their language, or ``mul`` (multiple languages) when they differ."""
    rows = []
    for track in plan:
        text_parts = reviews.get((track.artist, track.album), [])
        rows.append({
            "track_id": track.track_id, "audio_path": track.audio_path,
            "artist": track.artist, "album": track.album, "title": track.title,
            "text": "\n\n".join(text for _, text in text_parts),
            "language": joined_language([language for language, _ in text_parts]),
            **{f"tags_{t}": track.tags.get(t, []) for t in TAGSETS},
        })
    return pd.DataFrame(rows)


def plan_collection(n_tracks: int, seed: int) -> tuple[list[DemoTrack], dict]:
    """Decide every track, album and review of the collection (no audio yet).

    Returns
    -------
    tracks : list[DemoTrack]
    reviews : dict[(artist, album), list[(language, text)]]
    """
    rng = np.random.default_rng([seed, 0])
    text_rng = np.random.default_rng([seed, 2])  # its own stream: review changes leave the audio alone
    genre_names = list(GENRES)
    genre_order = rng.permutation(len(genre_names))
    tracks: list[DemoTrack] = []
    reviews: dict[tuple[str, str], list[tuple[str, str]]] = {}
    artist_index = 0
    album_index = 0
    mood_order = [str(m) for m in rng.permutation(list(MOODS))]
    artists: set[str] = set()
    while len(tracks) < n_tracks:
        genre = genre_names[genre_order[artist_index % len(genre_names)]]
        artist = _unique_name(rng, artists)
        signature = _artist_signature(rng)
        for _ in range(int(rng.integers(1, 3))):
            album = _name(rng, 3).title()
            own_styles = [s for s, (g, _) in STYLES.items() if g == genre]
            styles = list(rng.choice(own_styles, size=int(rng.integers(1, 3)), replace=False))
            # the primary mood cycles through all moods so that every collection is balanced
            primary = mood_order[album_index % len(mood_order)]
            album_index += 1
            extra = [str(m) for m in rng.choice([m for m in MOODS if m != primary], size=int(rng.integers(0, 2)),
                                                  replace=False)]
            album_moods = [primary, *extra]
            has_styles = rng.random() < 0.9
            _add_reviews(text_rng, reviews, artist, album, genre, styles, album_moods)
            for number in range(int(rng.integers(2, 6))):
                if len(tracks) >= n_tracks:
                    break
                moods = album_moods if rng.random() < 0.85 else [str(rng.choice(list(MOODS)))]
                themes = [str(rng.choice(list(THEMES)))] if rng.random() < 0.5 else []
                tags = {"genres": [genre], "styles": styles if has_styles else [],
                        "moods": moods if rng.random() < 0.9 else [], "themes": themes}
                fmt = str(rng.choice(FORMATS))
                index = len(tracks)
                track_id = f"demo{seed:03d}-{index:06d}"
                tracks.append(DemoTrack(
                    track_id=track_id, artist=artist, album=album,
                    title=f"{_name(rng, 2).title()} {number + 1}",
                    audio_path=f"{artist.lower()}/{track_id}.{fmt}", format=fmt,
                    sample_rate=int(rng.choice(SAMPLE_RATES)), channels=int(rng.integers(1, 3)),
                    duration=float(round(4.0 + 36.0 * rng.random() ** 2.0, 2)),
                    tags=tags, sound=_sound(rng, genre, styles[0], moods[0], themes, signature),
                    seed=int(rng.integers(2**31)),
                ))
        artist_index += 1
    _assign_defects(tracks, np.random.default_rng([seed, 1]))
    return tracks, reviews


def _add_reviews(rng, reviews, artist, album, genre, styles, moods) -> None:
    draw = rng.random()
    if draw < 0.2:
        return
    n_languages = 2 if draw > 0.8 else 1
    for language in rng.choice(LANGUAGES, size=n_languages, replace=False):
        text = write_review(rng, language=str(language), artist=artist, album=album,
                            genre=genre, styles=styles, moods=moods)
        reviews.setdefault((artist, album), []).append((str(language), text))


def _unique_name(rng: np.random.Generator, taken: set[str]) -> str:
    """An artist name not used yet (two syllables, more when those run out)."""
    for attempt in range(1000):
        name = _name(rng, 2 + attempt // 100).title()
        if name not in taken:
            taken.add(name)
            return name
    raise RuntimeError("no free artist name")  # unreachable: 20**4 names at 4 syllables


def _name(rng: np.random.Generator, syllables: int) -> str:
    return "".join(rng.choice(_SYLLABLES, size=syllables))


def _artist_signature(rng: np.random.Generator) -> dict:
    return dict(
        formant_hz=float(rng.uniform(400, 3000)), formant_gain=float(rng.uniform(0.05, 0.3)),
        tilt=float(rng.uniform(-0.1, 0.1)), detune_cents=float(rng.uniform(0, 10)),
        reverb=float(rng.uniform(0.05, 0.25)), pan=float(rng.uniform(-0.5, 0.5)),
        root=int(rng.integers(55, 61)),
    )


def _sound(rng, genre: str, style: str, mood: str, themes: list[str], signature: dict) -> Sound:
    spec = {"swing": 0.0, "syncopation": 0.1, "noise": 0.0, "tremolo": 0.0, **GENRES[genre]}
    spec.update(STYLES[style][1])
    low, high = spec.pop("tempo")
    spec["tempo"] = float(rng.uniform(low, high))
    params = {**signature, **spec}
    for key, change in MOODS[mood].items():
        _apply(params, key, change)
    for theme in themes:
        for key, change in THEMES[theme].items():
            _apply(params, key, change)
    return Sound(**params)


def _apply(params: dict, key: str, change: object) -> None:
    """Moods and themes scale tempo/distortion, shift root/loudness, set the rest.

    Brightness is the mood's cutoff in Hz times the genre's and style's factors,
    so a mood sounds alike across genres.
    """
    if key in ("tempo", "brightness"):
        params[key] *= change
    elif key == "distortion":
        # an undistorted genre gets a little grit from a strong change (aggressive)
        params[key] = params[key] * change if params[key] > 0 else max(0.0, change - 1.0)
    elif key == "root":
        params[key] += change
    elif key == "loudness_db" and "loudness_db" in params:
        params[key] += change
    elif key == "noise":
        params[key] = max(params[key], change)
    else:
        params[key] = change


def _assign_defects(tracks: list[DemoTrack], rng: np.random.Generator) -> None:
    """From 50 tracks on: a few broken files of each kind, and the edge cases."""
    if len(tracks) < 50:
        return
    per_kind = max(1, len(tracks) // 200)
    kinds = [k for k in BROKEN_KINDS for _ in range(per_kind)] + list(EDGE_KINDS)
    chosen = rng.choice(len(tracks), size=len(kinds), replace=False)
    for index, kind in zip(chosen, kinds, strict=True):
        track = tracks[index]
        track.defect = kind
        if kind == "not audio":
            track.format = "mp3"
            track.audio_path = str(Path(track.audio_path).with_suffix(".mp3"))
        if kind == "short":
            track.duration = 0.1
        if kind == "silent":
            track.sound = replace(track.sound, loudness_db=-200.0)


def _render_all(plan: list[DemoTrack], audio_root: Path, *, jobs: int,
                on_progress: ProgressFn | None) -> None:
    todo = [t for t in plan if t.defect != "missing"]
    if jobs == 1:
        results = map(_render_one, [(t, audio_root) for t in todo])
        for done, _ in enumerate(results, start=1):
            if on_progress:
                on_progress(done, len(todo))
        return
    with ProcessPoolExecutor(max_workers=jobs) as pool:
        for done, _ in enumerate(pool.map(_render_one, [(t, audio_root) for t in todo],
                                          chunksize=2), start=1):
            if on_progress:
                on_progress(done, len(todo))


def _render_one(job: tuple[DemoTrack, Path]) -> str:
    track, audio_root = job
    path = audio_root / track.audio_path
    with atomic_path(path) as tmp:
        if track.defect == "empty":
            tmp.write_bytes(b"")
        elif track.defect == "not audio":
            tmp.write_text("This is a text file, not audio.\n" * 40)
        else:
            y = synthesize(track.sound, duration=track.duration, sr=track.sample_rate,
                           channels=track.channels, seed=track.seed)
            if track.defect == "silent":
                y = np.zeros_like(y)
            container, subtype = _SF_FORMATS[track.format]
            sf.write(tmp, y, track.sample_rate, format=container, subtype=subtype)
            if container == "OGG":
                tmp.write_bytes(fix_ogg_serial(tmp.read_bytes(), serial=track.seed))
            if track.defect == "truncated":
                data = tmp.read_bytes()
                tmp.write_bytes(data[: max(64, len(data) * 2 // 5)])
    return track.track_id


def _ogg_crc_table() -> np.ndarray:
    table = np.zeros(256, dtype=np.uint32)
    for i in range(256):
        crc = i << 24
        for _ in range(8):
            crc = ((crc << 1) ^ 0x04C11DB7) if crc & 0x80000000 else (crc << 1)
        table[i] = crc & 0xFFFFFFFF
    return table


def fix_ogg_serial(data: bytes, *, serial: int) -> bytes:
    """Give every Ogg page the same stream serial and recompute its CRC.

    libsndfile draws a random serial per file, so Ogg files would differ
    byte-wise between runs; a fixed serial makes the demo byte-deterministic.
    """
    table = [int(v) for v in _ogg_crc_table()]
    out = bytearray(data)
    pos = 0
    while pos + 27 <= len(out) and out[pos:pos + 4] == b"OggS":
        n_segments = out[pos + 26]
        size = 27 + n_segments + sum(out[pos + 27:pos + 27 + n_segments])
        out[pos + 14:pos + 18] = (serial & 0xFFFFFFFF).to_bytes(4, "little")
        out[pos + 22:pos + 26] = b"\0\0\0\0"
        crc = 0
        for byte in out[pos:pos + size]:
            crc = ((crc << 8) & 0xFFFFFFFF) ^ table[((crc >> 24) ^ byte) & 0xFF]
        out[pos + 22:pos + 26] = crc.to_bytes(4, "little")
        pos += size
    return bytes(out)
