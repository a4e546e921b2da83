"""Commands of the use stages: embed."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import EXIT_ITEM_FAILURES, EXIT_OK, guarded, print_line, print_lines, progress_bar
from musicrep.errors import UsageError


@guarded
def embed_command(
    model: Annotated[Path, typer.Option(help="Exported model folder (model.safetensors, config.json).")],
    out: Annotated[Path, typer.Option(help="Output folder: vectors.npy, ids.csv, failed.csv, embed_config.json.")],
    store: Annotated[Path | None, typer.Option(help="A merged feature store (e.g. FEATURES/test): no decoding.")] = None,
    tidfile: Annotated[Path | None, typer.Option(help="Tracks to embed (track_id,filename); with --manifest: ids only.")] = None,
    audio_root: Annotated[Path | None, typer.Option(help="Folder the tidfile's filenames are relative to (default: its folder).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Embed the manifest's tracks (those of --tidfile, if given).")] = None,
    audio: Annotated[list[Path] | None, typer.Option(help="Audio files (ids from their names): --audio a.mp3 b.wav ...")] = None,
    files: Annotated[list[Path] | None, typer.Argument(help="More audio files after --audio.", show_default=False)] = None,
    segment: Annotated[str, typer.Option(help="model (the segment rule the model trained on) or full (the whole file).")] = "model",
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass (of several tracks).")] = 64,
) -> int:
    """Embed audio with an exported model: one vector per track (the mean over its windows).

    Exactly one input: --store, --tidfile, --manifest [--tidfile] or --audio FILE...
    """
    from musicrep.inference.embed import embed

    if files and not audio:
        raise UsageError(f"unexpected argument {str(files[0])!r} (audio files go after --audio)")
    with progress_bar("embed") as update:
        report = embed(model, out, store=store, tidfile=tidfile, manifest=manifest, audio=[*(audio or ()), *(files or ())],
                       audio_root=audio_root, segment=segment, device=device, batch_size=batch_size,
                       on_progress=update)
    print_line(f"{out}: {report.n_embedded} of {report.n_inputs} tracks embedded ({report.kind}), "
               f"{len(report.failed)} failed (listed in {out / 'failed.csv'})")
    print_lines([f"{track_id}: {reason}" for track_id, reason in report.failed])
    return EXIT_ITEM_FAILURES if report.failed else EXIT_OK
