"""Benchmark: `musicrep embed` on 30-s mp3 files end to end, next to `musicrep extract` alone, and `--store`.

Writes 40 thirty-second stereo 44.1 kHz mp3 files (as ``bench/extract.py``) and a model
folder exported from an untrained MusicEncoder (kim2019 at full width, the original preset
cropped and padded to 880 frames, so 5 windows of 216 frames per clip; speed does not
depend on training), then measures clips per second, each command in a fresh interpreter,
imports done before the clock starts (torch alone takes ~1.5 s to import):

* ``musicrep extract --workers 1 --crop --pad`` (decode, resample, log-mel, write);
* ``musicrep embed --tidfile`` (decode, resample, log-mel, windows, network): one process,
  with 1 torch thread and with torch's default (one per core);
* ``musicrep embed --store`` on the merged store of the same clips (network only).

Prints the ratios embed / extract. Best of ``--rounds`` interleaved rounds (a shared machine's
noise only ever slows a run).

Usage: ``python bench/embed.py [--files 40] [--rounds 3] [--out DIR]``
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import soundfile as sf

_TIMED = r"""
import json, sys, time
import torch, musicrep.cli, musicrep.inference.embed, musicrep.features.extract, musicrep.features.merge
torch.set_num_threads({threads})
sys.argv = {argv!r}
start = time.perf_counter()
try:
    musicrep.cli.main()
except SystemExit as exc:
    code = exc.code or 0
print("TIMED " + json.dumps({{"seconds": time.perf_counter() - start, "exit": code}}))
"""


def write_files(folder: Path, n_files: int) -> list[Path]:
    """30-s stereo 44.1 kHz mp3 clips of four sines and noise (the clips of ``bench/extract.py``)."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    t = np.arange(30 * 44100) / 44100
    paths = []
    for i in range(n_files):
        path = folder / f"clip{i:04d}.mp3"
        freqs = rng.uniform(80, 2000, size=4)
        if not path.exists():
            y = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.1 + 0.02 * rng.standard_normal(len(t))
            sf.write(path, np.stack([y, np.roll(y, 100)], axis=1), 44100, subtype="MPEG_LAYER_III")
        paths.append(path)
    return paths


def export_untrained(folder: Path) -> Path:
    """A model folder of an untrained kim2019 (width 1, 128 dims) with the original preset, as training exports."""
    import torch

    from musicrep.features.extract import ExtractConfig
    from musicrep.inference.hub import export_model
    from musicrep.models.encoder import MusicEncoder

    config = {
        "model": {"name": "kim2019", "params": {}}, "embedding_dim": 128, "window_frames": 216,
        "n_mels": 128, "channels": 2, "extraction": ExtractConfig(crop=True, pad=True).to_dict(),
        "heads": {"joint": {"kind": "projection", "space": "joint", "space_id": "bench", "space_dim": 340,
                            "hidden": 340},
                  "genres": {"kind": "classification", "space": "genres", "space_id": "bench", "tagset": "genres",
                             "labels": [f"genre{i}" for i in range(50)]}},
        "tasks": [{"name": "joint", "space": "joint", "objective": "triplet", "weight": 1.0},
                  {"name": "genres", "space": "genres", "objective": "bce", "weight": 1.0}],
    }
    torch.manual_seed(0)
    return export_model(MusicEncoder.from_config(config), config, folder, card="# Untrained benchmark model\n")


def timed(argv: list[str], threads: int) -> float:
    """Seconds of ``musicrep ARGV`` in a fresh interpreter, imports excluded; the exit code must be 0."""
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_NUM_THREADS", "MKL_NUM_THREADS")}
    if threads == 1:
        env["OMP_NUM_THREADS"] = "1"
    script = _TIMED.format(argv=["musicrep", *argv], threads=threads)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env)
    line = next((x for x in proc.stdout.splitlines() if x.startswith("TIMED ")), None)
    if line is None:
        raise RuntimeError(f"benchmark step failed:\n{proc.stderr[-2000:]}")
    result = json.loads(line[len("TIMED "):])
    if result["exit"] != 0:
        raise RuntimeError(f"musicrep {' '.join(argv)} exited {result['exit']}:\n{proc.stderr[-2000:]}")
    return result["seconds"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--out", type=Path, default=Path("bench/out/embed"))
    args = parser.parse_args()
    out = args.out
    paths = write_files(out / "audio", args.files)
    tidfile = out / "clips.csv"
    pd.DataFrame({"track_id": [p.stem for p in paths], "filename": [str(p.resolve()) for p in paths]}).to_csv(
        tidfile, index=False)
    model = export_untrained(out / "model")
    cores = os.cpu_count() or 1
    features = out / "features"
    variants = {
        "extract (1 worker)": (["extract", "--tidfile", str(tidfile), "--dst", str(features), "--workers", "1",
                                "--crop", "--pad"], 1),
        "embed --tidfile, 1 thread": (["embed", "--model", str(model), "--tidfile", str(tidfile), "--out",
                                       str(out / "emb_files")], 1),
        f"embed --tidfile, {cores} threads": (["embed", "--model", str(model), "--tidfile", str(tidfile), "--out",
                                               str(out / "emb_files")], cores),
        "embed --store, 1 thread": (["embed", "--model", str(model), "--store", str(features / "all"), "--out",
                                     str(out / "emb_store")], 1),
        f"embed --store, {cores} threads": (["embed", "--model", str(model), "--store", str(features / "all"),
                                             "--out", str(out / "emb_store")], cores),
    }
    load_before = os.getloadavg()[0]
    best = dict.fromkeys(variants, float("inf"))
    for _ in range(args.rounds):
        for name, (argv, threads) in variants.items():
            if name.startswith("extract"):
                shutil.rmtree(features, ignore_errors=True)
            best[name] = min(best[name], timed(argv, threads))
            if name.startswith("extract"):
                timed(["merge", "--tidfile", str(tidfile), "--src", str(features), "--dst", str(features / "all"),
                       "--crop", "--pad"], 1)
    from musicrep.inference.embed import read_embeddings

    from_files, _, _ = read_embeddings(out / "emb_files")
    from_store, _, _ = read_embeddings(out / "emb_store")
    print(f"{len(paths)} files of 30 s, stereo, 44.1 kHz mp3; kim2019 (width 1), 5 windows of 216 frames per clip; "
          f"best of {args.rounds} interleaved rounds; 1 process, imports excluded; load average "
          f"{load_before:.1f} before, {os.getloadavg()[0]:.1f} after, on {cores} cores")
    for name, seconds in best.items():
        print(f"  {name:<28} {len(paths) / seconds:6.1f} clips/s ({1000 * seconds / len(paths):6.1f} ms/clip)")
    extract_rate = len(paths) / best["extract (1 worker)"]
    for name in variants:
        if name.startswith("embed"):
            print(f"  {name} / extract = {len(paths) / best[name] / extract_rate:.2f}x")
    print(f"  largest difference between --tidfile and --store vectors: {np.abs(from_files - from_store).max():.2e}")


if __name__ == "__main__":
    main()
