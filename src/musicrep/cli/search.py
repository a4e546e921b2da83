"""Commands of the search stage: index and search."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import (
    EXIT_ITEM_FAILURES,
    EXIT_OK,
    err,
    guarded,
    print_line,
    print_lines,
    progress_bar,
)
from musicrep.errors import UsageError


@guarded
def index_command(
    model: Annotated[Path | None, typer.Option(help="Exported model folder (default: RUN/model, or the model that made --embeddings).")] = None,
    run: Annotated[Path | None, typer.Option(help="Run directory: its manifest, embeddings/, features/ stores, targets/ and partitions/.")] = None,
    embeddings: Annotated[Path | None, typer.Option(help="Instead of --run: an embeddings folder (or a folder of them), with --manifest.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="The collection whose tracks are indexed (default: RUN/manifest.parquet).")] = None,
    targets: Annotated[Path | None, typer.Option(help="Target spaces for tag and text queries (default: targets/ beside the manifest).")] = None,
    partitions: Annotated[Path | None, typer.Option(help="Partitions; linear maps fit on train, choose alpha on val (default: partitions/ beside the manifest).")] = None,
    out: Annotated[Path | None, typer.Option(help="Index folder to write (default: RUN/index).")] = None,
    add: Annotated[bool, typer.Option("--add", help="Add tracks to the index --index without rebuilding it: --audio FILE..., --embeddings DIR [--manifest M] or --manifest M.")] = False,
    index: Annotated[Path | None, typer.Option(help="With --add: the index folder to add to.")] = None,
    audio: Annotated[list[Path] | None, typer.Option(help="With --add: audio files (ids and titles from their names): --audio a.mp3 b.wav ...")] = None,
    files: Annotated[list[Path] | None, typer.Argument(help="More audio files after --audio.", show_default=False)] = None,
    kind: Annotated[str, typer.Option(help="Vector index: auto (exact below --exact-below tracks, FAISS IVF above), exact, faiss-ivf or usearch-hnsw.")] = "auto",
    exact_below: Annotated[int, typer.Option(help="Collections smaller than this are searched exactly.")] = 20000,
    map_method: Annotated[str, typer.Option("--map", help="2-D map: auto (t-SNE up to 10,000 tracks, PCA beyond), tsne or pca.")] = "auto",
    device: Annotated[str, typer.Option(help="Torch device for the tracks still to embed.")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass.")] = 64,
    seed: Annotated[int, typer.Option(help="Seed of the map, the index training and the linear maps' split.")] = 0,
) -> int:
    """Build the search index of a run (or of a manifest with its embeddings), or add tracks to one.

    Tracks not embedded by this model yet are embedded (from the run's feature stores, else from their audio).
    """
    from musicrep.search.add import add_to_index
    from musicrep.search.index import build_index

    if files and not audio:
        raise UsageError(f"unexpected argument {str(files[0])!r} (audio files go after --audio)")
    audio_files = [*(audio or ()), *(files or ())]
    with progress_bar("embed") as update:
        if add:
            target = index or out or (run / "index" if run is not None else None)
            if target is None:
                raise UsageError("--add needs --index IDX (the index to add to)")
            if run is not None:
                raise UsageError("--add takes --audio, --embeddings or --manifest, not --run")
            report = add_to_index(target, model=model, embeddings=embeddings, manifest=manifest, audio=audio_files,
                                  device=device, batch_size=batch_size, on_progress=update)
        else:
            if audio_files or index is not None:
                raise UsageError("--audio and --index go with --add (a new index is written to --out)")
            report = build_index(out, model=model, run=run, embeddings=embeddings, manifest=manifest,
                                 targets=targets, partitions=partitions, kind=kind, exact_below=exact_below,
                                 map_method=map_method, device=device, batch_size=batch_size, seed=seed,
                                 on_progress=update)
    description = report.description
    spaces = ", ".join(f"{name} ({_route(entry)})" for name, entry in description["spaces"].items())
    verb = f"{report.n_added} added" + (f", {report.skipped} already there" if report.skipped else "") if add \
        else "built"
    print_line(f"{report.index_dir}: {report.n_indexed} tracks ({verb}; {report.n_embedded} embedded now), "
               f"{len(report.failed)} failed; spaces: {spaces}; map: {description['map']['method']}")
    if report.assigned:
        for file, track_id in report.assigned:  # ids can differ from the file names: every one is said
            print_line(f"  added {file} as {track_id}")
    if report.failed:
        print_line(f"  not indexed: {len(report.failed)}" + ("" if add else f" (listed in {report.index_dir / 'failed.csv'})"))
        print_lines([f"{track_id}: {reason}" for track_id, reason in report.failed])
    return EXIT_ITEM_FAILURES if report.failed else EXIT_OK


def _route(entry: dict) -> str:
    index = entry["index"]
    searched = index["kind"] + "".join(f" {k} {v}" for k, v in index.get("params", {}).items())
    if entry.get("via") == "head":
        return f"head {entry['head']}, {searched}"
    if entry.get("via") == "linear":
        return f"linear map, val cosine {entry.get('val_cosine')}, {searched}"
    return searched


@guarded
def search_command(
    index: Annotated[Path, typer.Option(help="Index folder (musicrep index).")],
    track: Annotated[str | None, typer.Option(help="An indexed track id: the tracks that sound like it.")] = None,
    audio: Annotated[Path | None, typer.Option(help="An audio file: the tracks that sound like it.")] = None,
    tags: Annotated[str | None, typer.Option(help='Tags, separated by ";" (e.g. "jazz;calm"; "genres:jazz" names the tagset).')] = None,
    text: Annotated[str | None, typer.Option(help="A description in words, in any language of the text space.")] = None,
    # 1000 is musicrep.search.query.MAX_K, written out: the CLI imports the search modules only when they run
    k: Annotated[int, typer.Option("-k", "--k", help="Number of hits, from 1 to 1000.")] = 10,
    exclude_artist: Annotated[bool, typer.Option("--exclude-artist", help="Leave out the query track's artist (track and audio queries).")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON.")] = False,
    model: Annotated[Path | None, typer.Option(help="Model folder (default: the index's); another model is refused.")] = None,
    device: Annotated[str, typer.Option(help="Torch device for audio queries.")] = "cpu",
) -> int:
    """Query an index by track, audio file, tags or free text: exactly one of --track, --audio, --tags, --text."""
    from musicrep.search.query import Searcher

    given = {name: value for name, value in (("--track", track), ("--audio", audio), ("--tags", tags),
                                             ("--text", text)) if value is not None}
    if len(given) != 1:
        found = f"got {' and '.join(given)}" if given else "got none"
        raise UsageError(f"give exactly one query: --track ID, --audio FILE, --tags \"a;b\" or --text \"...\" ({found})")
    if exclude_artist and (tags is not None or text is not None):
        raise UsageError("--exclude-artist goes with --track or --audio (a tag or text query has no artist)")
    searcher = Searcher.open(index, model=model, device=device)
    if track is not None:
        result = searcher.by_track(track, k=k, exclude_artist=exclude_artist)
    elif audio is not None:
        result = searcher.by_audio(audio, k=k, exclude_artist=exclude_artist)
    elif tags is not None:
        result = searcher.by_tags(tags, k=k)
    else:
        result = searcher.by_text(text, k=k)
    unknown = result.query.get("unknown") or []
    if unknown:
        what = "tag" if result.query["kind"] == "tags" else "word"
        err.print(f"warning: not known to the {result.query['space']} space, left out: {', '.join(unknown)} "
                  f"({len(unknown)} {what}{'s' if len(unknown) > 1 else ''})", markup=False)
    if as_json:
        print_line(json.dumps(result.to_dict(), ensure_ascii=False, indent=2))
        return EXIT_OK
    print_line(_header(result.query, len(result.hits)))
    for hit in result.hits:
        reasons = []
        if hit.why.get("shared_tags"):
            reasons.append("shares " + ", ".join(hit.why["shared_tags"]))
        if hit.why.get("terms"):
            reasons.append("text: " + ", ".join(hit.why["terms"]))
        title = " - ".join(x for x in (hit.title, hit.artist) if x) + (f" ({hit.album})" if hit.album else "")
        print_line(f"{hit.rank:>3}  {hit.score:6.3f}  {hit.track_id}  {title}" + (f"  [{'; '.join(reasons)}]"
                                                                               if reasons else ""))
    return EXIT_OK


def _header(query: dict, n_hits: int) -> str:
    value = query["value"] if isinstance(query["value"], str) else ";".join(query["value"])
    line = f"{query['kind']} {value!r} in the {query['space']} space: {n_hits} hits"
    if query.get("same_as"):
        line += f" (the audio is the indexed track {query['same_as']})"
    if query.get("known"):
        line += f"; known: {', '.join(query['known'])}"
    return line
