"""The ``musicrep`` command: a thin typer app over the stage functions.

Exit codes, for every command: 0 = everything ok; 1 = finished with item
failures (listed with file and reason); 2 = usage/config error or could not
run. Errors are one line; ``--log-level debug`` adds the traceback.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)
from rich.table import Table

from musicrep.errors import MusicrepError, UsageError
from musicrep.sources import Problem, ProgressFn, source_names

logger = logging.getLogger("musicrep")

app = typer.Typer(
    name="musicrep",
    help=(
        "Learn audio representations of music from tags and multilingual text.\n\n"
        "Stages, in data-flow order: align -> partition -> extract/merge -> "
        "embed-tags/embed-text/mine-triplets -> train -> embed/evaluate/index/search/serve. "
        "`musicrep demo` runs every built stage on a generated collection.\n\n"
        "Exit codes: 0 ok, 1 finished with item failures, 2 usage error or could not run."
    ),
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
err = Console(stderr=True, highlight=False, soft_wrap=True)
stdout = Console(highlight=False, soft_wrap=True)

EXIT_OK, EXIT_ITEM_FAILURES, EXIT_ERROR = 0, 1, 2
_SHOWN_PROBLEMS = 20


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option("--log-level", help="Logging level: debug, info, warning, error.")
    ] = "warning",
) -> None:
    try:
        configure_logging(log_level)
    except UsageError as exc:
        raise typer.BadParameter(str(exc)) from None


_LOG_LEVELS = ("debug", "info", "warning", "error")


def configure_logging(log_level: str) -> None:
    """Plain one-line records on stderr (warnings stay greppable and never wrap) at ``log_level``."""
    if log_level.lower() not in _LOG_LEVELS:
        raise UsageError(f"--log-level must be {', '.join(_LOG_LEVELS[:-1])} or {_LOG_LEVELS[-1]} (got {log_level!r})")
    level = getattr(logging, log_level.upper())
    logging.basicConfig(level=level, format="%(levelname)s: %(message)s", stream=sys.stderr, force=True)


def guarded(command: Callable[..., int | None]) -> Callable[..., None]:
    """Wrap a command: its return value is the exit code; errors become one line and exit 2."""

    @functools.wraps(command)
    def wrapper(*args: object, **kwargs: object) -> None:
        try:
            code = command(*args, **kwargs)
        except typer.Exit:
            raise
        except MusicrepError as exc:
            logger.debug("traceback", exc_info=True)
            err.print(f"error: {exc}", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        except KeyboardInterrupt:
            err.print("error: interrupted", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        except Exception as exc:  # a bug: still one line; the traceback with --log-level debug
            logger.debug("traceback", exc_info=True)
            err.print(f"error: internal error: {type(exc).__name__}: {exc} "
                      "(run with --log-level debug for the traceback)", markup=False)
            raise typer.Exit(EXIT_ERROR) from None
        raise typer.Exit(code or EXIT_OK)

    return wrapper


@contextlib.contextmanager
def progress_bar(description: str) -> Iterator[ProgressFn]:
    """A rich progress bar (rate and ETA) on stderr; yields a ``(done, total)`` callback."""
    columns = [
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
        TextColumn("{task.fields[rate]}"), TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
    ]
    with Progress(*columns, console=err, transient=False, disable=not err.is_terminal) as bar:
        task = bar.add_task(description, total=None, rate="")

        def update(done: int, total: int) -> None:
            speed = bar.tasks[task].speed
            bar.update(task, completed=done, total=total, rate=f"{speed:.1f}/s" if speed else "")

        yield update


def report_problems(problems: list[Problem], where: Path | None) -> None:
    """Print the first problems, one line each, and where the full list is."""
    for problem in problems[:_SHOWN_PROBLEMS]:
        where_ = ": ".join(x for x in (problem.file, problem.track_id) if x)
        err.print(f"  {where_}: {problem.reason} [{problem.action}]", markup=False)
    if len(problems) > _SHOWN_PROBLEMS:
        err.print(f"  ... {len(problems) - _SHOWN_PROBLEMS} more", markup=False)
    if problems and where is not None:
        err.print(f"  full list: {where}", markup=False)


# --------------------------------------------------------------------------- align


@app.command()
@guarded
def align(
    source: Annotated[str, typer.Option(help=f"Collection adapter: {', '.join(source_names())}.")],
    out: Annotated[Path, typer.Option(help="Output folder for manifest.parquet and manifest_problems.csv.")],
    audio_root: Annotated[
        Path | None, typer.Option(help="Audio folder (msd-amg: MSD tree ROOT/t[2]/t[3]/t[4]/tid.mp3; folder; jamendo).")
    ] = None,
    labels: Annotated[Path | None, typer.Option(help="msd-amg: msd_amglabels_all.h5 (pandas HDF5, key 'data').")] = None,
    reviews: Annotated[
        Path | None, typer.Option(help="msd-amg: album reviews, CSV or JSON lines (artist, album/release, text[, language]).")
    ] = None,
    metadata: Annotated[
        Path | None, typer.Option(help="folder: CSV/JSON-lines metadata (path or track_id, artist, album, title, <tagset> ';'-separated, text).")
    ] = None,
    tsv: Annotated[list[Path] | None, typer.Option(help="jamendo: MTG-Jamendo autotagging TSV file(s); repeat the option.")] = None,
    tracks: Annotated[int | None, typer.Option(help="demo: number of tracks (default 600).")] = None,
    seed: Annotated[int | None, typer.Option(help="demo: seed (default 0).")] = None,
    jobs: Annotated[int | None, typer.Option(help="demo: processes that render audio.")] = None,
    no_audio_check: Annotated[
        bool, typer.Option("--no-audio-check", help="Do not open audio files (metadata-only runs at scale).")
    ] = False,
) -> int:
    """Align audio, tags and text of a collection into one validated manifest."""
    from musicrep.align import align as align_collection
    from musicrep.sources import make_source

    adapter = make_source(
        source, audio_root=audio_root, labels=labels, reviews=reviews, metadata=metadata,
        tsv=tsv, tracks=tracks, seed=seed, jobs=jobs,
    )
    with progress_bar(f"align {source}") as update:
        report = align_collection(adapter, out, check_audio=not no_audio_check, on_progress=update)
    kept = sum(p.action == "kept" for p in report.problems)
    dropped = len(report.problems) - kept
    _print(f"{report.manifest_path}: {report.n_tracks} tracks; "
           f"{dropped} dropped, {kept} kept with a problem")
    report_problems(report.problems, report.problems_path)
    return EXIT_ITEM_FAILURES if report.problems else EXIT_OK


# --------------------------------------------------------------------------- info


@app.command()
@guarded
def info(
    manifest: Annotated[Path, typer.Argument(help="A manifest.parquet written by `musicrep align`.")],
    top: Annotated[int, typer.Option(help="Most frequent labels shown per tagset.")] = 10,
    no_audio_check: Annotated[bool, typer.Option("--no-audio-check", help="Do not look for the audio files.")] = False,
) -> int:
    """Print what a manifest holds: counts, tagset coverage, top labels, text, languages, durations, formats."""
    from musicrep.info import manifest_info
    from musicrep.manifest import read_manifest

    loaded = read_manifest(manifest)
    summary = manifest_info(loaded, top=top, check_audio=not no_audio_check)
    _print(f"{manifest}: {summary.n_tracks} tracks, {summary.n_artists} artists, {summary.n_albums} albums; "
           f"audio root {loaded.audio_root}")
    table = Table("tagset", "tracks", "share", "labels", "tags/track", title="tagset coverage")
    for row in summary.coverage.itertuples(index=False):
        table.add_row(row.tagset, str(row.tracks), f"{row.share:.1%}", str(row.labels), f"{row[4]:.2f}")
    stdout.print(table)
    for tagset, counts in summary.top_labels.items():
        _print(f"top {tagset}: " + ", ".join(f"{label} ({n})" for label, n in counts.items()))
    share = summary.n_text / summary.n_tracks if summary.n_tracks else 0.0
    _print(f"text: {summary.n_text} tracks ({share:.1%}); languages: "
           + ", ".join(f"{k} ({v})" for k, v in summary.languages.items()))
    _print("durations: " + ", ".join(f"{k} ({v})" for k, v in summary.durations.items())
           + (f"; not probed {summary.unprobed}" if summary.unprobed else ""))
    _print("formats: " + ", ".join(f"{k} ({v})" for k, v in summary.formats.items()))
    if no_audio_check:
        return EXIT_OK
    _print(f"missing audio: {len(summary.missing_audio)}")
    for path in summary.missing_audio[:_SHOWN_PROBLEMS]:
        err.print(f"  {loaded.audio_file(path)}: audio file missing", markup=False)
    return EXIT_ITEM_FAILURES if summary.missing_audio else EXIT_OK


# --------------------------------------------------------------------------- partition


@app.command(name="partition")
@guarded
def partition_command(
    manifest: Annotated[Path, typer.Option(help="manifest.parquet to split.")],
    out: Annotated[Path, typer.Option(help="Output folder for train.csv, val.csv, test.csv, summary.csv.")],
    fractions: Annotated[str, typer.Option(help="Train,val,test shares of tracks.")] = "0.8,0.1,0.1",
    group: Annotated[str, typer.Option(help="Keep each artist|album together, or none.")] = "artist",
    stratify: Annotated[
        str, typer.Option(help="Tagset to stratify over; 'auto' = genres if present, else the first; 'none'.")
    ] = "auto",
    train_with_text: Annotated[
        bool, typer.Option("--train-with-text", help="Original rule: groups with reviewed tracks -> train/val, the rest -> test.")
    ] = False,
    val_fraction: Annotated[float, typer.Option(help="With --train-with-text: share of reviewed groups in val.")] = 0.01,
    seed: Annotated[int, typer.Option(help="Seed of tie-breaking.")] = 0,
    from_files: Annotated[
        list[Path] | None,
        typer.Option("--from", help="Adopt existing splits: original tidfiles or MTG-Jamendo split TSVs (repeat)."),
    ] = None,
) -> int:
    """Split a manifest into leak-free train/val/test partition files (track_id,filename)."""
    from musicrep.manifest import read_manifest
    from musicrep.partition import PartitionConfig, adopt_partitions, partition, write_partitions

    loaded = read_manifest(manifest)
    if from_files:
        parts = adopt_partitions(loaded, list(from_files))
    else:
        config = PartitionConfig(
            fractions=_parse_numbers(fractions, float, 3, "--fractions", "0.8,0.1,0.1"), group=group,
            stratify=None if stratify == "none" else stratify,
            train_with_text=train_with_text, val_fraction=val_fraction, seed=seed,
        )
        parts = partition(loaded, config)
    summary = write_partitions(loaded, parts, out)
    print_summary(summary, parts.stratify)
    _print(f"wrote {out}/train.csv, val.csv, test.csv, summary.csv")
    report_problems(parts.problems, out / "partition_problems.csv")
    for note in parts.empty_splits:
        err.print(f"  {note} (the partition files are written)", markup=False)
    return EXIT_ITEM_FAILURES if parts.problems or parts.empty_splits else EXIT_OK


def _parse_numbers(text: str, kind: type, count: int, option: str, example: str) -> tuple:
    """``"0.8,0.1,0.1"`` -> numbers, or a one-line usage error naming the option."""
    try:
        values = tuple(kind(v) for v in text.split(","))
    except ValueError:
        values = ()
    if len(values) != count:
        raise UsageError(f"{option} must be {count} numbers like {example} (got {text!r})")
    return values


def print_summary(summary, stratify: str | None, top: int = 12) -> None:
    """Print the split summary: totals, leak check, and the stratified label distribution."""
    table = Table("", "train", "val", "test", "total", title="partitions")
    for row in summary[summary.tagset == "*"].itertuples(index=False):
        table.add_row(row.label, str(row.train), str(row.val), str(row.test), str(row.total))
    if stratify:
        labels = summary[summary.tagset == stratify].head(top)
        for row in labels.itertuples(index=False):
            shares = [f"{getattr(row, s) / row.total:.0%}" if row.total else "-" for s in ("train", "val", "test")]
            table.add_row(f"{stratify}: {row.label}", *shares, str(row.total))
    stdout.print(table)


# --------------------------------------------------------------------------- demo


@app.command()
@guarded
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
    tracks: Annotated[int, typer.Option(help="Tracks in the generated collection.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the collection and the splits.")] = 0,
    jobs: Annotated[int | None, typer.Option(help="Processes (default: up to 4).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo finished stages.")] = False,
) -> int:
    """Run every stage built so far on the generated demo collection, into one run directory."""
    from musicrep.pipeline import read_summary, run_demo

    with progress_bar("demo") as update:
        report = run_demo(out, tracks=tracks, seed=seed, jobs=jobs, force=force,
                          on_stage=lambda name: logger.info("stage %s", name), on_progress=update)
    for stage in report.stages:
        _print(f"{stage.name}: {'already done (skipped)' if stage.skipped else 'done'}")
    expected = [p for p in report.problems if p.track_id in report.expected]
    _print(f"problems: {len(expected)} expected (deliberately broken demo files), "
           f"{len(report.unexpected)} unexpected")
    for problem in expected:
        _print(f"  expected: {problem.file}: {problem.reason} "
               f"({report.expected[problem.track_id]}, {problem.action})")
    report_problems(report.unexpected, out / "manifest_problems.csv")
    print_summary(read_summary(out), "genres")
    mined = report.triplets
    _print(f"triplets ({mined['space']} space): {mined['triplets']} from {mined['anchors']} train anchors over "
           f"{mined['unique_vectors']} unique target vectors; {mined['anchors_with_positive']} anchors have a positive")
    _print(f"run directory: {out}")
    return EXIT_ITEM_FAILURES if report.unexpected else EXIT_OK


# --------------------------------------------------------------------------- targets


def _read_partition(tidfile: Path) -> tuple[list[str], int]:
    """The ids of a tidfile, its unusable rows printed one per line; returns (ids, problem count)."""
    from musicrep.tables import read_tidfile

    listed = read_tidfile(tidfile)
    _print_lines(listed.problem_lines())
    return listed.track_ids, len(listed.problems)


def _print_lines(lines: list[str]) -> None:
    """Print the first problem lines on stderr, then how many more there are."""
    for line in lines[:_SHOWN_PROBLEMS]:
        err.print(f"  {line}", markup=False)
    if len(lines) > _SHOWN_PROBLEMS:
        err.print(f"  ... {len(lines) - _SHOWN_PROBLEMS} more", markup=False)


def _report_spaces(report, what: str) -> int:
    for folder in report.spaces:
        from musicrep.targets.space import load_space

        space = load_space(folder)
        _print(f"{folder}: {len(space.ids)} vectors x {space.model.dims} dims, vocabulary "
               f"{len(space.model.vocabulary)}, {len(space.missing)} tracks without {what}, space_id {space.space_id[:12]}")
    if report.unknown_train_ids:
        err.print(f"  {len(report.unknown_train_ids)} partition id(s) not in the manifest, e.g. "
                  f"{', '.join(report.unknown_train_ids[:5])}", markup=False)
        return EXIT_ITEM_FAILURES
    return EXIT_OK


@app.command(name="embed-tags")
@guarded
def embed_tags_command(
    manifest: Annotated[Path, typer.Option(help="manifest.parquet.")],
    tidfile: Annotated[Path, typer.Option("--tidfile", "--partition", help="Partition the spaces are fitted on (train.csv); every track is projected.")],
    out: Annotated[Path, typer.Option(help="Output folder: joint/ and one folder per tagset.")],
    tagsets: Annotated[str | None, typer.Option(help="Comma-separated tagsets (default: all in the manifest).")] = None,
    dims: Annotated[int, typer.Option(help="LSI dimensions (capped by the vocabulary).")] = 340,
    min_tag_count: Annotated[int, typer.Option(help="Drop tags used by fewer training tracks (listed in dropped_tags.csv).")] = 1,
    seed: Annotated[int, typer.Option(help="Seed of the randomized SVD.")] = 0,
) -> int:
    """Build TF-IDF + LSI tag spaces: one joint space over all tagsets and one per tagset."""
    from musicrep.manifest import read_manifest
    from musicrep.targets.tags import embed_tags

    loaded = read_manifest(manifest)
    train_ids, bad_rows = _read_partition(tidfile)
    with progress_bar("embed-tags (spaces)") as update:
        report = embed_tags(loaded, train_ids, out, dims=dims, min_tag_count=min_tag_count,
                            seed=seed, on_progress=update,
                            tagsets=[t.strip() for t in tagsets.split(",") if t.strip()] if tagsets else None)
    return max(_report_spaces(report, "tags"), EXIT_ITEM_FAILURES if bad_rows else EXIT_OK)


@app.command(name="embed-text")
@guarded
def embed_text_command(
    manifest: Annotated[Path, typer.Option(help="manifest.parquet.")],
    tidfile: Annotated[Path, typer.Option("--tidfile", "--partition", help="Partition the space is fitted on (train.csv); every track is projected.")],
    out: Annotated[Path, typer.Option(help="Output folder: text/.")],
    dims: Annotated[int, typer.Option(help="LSI dimensions (capped by the vocabulary).")] = 300,
    min_df: Annotated[int, typer.Option(help="Drop terms in fewer distinct training texts.")] = 2,
    max_df: Annotated[float, typer.Option(help="Drop terms in more than this share of training texts.")] = 0.5,
    max_features: Annotated[int, typer.Option(help="Keep at most this many terms.")] = 200_000,
    stop_words: Annotated[bool, typer.Option("--stop-words/--no-stop-words", help="Remove the shipped stop words of each document's own language (manifest language column).")] = True,
    char_ngrams: Annotated[str | None, typer.Option(help="Character n-grams of words instead of words, e.g. 3,5.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the randomized SVD.")] = 0,
) -> int:
    """Build a TF-IDF + LSI space from unstructured multilingual text (no translation, no download)."""
    from musicrep.manifest import read_manifest
    from musicrep.targets.text import embed_text

    ngrams = _parse_numbers(char_ngrams, int, 2, "--char-ngrams", "3,5") if char_ngrams else None
    train_ids, bad_rows = _read_partition(tidfile)
    report = embed_text(read_manifest(manifest), train_ids, out, dims=dims, min_df=min_df,
                        max_df=max_df, max_features=max_features, stop_words=stop_words, char_ngrams=ngrams,
                        seed=seed)
    return max(_report_spaces(report, "text"), EXIT_ITEM_FAILURES if bad_rows else EXIT_OK)


@app.command(name="mine-triplets")
@guarded
def mine_triplets_command(
    space: Annotated[Path, typer.Option(help="A space folder (e.g. targets/joint or targets/text).")],
    tidfile: Annotated[Path, typer.Option("--tidfile", "--partition", help="Partition of anchors and candidates (train.csv).")],
    out: Annotated[Path, typer.Option(help="Output triplets.parquet.")],
    pos: Annotated[float, typer.Option(help="Positive: cosine >= this.")] = 0.90,
    neg: Annotated[float, typer.Option(help="Negative: the most similar track below this cosine.")] = 0.85,
    max_pos: Annotated[int, typer.Option(help="Positives per anchor, at most.")] = 10,
    exclude_same_artist: Annotated[bool, typer.Option("--exclude-same-artist", help="Never pair an anchor with its own artist.")] = False,
    manifest: Annotated[Path | None, typer.Option(help="Manifest for artists (default: the one the space was built from).")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the random draws among equally related tracks.")] = 0,
) -> int:
    """Mine anchor/positive/negative triplets by cosine relatedness in a target space."""
    from musicrep.manifest import read_manifest
    from musicrep.targets.space import load_space
    from musicrep.targets.triplets import MiningConfig, mine_triplets, unmatched_path

    loaded = load_space(space)
    artists = None
    if exclude_same_artist:
        source = manifest or loaded.params.get("manifest")
        if not source:
            raise UsageError("--exclude-same-artist needs --manifest")
        frame = read_manifest(source).frame
        artists = frame.set_index("track_id")["artist"]
    config = MiningConfig(pos=pos, neg=neg, max_pos=max_pos, exclude_same_artist=exclude_same_artist, seed=seed)
    train_ids, bad_rows = _read_partition(tidfile)
    unknown = loaded.unknown_ids(train_ids)
    _print_lines([f"{tidfile}: {track_id!r}: not in the space (neither a vector nor in missing.csv)"
                  for track_id in unknown])
    with progress_bar("mine") as update:
        report = mine_triplets(loaded, train_ids, out, config, artists=artists, on_progress=update)
    _print(f"{out}: {report.n_triplets} triplets; {report.n_anchors} anchors over {report.n_unique} unique vectors; "
           f"{report.n_with_positive} anchors have a positive, {len(report.unmatched)} have no triplet "
           f"(listed in {unmatched_path(Path(out))})")
    return EXIT_ITEM_FAILURES if bad_rows or unknown else EXIT_OK


# --------------------------------------------------------------------------- features


@app.command(name="extract")
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
    from musicrep.extract import ExtractConfig, extract
    from musicrep.manifest import read_manifest
    from musicrep.tables import read_tidfile

    if log_level is not None:
        configure_logging(log_level)
    config = ExtractConfig.from_preset(
        preset, mel_overrides={"sr": sample_rate, "n_fft": n_fft, "hop_length": hop_length, "n_mels": n_mels},
        crop=crop, pad=pad, frames=frames, precision=precision, pad_value=pad_value, mono=mono, segment=segment)
    config.validate()
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
                         on_progress=update, rejected=listed.problems)
    _print(f"{dst}: {report.count('ok')} extracted, {report.count('skipped')} skipped, "
           f"{report.count('failed')} failed (log: {dst / 'extract_log.csv'})")
    for result in report.failed[:_SHOWN_PROBLEMS]:
        err.print(f"  {result.track_id}: {result.message}", markup=False)
    if len(report.failed) > _SHOWN_PROBLEMS:
        err.print(f"  ... {len(report.failed) - _SHOWN_PROBLEMS} more", markup=False)
    return EXIT_ITEM_FAILURES if report.failed and not allow_failures else EXIT_OK


@app.command(name="merge")
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
    from musicrep.merge import merge

    if log_level is not None:
        configure_logging(log_level)
    with progress_bar("merge") as update:
        report = merge(tidfile, src, dst, crop=crop, pad=pad, frames=frames, stats_from=stats_from, normalize=normalize,
                       on_progress=update)
    _print(f"{dst}/features.npy: {report.n_tracks} tracks, shape {report.shape}; {len(report.left_out)} left out "
           f"(listed in {dst / 'left_out.csv'}); statistics {report.stats_path or 'none (no tracks)'}")
    for track_id, reason in report.left_out[:_SHOWN_PROBLEMS]:
        err.print(f"  {track_id}: {reason}", markup=False)
    return EXIT_ITEM_FAILURES if report.left_out else EXIT_OK


# --------------------------------------------------------------------------- later stages

_PLANNED = {
    "train": "Train an audio encoder from a TOML config.",
    "embed": "Embed audio with an exported model.",
    "evaluate": "Evaluate embeddings: retrieval and classification metrics, report.",
    "index": "Build a vector index of embeddings.",
    "search": "Query a vector index.",
    "serve": "Serve search over HTTP with a web page.",
    "run": "Run every stage of a TOML config into one run directory.",
}


def _planned(name: str, summary: str) -> None:
    def command(ctx: typer.Context) -> int:
        raise UsageError(f"`musicrep {name}` is not built yet ({summary})")

    command.__doc__ = f"{summary} [not built yet: exits 2]"
    app.command(
        name=name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True}
    )(guarded(command))


for _name, _summary in _PLANNED.items():
    _planned(_name, _summary)


# --------------------------------------------------------------------------- entry point


def _print(text: str) -> None:
    stdout.print(text, markup=False)


def main() -> None:
    """Entry point of the ``musicrep`` script."""
    app()
