"""Commands of the data stages: align, info, partition, demo."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from musicrep.cli.common import (
    EXIT_ITEM_FAILURES,
    EXIT_OK,
    SHOWN_PROBLEMS,
    err,
    guarded,
    logger,
    parse_numbers,
    print_line,
    progress_bar,
    report_problems,
    stdout,
)
from musicrep.data.sources import source_names


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
    from musicrep.data.align import align as align_collection
    from musicrep.data.sources import make_source

    adapter = make_source(
        source, audio_root=audio_root, labels=labels, reviews=reviews, metadata=metadata,
        tsv=tsv, tracks=tracks, seed=seed, jobs=jobs,
    )
    with progress_bar(f"align {source}") as update:
        report = align_collection(adapter, out, check_audio=not no_audio_check, on_progress=update)
    kept = sum(p.action == "kept" for p in report.problems)
    dropped = len(report.problems) - kept
    print_line(f"{report.manifest_path}: {report.n_tracks} tracks; "
           f"{dropped} dropped, {kept} kept with a problem")
    report_problems(report.problems, report.problems_path)
    return EXIT_ITEM_FAILURES if report.problems else EXIT_OK


@guarded
def info(
    manifest: Annotated[Path, typer.Argument(help="A manifest.parquet written by `musicrep align`.")],
    top: Annotated[int, typer.Option(help="Most frequent labels shown per tagset.")] = 10,
    no_audio_check: Annotated[bool, typer.Option("--no-audio-check", help="Do not look for the audio files.")] = False,
) -> int:
    """Print what a manifest holds: counts, tagset coverage, top labels, text, languages, durations, formats."""
    from musicrep.data.info import manifest_info
    from musicrep.data.manifest import read_manifest

    loaded = read_manifest(manifest)
    summary = manifest_info(loaded, top=top, check_audio=not no_audio_check)
    print_line(f"{manifest}: {summary.n_tracks} tracks, {summary.n_artists} artists, {summary.n_albums} albums; "
           f"audio root {loaded.audio_root}")
    table = Table("tagset", "tracks", "share", "labels", "tags/track", title="tagset coverage")
    for row in summary.coverage.itertuples(index=False):
        table.add_row(row.tagset, str(row.tracks), f"{row.share:.1%}", str(row.labels), f"{row[4]:.2f}")
    stdout.print(table)
    for tagset, counts in summary.top_labels.items():
        print_line(f"top {tagset}: " + ", ".join(f"{label} ({n})" for label, n in counts.items()))
    share = summary.n_text / summary.n_tracks if summary.n_tracks else 0.0
    print_line(f"text: {summary.n_text} tracks ({share:.1%}); languages: "
           + ", ".join(f"{k} ({v})" for k, v in summary.languages.items()))
    print_line("durations: " + ", ".join(f"{k} ({v})" for k, v in summary.durations.items())
           + (f"; not probed {summary.unprobed}" if summary.unprobed else ""))
    print_line("formats: " + ", ".join(f"{k} ({v})" for k, v in summary.formats.items()))
    if no_audio_check:
        return EXIT_OK
    print_line(f"missing audio: {len(summary.missing_audio)}")
    for path in summary.missing_audio[:SHOWN_PROBLEMS]:
        err.print(f"  {loaded.audio_file(path)}: audio file missing", markup=False)
    return EXIT_ITEM_FAILURES if summary.missing_audio else EXIT_OK


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
    from musicrep.data.manifest import read_manifest
    from musicrep.data.partition import PartitionConfig, adopt_partitions, partition, write_partitions

    loaded = read_manifest(manifest)
    if from_files:
        parts = adopt_partitions(loaded, list(from_files))
    else:
        config = PartitionConfig(
            fractions=parse_numbers(fractions, float, 3, "--fractions", "0.8,0.1,0.1"), group=group,
            stratify=None if stratify == "none" else stratify,
            train_with_text=train_with_text, val_fraction=val_fraction, seed=seed,
        )
        parts = partition(loaded, config)
    summary = write_partitions(loaded, parts, out)
    print_summary(summary, parts.stratify)
    print_line(f"wrote {out}/train.csv, val.csv, test.csv, summary.csv")
    report_problems(parts.problems, out / "partition_problems.csv")
    for note in parts.empty_splits:
        err.print(f"  {note} (the partition files are written)", markup=False)
    return EXIT_ITEM_FAILURES if parts.problems or parts.empty_splits else EXIT_OK


def _figure(value: float | None) -> str:
    return f"{value:.3f}" if value is not None and math.isfinite(value) else "n/a"


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



@guarded
def demo(
    out: Annotated[Path, typer.Option(help="Run directory.")] = Path("runs/demo"),
    tracks: Annotated[int, typer.Option(help="Tracks in the generated collection.")] = 600,
    seed: Annotated[int, typer.Option(help="Seed of the collection and the splits.")] = 0,
    jobs: Annotated[int | None, typer.Option(help="Processes (default: up to 4).")] = None,
    force: Annotated[bool, typer.Option("--force", help="Redo finished stages.")] = False,
    train: Annotated[bool, typer.Option("--train/--no-train", help="Train configs/demo.toml, export RUN/model, embed the splits, evaluate them and build the search index (--no-train: stop after the triplets).")] = True,
) -> int:
    """Run every stage built so far on the generated demo collection, into one run directory.

    align, partition, extract, merge, tag and text spaces, triplets, then training
    of the demo recipe (the multi-task CBMI 2019 recipe at demo size), the model
    folder RUN/model, embeddings of every split in RUN/embeddings, the test-split
    report next to the baselines in RUN/report and the search index in RUN/index;
    ends with the command that serves it.
    """
    from musicrep.pipeline import read_summary, run_demo

    def epoch_line(epoch: int, metrics: dict[str, float]) -> None:
        err.print(f"  train epoch {epoch}: loss {metrics.get('loss', float('nan')):.3f}, val nDCG@10 "
                  f"{metrics.get('val/ndcg@10', float('nan')):.3f}", markup=False)

    with progress_bar("demo") as update:
        report = run_demo(out, tracks=tracks, seed=seed, jobs=jobs, force=force, train=train,
                          on_stage=lambda name: logger.info("stage %s", name), on_progress=update,
                          on_epoch=epoch_line)
    for stage in report.stages:
        print_line(f"{stage.name}: {'already done (skipped)' if stage.skipped else 'done'}")
    expected = [p for p in report.problems if p.track_id in report.expected]
    print_line(f"problems: {len(expected)} expected (deliberately broken demo files), "
           f"{len(report.unexpected)} unexpected")
    for problem in expected:
        print_line(f"  expected: {problem.file}: {problem.reason} "
               f"({report.expected[problem.track_id]}, {problem.action})")
    report_problems(report.unexpected, out / "manifest_problems.csv")
    print_summary(read_summary(out), "genres")
    if report.training:
        figures = report.training["validation"]
        print_line(f"training ({report.training['epochs']} epochs): validation nDCG@10 (artist excluded) "
                   f"{_figure(figures.get('ndcg@10'))} trained, {_figure(figures.get('untrained_ndcg@10'))} "
                   f"the same network untrained, ceiling {_figure(figures.get('ceiling_ndcg@10'))}")
        print_line("embeddings: " + ", ".join(f"{name} {n}" for name, n in report.embeddings.items())
                   + f" tracks in {out / 'embeddings'}")
    if report.metrics:
        from musicrep.evaluation.report import main_table, markdown_table

        print_line(f"evaluation on the test split (artist filtered; {out / 'report' / 'report.md'}):")
        for line in markdown_table(*main_table(report.metrics)):
            print_line(line)
    mined = report.triplets
    print_line(f"triplets ({mined['space']} space): {mined['triplets']} from {mined['anchors']} train anchors over "
           f"{mined['unique_vectors']} unique target vectors; {mined['anchors_with_positive']} anchors have a positive")
    print_line(f"run directory: {out}")
    if report.index:
        failed = report.index["failed"]
        broken = sum(track_id in report.expected for track_id, _ in failed)
        print_line(f"index: {report.index['indexed']} tracks in {out / 'index'}; {len(failed)} not indexable "
                   f"({broken} of them the demo's broken files)")
        print_line(f"serve it: musicrep serve --index {out / 'index'}   (then open http://127.0.0.1:8000/)")
    return EXIT_ITEM_FAILURES if report.unexpected else EXIT_OK
