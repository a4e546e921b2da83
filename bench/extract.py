"""Benchmark: `musicrep extract` against the original librosa pipeline, same files, same run.

Writes 200 thirty-second stereo 44.1 kHz mp3 files (tones and noise), then
measures clips per second of

* the reference: ``librosa.load(sr=22050, mono=False)`` of the whole file,
  segment 3-14 s, ``melspectrogram`` + ``power_to_db(ref=np.max)`` per channel;
* musicrep's extractor (decodes and resamples only the segment);
* the floor: decoding + resampling the segment only, no spectrogram.

First with 1 process and 1 thread each (OMP/OPENBLAS/MKL_NUM_THREADS=1), then
the whole machine: 2 worker processes of 1 thread each. Every measurement runs
in fresh worker processes; the variants are measured in interleaved rounds and
the best rate of each is kept, as ``timeit`` does, because noise on a shared
machine only ever slows a run. Prints the ratios, and the reference once more
with the malloc setting musicrep's workers use (``retain_freed_memory``).
Target (issue 4): ours >= 2.5x the reference's clips/s on 1 thread.

Usage: ``python bench/extract.py [--files 200] [--rounds 3] [--out DIR]``
"""

from __future__ import annotations

import os

for _name in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_name] = "1"  # before numpy is imported, here and in the worker processes

import argparse  # noqa: E402
import time  # noqa: E402
from concurrent.futures import ProcessPoolExecutor  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import soundfile as sf  # noqa: E402


def write_files(folder: Path, n_files: int) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    rng = np.random.default_rng(0)
    t = np.arange(30 * 44100) / 44100
    for i in range(n_files):
        path = folder / f"clip{i:04d}.mp3"
        if not path.exists():
            freqs = rng.uniform(80, 2000, size=4)
            y = sum(np.sin(2 * np.pi * f * t) for f in freqs) * 0.1 + 0.02 * rng.standard_normal(len(t))
            sf.write(path, np.stack([y, np.roll(y, 100)], axis=1), 44100, subtype="MPEG_LAYER_III")
        paths.append(path)
    return paths


def reference(path: Path) -> tuple:
    import librosa

    y, _ = librosa.load(path, sr=22050, mono=False)
    y = y[:, 3 * 22050:14 * 22050] if y.shape[-1] > 14 * 22050 else y[:, :11 * 22050]
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=256, n_mels=128)
    return np.stack([librosa.power_to_db(mel[c], ref=np.max) for c in range(2)]).shape


def ours(path: Path) -> tuple:
    from musicrep.features.extract import ExtractConfig, extract_features

    return extract_features(path, ExtractConfig(crop=True, pad=True))[0].shape


def floor(path: Path) -> tuple:
    from musicrep.features.audio import load_segment

    return load_segment(path).shape


def _init(retain: bool) -> None:
    import torch

    from musicrep.memory import retain_freed_memory

    torch.set_num_threads(1)
    if retain:
        retain_freed_memory()


def rate(function, paths: list[Path], workers: int, retain: bool) -> float:
    """Clips per second of ``function`` over ``paths`` in fresh worker processes (after a warm-up clip each).

    ``retain``: the workers keep freed memory for reuse, as ``musicrep extract``'s workers do.
    """
    with ProcessPoolExecutor(max_workers=workers, initializer=_init, initargs=(retain,)) as pool:
        list(pool.map(function, paths[:workers]))
        start = time.perf_counter()
        list(pool.map(function, paths, chunksize=4))
        return len(paths) / (time.perf_counter() - start)


def best_rates(paths: list[Path], workers: int, rounds: int) -> dict[str, float]:
    """The best clips/s of each variant over ``rounds`` interleaved rounds (a shared machine's noise only slows)."""
    variants = {"reference": (reference, False), "ours": (ours, True), "floor": (floor, True),
                "reference, our malloc setting": (reference, True)}
    best = dict.fromkeys(variants, 0.0)
    for _ in range(rounds):
        for name, (function, retain) in variants.items():
            best[name] = max(best[name], rate(function, paths, workers, retain))
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--files", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds; the best of each is kept")
    parser.add_argument("--out", type=Path, default=Path("bench/out/extract"))
    args = parser.parse_args()
    paths = write_files(args.out, args.files)
    print(f"{len(paths)} files of 30 s, stereo, 44.1 kHz mp3; best of {args.rounds} interleaved rounds")
    for workers in (1, 2):
        best = best_rates(paths, workers, args.rounds)
        ref, our, low, tuned = (best[k] for k in ("reference", "ours", "floor", "reference, our malloc setting"))
        print(f"{workers} worker(s) x 1 thread: reference {ref:.1f} clips/s ({1000 / ref:.1f} ms/clip), "
              f"ours {our:.1f} clips/s ({1000 / our:.1f} ms/clip), floor {low:.1f} clips/s ({1000 / low:.1f} ms/clip)")
        print(f"  ours / reference = {our / ref:.2f}x (target >= 2.5x); ours / floor = {our / low:.2f}")
        print(f"  reference with the same malloc setting as ours: {tuned:.1f} clips/s ({1000 / tuned:.1f} ms/clip); "
              f"ours / that = {our / tuned:.2f}x")


if __name__ == "__main__":
    main()
