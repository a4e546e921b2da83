"""Commands of the target stages: embed-tags, embed-text, mine-triplets."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import (
    EXIT_ITEM_FAILURES,
    EXIT_OK,
    err,
    guarded,
    parse_numbers,
    print_line,
    print_lines,
    progress_bar,
)
from musicrep.errors import UsageError


def _read_partition(tidfile: Path) -> tuple[list[str], int]:
    """The ids of a tidfile, its unusable rows printed one per line; returns (ids, problem count)."""
    from musicrep.tables import read_tidfile

    listed = read_tidfile(tidfile)
    print_lines(listed.problem_lines())
    return listed.track_ids, len(listed.problems)


def _report_spaces(report, what: str) -> int:
    for folder in report.spaces:
        from musicrep.targets.space import load_space

        space = load_space(folder)
        print_line(f"{folder}: {len(space.ids)} vectors x {space.model.dims} dims, vocabulary "
               f"{len(space.model.vocabulary)}, {len(space.missing)} tracks without {what}, space_id {space.space_id[:12]}")
    if report.unknown_train_ids:
        err.print(f"  {len(report.unknown_train_ids)} partition id(s) not in the manifest, e.g. "
                  f"{', '.join(report.unknown_train_ids[:5])}", markup=False)
        return EXIT_ITEM_FAILURES
    return EXIT_OK


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
    from musicrep.data.manifest import read_manifest
    from musicrep.targets.tags import embed_tags

    loaded = read_manifest(manifest)
    train_ids, bad_rows = _read_partition(tidfile)
    with progress_bar("embed-tags (spaces)") as update:
        report = embed_tags(loaded, train_ids, out, dims=dims, min_tag_count=min_tag_count,
                            seed=seed, on_progress=update,
                            tagsets=[t.strip() for t in tagsets.split(",") if t.strip()] if tagsets else None)
    return max(_report_spaces(report, "tags"), EXIT_ITEM_FAILURES if bad_rows else EXIT_OK)


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
    from musicrep.data.manifest import read_manifest
    from musicrep.targets.text import embed_text

    ngrams = parse_numbers(char_ngrams, int, 2, "--char-ngrams", "3,5") if char_ngrams else None
    train_ids, bad_rows = _read_partition(tidfile)
    report = embed_text(read_manifest(manifest), train_ids, out, dims=dims, min_df=min_df,
                        max_df=max_df, max_features=max_features, stop_words=stop_words, char_ngrams=ngrams,
                        seed=seed)
    return max(_report_spaces(report, "text"), EXIT_ITEM_FAILURES if bad_rows else EXIT_OK)


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
    from musicrep.data.manifest import read_manifest
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
    print_lines([f"{tidfile}: {track_id!r}: not in the space (neither a vector nor in missing.csv)"
                  for track_id in unknown])
    with progress_bar("mine") as update:
        report = mine_triplets(loaded, train_ids, out, config, artists=artists, on_progress=update)
    print_line(f"{out}: {report.n_triplets} triplets; {report.n_anchors} anchors over {report.n_unique} unique vectors; "
           f"{report.n_with_positive} anchors have a positive, {len(report.unmatched)} have no triplet "
           f"(listed in {unmatched_path(Path(out))})")
    return EXIT_ITEM_FAILURES if bad_rows or unknown else EXIT_OK
