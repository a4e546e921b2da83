"""Commands of classification models: train-classifier and classify."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import (
    EXIT_ITEM_FAILURES,
    EXIT_OK,
    SHOWN_PROBLEMS,
    err,
    guarded,
    print_line,
    print_lines,
    progress_bar,
)
from musicrep.errors import UsageError


@guarded
def train_classifier_command(
    model: Annotated[Path, typer.Option(help="The encoder's model folder.")],
    run: Annotated[Path, typer.Option(help="Run directory: manifest.parquet, partitions/, and embeddings/ made by this model or features/ stores.")],
    out: Annotated[Path, typer.Option(help="The classifier folder to write (the encoder's files plus classifier.safetensors, classifier.json).")],
    tagset: Annotated[list[str] | None, typer.Option(help="Tagset to classify (repeatable); default genres.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the MLP probes.")] = 0,
    device: Annotated[str, typer.Option(help="Torch device for embedding stores: cpu, cuda, ...")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass when stores are embedded.")] = 64,
) -> int:
    """Fit the best probe per tagset on frozen embeddings (or keep the encoder's classification head when it is
    better on val) and export it as a classifier model folder."""
    from musicrep.evaluation.classify import train_classifier

    with progress_bar("embed") as update:
        report = train_classifier(model, run, out, tagsets=tagset or ["genres"], seed=seed, device=device,
                                  batch_size=batch_size, on_progress=lambda _split, done, total: update(done, total))
    for split, ids in report.not_embedded.items():
        err.print(f"warning: {len(ids)} {split} tracks have no vector (failed extraction?), left out", markup=False)
    for r in report.tagsets:
        head = ""
        if r.head is not None:
            head = f"; head {r.head} val {r.val_metric} {r.head_val:.3f}"
        elif r.head_note:
            head = f"; {r.head_note}"
        test = ", ".join(f"{k} {v:.3f}" for k, v in r.test.items())
        print_line(f"{r.tagset} ({r.kind}, {len(r.labels)} labels): kept {r.kept} {r.model} "
                   f"(val {r.val_metric}: probe {r.probe_val:.3f}{head}); test {test}")
        if r.near_chance:
            err.print(f"warning: {r.tagset}: val {r.val_metric} {r.kept_val:.3f} is near chance ({r.chance:.3f}): "
                      "these embeddings barely tell its labels apart; do not trust its scores", markup=False)
        if r.unscorable:
            print_line(f"  {len(r.unscorable)} label(s) not scored on test:")
            for label, reason in r.unscorable[:SHOWN_PROBLEMS]:
                print_line(f"    {label}: {reason}")
            if len(r.unscorable) > SHOWN_PROBLEMS:
                print_line(f"    ... {len(r.unscorable) - SHOWN_PROBLEMS} more (all in {report.out_dir / 'classifier.json'})")
    print_line(f"{report.out_dir}: classifier {report.classifier_id[:12]} "
               f"(load with musicrep.load, or musicrep classify --model {report.out_dir} AUDIO...)")
    return EXIT_OK


@guarded
def classify_command(
    model: Annotated[Path, typer.Option(help="A classifier folder (musicrep train-classifier).")],
    files: Annotated[list[Path] | None, typer.Argument(help="Audio files.", show_default=False)] = None,
    top: Annotated[int, typer.Option(help="Labels shown per tagset.")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="Print one JSON document instead of lines.")] = False,
    segment: Annotated[str, typer.Option(help="model (the segment rule the model trained on) or full (the whole file).")] = "model",
    device: Annotated[str, typer.Option(help="Torch device: cpu, cuda, cuda:1, ...")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass (of several files).")] = 64,
) -> int:
    """Tag audio files with a classifier folder: the top labels per tagset with their scores; * marks a score
    at or above the label's threshold (chosen on validation). Files that fail are listed; the others go on."""
    from musicrep.inference.classifier import Classifier, classify_files
    from musicrep.inference.hub import load

    if not files:
        raise UsageError("give one or more audio files: musicrep classify --model FOLDER a.mp3 b.wav ...")
    classifier = load(model, device=device)
    if not isinstance(classifier, Classifier):
        raise UsageError(f"{model}: a model folder without a classifier (make one with musicrep train-classifier)")
    with progress_bar("classify") as update:
        report = classify_files(classifier, files, top=top, segment=segment, batch_size=batch_size,
                                on_progress=update)
    if as_json:
        print_line(json.dumps(report.to_dict(classifier), indent=2))
    else:
        for result in report.results:
            print_line(str(result.path))
            for tagset, scores in result.labels.items():
                shown = "  ".join(f"{s.label} {s.score:.3f}{'*' if s.above_threshold else ''}" for s in scores)
                print_line(f"  {tagset}: {shown}")
    if report.failed:
        err.print(f"{len(report.failed)} of {len(report.failed) + len(report.results)} file(s) failed:", markup=False)
        print_lines([reason if reason.startswith(str(path)) else f"{path}: {reason}" for path, reason in report.failed])
    return EXIT_ITEM_FAILURES if report.failed else EXIT_OK
