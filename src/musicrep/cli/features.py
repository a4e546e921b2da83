"""Commands of the feature stages: extract, merge (the original melspecs_extract.py / melspecs_merge.py flags)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import (
    EXIT_ITEM_FAILURES,
    EXIT_OK,
    SHOWN_PROBLEMS,
    configure_logging,
    err,
    guarded,
    print_line,
    progress_bar,
)
from musicrep.errors import UsageError


@guarded
def extract_command(
    tidfile: Annotated[Path, typer.Option(help="Partition file of track ids (CSV with header track_id,filename).")],
    dst: Annotated[Path, typer.Option(help="Directory for the per-track features.")],
    workers: Annotated[int | None, typer.Option(help="Processes (default 1); with --scheduler: tasks in flight, and the local cluster's workers (default: one per core).")] = None,
    crop: Annotated[bool, typer.Option("--crop", help="Keep the first --frames frames (880) of longer audio.")] = False,
    pad: Annotated[bool, typer.Option("--pad", help="Pad shorter audio to --frames frames (880).")] = False,
    skip: Annotated[bool, typer.Option("--skip", help="Skip tracks already extracted (resume a run).")] = False,
    precision: Annotated[int, typer.Option(help="Store as 16- or 32-bit float.")] = 32,
    audio_root: Annotated[Path | None, typer.Option(help="Folder the tidfile's filenames are relative to.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Take audio paths from this manifest instead of the tidfile.")] = None,
    preset: Annotated[str, typer.Option(help="Front-end parameters: original (22,050 Hz, n_fft 1024, hop 256, 128 Slaney mels, stereo, 3-14 s segment).")] = "original",
    sample_rate: Annotated[int | None, typer.Option(help="Override the preset's sample rate (Hz).")] = None,
    n_fft: Annotated[int | None, typer.Option(help="Override the preset's FFT size.")] = None,
    hop_length: Annotated[int | None, typer.Option(help="Override the preset's hop (samples).")] = None,
    n_mels: Annotated[int | None, typer.Option(help="Override the preset's number of mel bands.")] = None,
    mono: Annotated[bool, typer.Option("--mono", help="One channel, the mean of all (default: two, mono duplicated).")] = False,
    segment: Annotated[str, typer.Option(help="original (3-14 s if longer than 14 s, else the first 11 s) or full (the whole file).")] = "original",
    frames: Annotated[int, typer.Option(help="Length for --crop / --pad, in frames.")] = 880,
    pad_value: Annotated[str, typer.Option(help="Padded frames: floor (-80 dB) or original (0 dB, as the original script).")] = "floor",
    scheduler: Annotated[str | None, typer.Option(help="Run on dask.distributed: local (a LocalCluster) or tcp://HOST:PORT (workers need the same paths).")] = None,
    allow_failures: Annotated[bool, typer.Option("--allow-failures", help="Exit 0 even when tracks failed.")] = False,
    log_level: Annotated[str | None, typer.Option("--log-level", help="Logging level (as the original flag).")] = None,
) -> int:
    """Extract log-mel spectrograms per track (the original melspecs_extract.py flags).

    One .npy per track under DST, every track's state in DST/extract_log.csv;
    rerun with --skip to resume after a crash.
    """
    from musicrep.data.manifest import read_manifest
    from musicrep.features.extract import ExtractConfig, extract
    from musicrep.tables import read_tidfile

    if log_level is not None:
        configure_logging(log_level)
    config = ExtractConfig.from_preset(
        preset, mel_overrides={"sr": sample_rate, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels},
        crop=crop, pad=pad, frames=frames, precision=precision, pad_value=pad_value, mono=mono, segment=segment)
    config.validate()
    if manifest is not None and audio_root is not None:
        raise UsageError("--manifest and --audio-root exclude each other: the manifest knows its audio root "
                         "(give the tidfile's filenames with --audio-root, or the manifest's paths with --manifest)")
    listed = read_tidfile(tidfile, need_filename=manifest is None)
    tracks = listed.tracks
    root = audio_root
    if manifest is not None:
        loaded = read_manifest(manifest)
        paths = {t: str(loaded.audio_file(p)) for t, p in zip(loaded.frame.track_id, loaded.frame.audio_path,
                                                                 strict=True)}
        tracks = tracks.assign(filename=tracks.track_id.map(paths).fillna(""))
        root = None
    elif root is None:
        root = tidfile.parent
    with progress_bar("extract") as update:
        report = extract(tracks, dst, config, audio_root=root, workers=workers, scheduler=scheduler, skip=skip,
                         on_progress=update, rejected=listed.problems,
                         missing_filename="track id not in the manifest" if manifest is not None else "no filename")
    print_line(f"{dst}: {report.count('ok')} extracted, {report.count('skipped')} skipped, "
           f"{report.count('failed')} failed (log: {dst / 'extract_log.csv'})")
    for result in report.failed[:SHOWN_PROBLEMS]:
        err.print(f"  {_item(result.track_id, result.message)}", markup=False)
    if len(report.failed) > SHOWN_PROBLEMS:
        err.print(f"  ... {len(report.failed) - SHOWN_PROBLEMS} more", markup=False)
    return EXIT_ITEM_FAILURES if report.failed and not allow_failures else EXIT_OK


@guarded
def merge_command(
    tidfile: Annotated[Path, typer.Option(help="Partition file (track_id,filename); rows keep its order.")],
    src: Annotated[Path, typer.Option(help="The extract output folder.")],
    dst: Annotated[Path, typer.Option(help="Output folder: features.npy, index.csv, store.json, stats.npz.")],
    crop: Annotated[bool, typer.Option("--crop", help="Crop longer arrays to --frames.")] = False,
    pad: Annotated[bool, typer.Option("--pad", help="Pad shorter arrays to --frames.")] = False,
    frames: Annotated[int | None, typer.Option(help="Length for --crop / --pad (default: the extraction's, 880).")] = None,
    stats_from: Annotated[Path | None, typer.Option(help="stats.npz to reuse, or the train tidfile to compute statistics over (default: this tidfile).")] = None,
    normalize: Annotated[bool, typer.Option("--normalize", help="Store (x - mean) / std instead of raw dB.")] = False,
    log_level: Annotated[str | None, typer.Option("--log-level", help="Logging level (as the original flag).")] = None,
) -> int:
    """Merge per-track arrays into one memory-mappable store (the original melspecs_merge.py flags)."""
    from musicrep.features.merge import merge

    if log_level is not None:
        configure_logging(log_level)
    with progress_bar("merge") as update:
        report = merge(tidfile, src, dst, crop=crop, pad=pad, frames=frames, stats_from=stats_from, normalize=normalize,
                       on_progress=update)
    print_line(f"{dst}/features.npy: {report.n_tracks} tracks, shape {report.shape}; {len(report.left_out)} left out "
           f"(listed in {dst / 'left_out.csv'}); statistics {report.stats_path or 'none (no tracks)'}")
    for track_id, reason in report.left_out[:SHOWN_PROBLEMS]:
        err.print(f"  {_item(track_id, reason)}", markup=False)
    return EXIT_ITEM_FAILURES if report.left_out else EXIT_OK


def _item(track_id: str, reason: str) -> str:
    """``ID: reason``, or the reason alone for a tidfile row without an id."""
    return f"{track_id}: {reason}" if track_id else reason
