"""The training command: ``musicrep train --config RECIPE.toml --run RUN``."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import EXIT_OK, guarded, print_line


@guarded
def train_command(
    config: Annotated[Path, typer.Option("--config", help="Recipe (TOML): [model], [[tasks]], [train], [augment]; see configs/.")],
    run: Annotated[Path | None, typer.Option(help="Run directory: reads features/, targets/, manifest.parquet; writes checkpoints/, logs/, model/.")] = None,
    features: Annotated[Path | None, typer.Option(help="Folder with the merged train/ and val/ stores and stats.npz (default RUN/features).")] = None,
    targets: Annotated[Path | None, typer.Option(help="Folder of the target spaces (default RUN/targets).")] = None,
    out: Annotated[Path | None, typer.Option(help="Where checkpoints/, logs/ and model/ go (default RUN).")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest for artists (default RUN/manifest.parquet).")] = None,
    device: Annotated[str, typer.Option(help="auto, cpu or cuda.")] = "auto",
    devices: Annotated[int, typer.Option(help="Processes / GPUs (DDP when more than one; gloo on CPU).")] = 1,
    epochs: Annotated[int | None, typer.Option(help="Override the recipe's epochs.")] = None,
    resume: Annotated[bool, typer.Option("--resume", help="Continue from RUN/checkpoints/last.ckpt (also after a crash or kill).")] = False,
) -> int:
    """Train an audio encoder from a recipe and export it as a model folder (RUN/model).

    Each epoch prints one line: losses per task, validation nDCG@10 (query's artist
    excluded, graded by cosine in the first task's space) beside its ceiling, samples/s.
    """
    from musicrep.training.recipe import load_recipe
    from musicrep.training.run import RunPaths, train

    recipe = load_recipe(config)
    paths = RunPaths.of(run, features=features, targets=targets, out=out, manifest=manifest)

    def report(epoch: int, metrics: dict[str, float]) -> None:
        losses = " ".join(f"{k[5:]}={v:.3f}" for k, v in sorted(metrics.items()) if k.startswith("loss/"))
        val = metrics.get("val/ndcg@10")
        ceiling = metrics.get("val/ndcg@10_ceiling")
        shown = f"val nDCG@10 {val:.3f} (ceiling {ceiling:.3f})" if val is not None and ceiling is not None else ""
        print_line(f"epoch {epoch}: loss {metrics.get('loss', float('nan')):.3f} {losses} {shown} "
                   f"{metrics.get('samples_per_s', float('nan')):.0f} samples/s".replace("  ", " "))

    result = train(recipe, paths, device=device, devices=devices, resume=resume, on_epoch=report, max_epochs=epochs)
    figures = result.validation
    if figures.get("ndcg@10") is not None:
        untrained = figures.get("untrained_ndcg@10")
        print_line(f"validation nDCG@10 (artist excluded): {figures['ndcg@10']:.3f} at the best epoch, "
                   + (f"{untrained:.3f} untrained, " if untrained is not None else "untrained: measured by the "
                      "first run only, ")
                   + f"ceiling {figures.get('ceiling_ndcg@10') or float('nan'):.3f}")
    print_line(f"model: {result.model_dir} (best checkpoint {result.best_checkpoint}, {result.epochs} epochs)")
    return EXIT_OK
