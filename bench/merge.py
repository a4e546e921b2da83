"""Benchmark: `musicrep merge` memory and throughput on float16 stores of 10,000 and 20,000 tracks.

The per-track inputs are hard links to 500 distinct float16 arrays (128 x 880
x 2), to spare disk; each merge runs in a fresh process with its peak RSS.
Targets (issue 4): peak RSS under 1 GB, and no more than +10% from 10k to 20k.

Usage: ``python bench/merge.py [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd

from common import measure_cli
from musicrep.features.store import track_path, write_track

DISTINCT = 500


def make_source(root: Path, n_tracks: int) -> Path:
    """An extract folder with ``n_tracks`` arrays (hard links to ``DISTINCT`` files) and a tidfile."""
    rng = np.random.default_rng(0)
    originals = root / "originals"
    for i in range(DISTINCT):
        if not track_path(originals, f"o{i}").exists():
            write_track(originals, f"o{i}", (rng.standard_normal((128, 880, 2)) * 10 - 40).astype(np.float16))
    src = root / "src"
    src.mkdir(parents=True, exist_ok=True)
    (src / "extract_config.json").write_text(json.dumps({"precision": 16, "pad_value": "floor", "n_mels": 128}))
    ids = [f"T{i:07d}" for i in range(n_tracks)]
    for i, track_id in enumerate(ids):
        target = track_path(src, track_id)
        if not target.exists():
            target.parent.mkdir(parents=True, exist_ok=True)
            os.link(track_path(originals, f"o{i % DISTINCT}"), target)
    tidfile = root / f"tids_{n_tracks}.csv"
    pd.DataFrame({"track_id": ids, "filename": ""}).to_csv(tidfile, index=False)
    return tidfile


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("bench/out/merge"))
    args = parser.parse_args()
    results = {}
    for n_tracks in (10_000, 20_000):
        tidfile = make_source(args.out, n_tracks)
        dst = args.out / f"merged_{n_tracks}"
        result = measure_cli(["merge", "--tidfile", str(tidfile), "--src", str(args.out / "src"), "--dst", str(dst)])
        size_mb = (dst / "features.npy").stat().st_size / 1e6
        results[n_tracks] = result
        print(f"{n_tracks:>6} tracks: {result['seconds']:.1f} s, {size_mb / result['seconds']:.0f} MB/s "
              f"({size_mb:,.0f} MB), peak RSS {result['peak_gb'] * 1024:.0f} MB, exit {result['exit']}")
        (dst / "features.npy").unlink()  # spare the disk
    growth = results[20_000]["peak_gb"] / results[10_000]["peak_gb"] - 1
    print(f"peak RSS growth 10k -> 20k: {growth:+.1%} (target <= +10%, and < 1 GB)")


if __name__ == "__main__":
    main()
