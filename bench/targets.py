"""Benchmark: target spaces and triplet mining at MSD scale.

Writes a manifest of 500,000 tracks in albums of ~10 tracks (four tagsets
with Zipf-distributed tags, ~1,000 distinct; AMG tags are album-level, so 95%
of tracks carry exactly their album's tag set) where half of the albums have one review of
~200 words (250,000 tracks with text, ~25,000 distinct reviews), then times,
each in a fresh process with its peak RSS:

* ``musicrep embed-tags`` (joint space + one per tagset), fitted on 80% train;
* ``musicrep embed-text`` (word tokens);
* ``musicrep mine-triplets`` in the joint space with 100,000 and 500,000 anchors.

Targets (issue 5): each space's fit + transform under 5 min and 8 GB; mining
500,000 anchors under 10 min with memory independent of N^2.

Usage: ``python bench/targets.py [--tracks N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import pandas as pd

from common import measure_cli
from musicrep.data.manifest import Manifest, conform_frame, write_manifest

TAGSETS = {"genres": (21, 1, 2), "styles": (700, 0, 3), "moods": (200, 0, 4), "themes": (80, 0, 2)}
WORDS = 20_000


def zipf(rng: np.random.Generator, size: int, n: int, exponent: float = 1.1) -> np.ndarray:
    weights = 1.0 / np.arange(1, n + 1) ** exponent
    return rng.choice(n, size=size, p=weights / weights.sum())


def pseudo_word(index: int) -> str:
    """A distinct letters-only word per index (the text analyzer keeps letters only)."""
    syllables = ["ka", "lo", "mi", "ra", "te", "vo", "su", "da", "be", "no", "zi", "fa", "ro", "li", "tu", "ma"]
    word = ""
    while True:
        word += syllables[index % 16]
        index //= 16
        if index == 0:
            return word


def make_manifest(path: Path, n_tracks: int, seed: int = 0) -> pd.DataFrame:
    """The benchmark collection (no audio: targets never open it)."""
    rng = np.random.default_rng(seed)
    n_albums = n_tracks // 10
    album = np.sort(rng.integers(0, n_albums, size=n_tracks))
    artist = album // 2
    columns: dict[str, object] = {
        "track_id": [f"T{i:07d}" for i in range(n_tracks)],
        "audio_path": [f"{a}/{i}.mp3" for i, a in enumerate(album.tolist())],
        "artist": [f"artist {a}" for a in artist.tolist()],
        "album": [f"album {a}" for a in album.tolist()],
    }
    for tagset, (size, low, high) in TAGSETS.items():
        counts = rng.integers(low, high + 1, size=n_albums)
        draws = zipf(rng, int(counts.sum()), size)
        album_tags = np.split(draws, np.cumsum(counts)[:-1])
        vocab = [f"{tagset[:-1]} {i}" for i in range(size)]
        album_lists = [sorted({vocab[i] for i in tags.tolist()}) for tags in album_tags]
        # AMG tags are album-level: 95% of tracks carry exactly their album's tags, the rest lose or gain one
        tracks = []
        vary = rng.random(n_tracks) < 0.05
        extra = zipf(rng, n_tracks, size)
        for i, a in enumerate(album.tolist()):
            tags = album_lists[a]
            if vary[i]:
                tags = tags[1:] if tags and extra[i] % 2 else sorted({*tags, vocab[extra[i]]})
            tracks.append(tags)
        columns[f"tags_{tagset}"] = tracks
    reviewed = rng.random(n_albums) < 0.5
    words = np.array([pseudo_word(i) for i in range(WORDS)], dtype=object)
    reviews = {a: " ".join(words[zipf(rng, int(rng.integers(150, 250)), WORDS)])
               for a in np.flatnonzero(reviewed).tolist()}
    columns["text"] = [reviews.get(a, "") for a in album.tolist()]
    columns["language"] = ["en" if a in reviews else "" for a in album.tolist()]
    frame = conform_frame(pd.DataFrame(columns), list(TAGSETS))
    write_manifest(Manifest(frame, list(TAGSETS), path.parent / "audio"), path)
    return frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=500_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/targets"))
    args = parser.parse_args()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)
    manifest = out / "manifest.parquet"
    if not manifest.exists():
        start = time.perf_counter()
        frame = make_manifest(manifest, args.tracks)
        ids = frame.track_id.to_numpy()
        rng = np.random.default_rng(1)
        pd.DataFrame({"track_id": np.sort(rng.choice(ids, size=int(0.8 * len(ids)), replace=False)),
                      "filename": "x"}).to_csv(out / "train.csv", index=False)
        pd.DataFrame({"track_id": ids, "filename": "x"}).to_csv(out / "all.csv", index=False)
        pd.DataFrame({"track_id": np.sort(rng.choice(ids, size=min(100_000, len(ids)), replace=False)),
                      "filename": "x"}).to_csv(out / "anchors100k.csv", index=False)
        print(f"wrote {manifest} ({args.tracks:,} tracks) in {time.perf_counter() - start:.0f} s")

    results = {
        "embed-tags (joint + 4 tagsets)": measure_cli(
            ["embed-tags", "--manifest", str(manifest), "--tidfile", str(out / "train.csv"), "--out", str(out / "t")]),
        "embed-text (words)": measure_cli(
            ["embed-text", "--manifest", str(manifest), "--tidfile", str(out / "train.csv"), "--out", str(out / "t")]),
    }
    mined = {}
    for label, tidfile in (("100k", "anchors100k.csv"), ("500k", "all.csv")):
        target = out / f"triplets_{label}.parquet"
        results[f"mine-triplets joint, {label} anchors"] = measure_cli(
            ["mine-triplets", "--space", str(out / "t" / "joint"), "--tidfile", str(out / tidfile),
             "--out", str(target)])
        mined[label] = results[f"mine-triplets joint, {label} anchors"]["stdout"].strip().splitlines()[-1]
    print(f"{'step':<38}{'seconds':>9}{'peak RSS GB':>13}")
    for name, result in results.items():
        print(f"{name:<38}{result['seconds']:>9.1f}{result['peak_gb']:>13.2f}   exit {result['exit']}")
    for label, line in mined.items():
        print(f"mined {label}: {line}")
    for space in ("joint", "genres", "styles", "moods", "themes", "text"):
        model = json.loads((out / "t" / space / "model.json").read_text())
        print(f"space {space}: {model['dims']} dims, vocabulary {len(model['vocabulary']):,}")


if __name__ == "__main__":
    main()
