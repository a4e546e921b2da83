"""Benchmark: `musicrep align --source msd-amg --no-audio-check` and `musicrep partition` at MSD scale.

Writes an MSD-sized labels file (default 1,000,000 tracks, four tagsets with
Zipf-distributed tags, ~44k artists) in the original format
(``DataFrame.to_hdf(path, key="data")``, list columns, NaN for missing), then
times, each in a fresh process with its peak RSS:

* the reference: plain ``pandas.read_hdf`` of the labels file alone;
* ``musicrep align`` (reads, normalizes, validates, writes the manifest);
* ``musicrep partition`` (artist-grouped, genre-stratified).

Targets (issue 3): align and partition each under 90 s and 8 GB peak RSS.

Usage: ``python bench/align_partition.py [--tracks N] [--out DIR]``
"""

from __future__ import annotations

import argparse
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from common import measure, measure_cli

TAGSET_SIZES = {"genres": (21, 1, 2), "styles": (900, 0, 4), "moods": (180, 0, 6), "themes": (70, 0, 2)}

def zipf_lists(rng: np.random.Generator, n: int, vocab: list[str], low: int, high: int) -> list:
    """One list of Zipf-distributed tags per track, NaN where a track has none."""
    counts = rng.integers(low, high + 1, size=n)
    weights = 1.0 / np.arange(1, len(vocab) + 1) ** 1.1
    draws = rng.choice(len(vocab), size=int(counts.sum()), p=weights / weights.sum())
    out: list = []
    position = 0
    for count in counts.tolist():
        if count == 0:
            out.append(np.nan)
        else:
            # fresh string objects per occurrence, as in the real file: pickle cannot share them
            tags = dict.fromkeys(vocab[i] for i in draws[position:position + count].tolist())
            out.append([(tag + " ")[:-1] for tag in tags])
        position += count
    return out


def write_labels(path: Path, n_tracks: int, seed: int = 0) -> None:
    """An MSD-sized ``msd_amglabels_all.h5`` in the original pandas fixed format."""
    rng = np.random.default_rng(seed)
    ids = [f"TR{i:016X}" for i in np.unique(rng.integers(0, 2**62, size=n_tracks)).tolist()]
    n_tracks = len(ids)  # collisions among 2**62 values are vanishingly rare
    n_artists = max(1, n_tracks // 23)
    artist_weights = 1.0 / np.arange(1, n_artists + 1) ** 0.8
    artists = rng.choice(n_artists, size=n_tracks, p=artist_weights / artist_weights.sum())
    data = {}
    for tagset, (size, low, high) in TAGSET_SIZES.items():
        vocab = [f"{tagset[:-1].title()} {i}" for i in range(size)]
        data[tagset] = zipf_lists(rng, n_tracks, vocab, low, high)
    frame = pd.DataFrame(data, index=pd.Index(ids, name="track_id"))
    frame["artist_name"] = [f"Artist {a}" for a in artists.tolist()]
    frame["title"] = [f"Song {i}" for i in range(n_tracks)]
    frame["release"] = [f"Album {a}-{i % 3}" for i, a in enumerate(artists.tolist())]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        frame.to_hdf(path, key="data", format="fixed")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tracks", type=int, default=1_000_000)
    parser.add_argument("--out", type=Path, default=Path("bench/out/align_partition"))
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    labels = args.out / "msd_amglabels_all.h5"
    if not labels.exists():
        start = time.perf_counter()
        write_labels(labels, args.tracks)
        print(f"wrote {labels} ({args.tracks:,} tracks, {labels.stat().st_size / 1e6:.0f} MB) "
              f"in {time.perf_counter() - start:.0f} s")
    reference = measure(f"import pandas as pd\npd.read_hdf({str(labels)!r}, key='data')")
    align = measure_cli(["align", "--source", "msd-amg", "--labels", str(labels), "--audio-root",
                         str(args.out / "audio"), "--no-audio-check", "--out", str(args.out / "run")])
    partition = measure_cli(["partition", "--manifest", str(args.out / "run/manifest.parquet"),
                             "--out", str(args.out / "run/partitions")])
    print(f"{'step':<34}{'seconds':>9}{'peak RSS GB':>13}  target")
    print(f"{'reference: pandas.read_hdf alone':<34}{reference['seconds']:>9.1f}{reference['peak_gb']:>13.2f}")
    for name, result in (("musicrep align --no-audio-check", align), ("musicrep partition", partition)):
        ok = result["seconds"] < 90 and result["peak_gb"] < 8 and result["exit"] == 0
        print(f"{name:<34}{result['seconds']:>9.1f}{result['peak_gb']:>13.2f}  "
              f"{'met' if ok else 'MISSED'} (< 90 s, < 8 GB; exit {result['exit']})")
    print(f"align / read_hdf: time x{align['seconds'] / reference['seconds']:.2f}, "
          f"memory x{align['peak_gb'] / reference['peak_gb']:.2f}")


if __name__ == "__main__":
    main()
