"""Shared fixtures: one small demo collection for the whole session, and CLI helpers."""

from __future__ import annotations

import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

from musicrep.data.align import AlignReport, align
from musicrep.data.manifest import Manifest, read_manifest
from musicrep.data.sources.demo import DemoSource

DEMO_TRACKS = 120
DEMO_SEED = 0


@dataclass
class DemoCollection:
    """The session's demo collection, aligned."""

    root: Path
    report: AlignReport
    manifest: Manifest


@pytest.fixture(scope="session")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoCollection:
    """120 demo tracks (files over 14 s, every kind of broken file), aligned once per session."""
    root = tmp_path_factory.mktemp("demo")
    report = align(DemoSource(tracks=DEMO_TRACKS, seed=DEMO_SEED, jobs=2), root)
    return DemoCollection(root=root, report=report, manifest=read_manifest(report.manifest_path))


@pytest.fixture(scope="session")
def demo_run(demo, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A run directory up to the targets, from the session's demo collection (no second rendering):
    partitions, merged train/val/test stores with stats.npz, every tag space and the text space."""
    import shutil

    import pandas as pd

    from musicrep.data.manifest import write_manifest
    from musicrep.data.partition import SPLITS, PartitionConfig, partition, write_partitions
    from musicrep.features.extract import ExtractConfig, extract
    from musicrep.features.merge import STATS_FILE, merge
    from musicrep.tables import read_tidfile
    from musicrep.targets.tags import embed_tags
    from musicrep.targets.text import embed_text

    run = tmp_path_factory.mktemp("run")
    manifest = read_manifest(write_manifest(demo.manifest, run / "manifest.parquet"))  # audio_root stays absolute
    write_partitions(manifest, partition(manifest, PartitionConfig()), run / "partitions")
    tracks = [read_tidfile(run / "partitions" / f"{s}.csv", need_filename=True).tracks for s in SPLITS]
    features = run / "features"
    extract(pd.concat(tracks), features, ExtractConfig(crop=True, pad=True, precision=16),
            audio_root=manifest.audio_root, workers=2)
    merge(run / "partitions" / "train.csv", features, features / "train", crop=True, pad=True)
    for name in ("val", "test"):
        merge(run / "partitions" / f"{name}.csv", features, features / name, crop=True, pad=True,
              stats_from=features / "train" / STATS_FILE)
    shutil.copy(features / "train" / STATS_FILE, features / STATS_FILE)
    train_ids = read_tidfile(run / "partitions" / "train.csv").track_ids
    embed_tags(manifest, train_ids, run / "targets")
    embed_text(manifest, train_ids, run / "targets")
    return run


def demo_metadata(tmp_path: Path, n_tracks: int, seed: int = DEMO_SEED) -> Manifest:
    """The demo collection's manifest without rendering audio (seconds even at 600 tracks)."""
    from musicrep.data.manifest import conform_frame, write_manifest
    from musicrep.data.sources.demo import TAGSETS, plan_collection, plan_frame

    frame = conform_frame(plan_frame(*plan_collection(n_tracks, seed)), list(TAGSETS), normalize_tags=True)
    manifest = Manifest(frame=frame, tagsets=list(TAGSETS), audio_root=tmp_path / "audio")
    write_manifest(manifest, tmp_path / "manifest.parquet")
    return manifest


@dataclass
class CliResult:
    exit_code: int
    stdout: str
    stderr: str


def run_cli(*args: str | Path) -> CliResult:
    """Run ``musicrep`` in-process (fast) and capture its output."""
    import logging

    from musicrep.cli import app

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    try:
        result = CliRunner().invoke(app, [str(a) for a in args])
    finally:  # the CLI points logging at the runner's stream, which is closed once it returns
        root.handlers[:] = handlers
        root.setLevel(level)
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return CliResult(result.exit_code, result.stdout, result.stderr)


def run_musicrep(*args: str | Path, timeout: float = 300) -> CliResult:
    """Run the installed ``musicrep`` script as a user would, in a subprocess."""
    script = Path(sys.executable).parent / "musicrep"
    proc = subprocess.run([str(script), *map(str, args)], capture_output=True, text=True, timeout=timeout)
    return CliResult(proc.returncode, proc.stdout, proc.stderr)


def write_tone(path: Path, *, seconds: float = 1.0, sr: int = 22050, channels: int = 1,
               freq: float = 440.0) -> Path:
    """Write a real audio file (format from the extension) holding a sine tone."""
    import numpy as np
    import soundfile as sf

    t = np.arange(int(seconds * sr)) / sr
    y = 0.3 * np.sin(2 * np.pi * freq * t)
    y = np.stack([y] * channels, axis=1)
    path.parent.mkdir(parents=True, exist_ok=True)
    subtype = {"mp3": "MPEG_LAYER_III", "ogg": "VORBIS"}.get(path.suffix.lstrip("."))
    sf.write(path, y, sr, subtype=subtype)
    return path
