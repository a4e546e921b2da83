"""Commands of the evaluation stage: evaluate (retrieval, probes, baselines, report, comparison)."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import EXIT_ITEM_FAILURES, EXIT_OK, err, guarded, print_line, print_lines, progress_bar
from musicrep.errors import UsageError


@guarded
def evaluate_command(
    run: Annotated[Path | None, typer.Option(help="Run directory: embeddings/, manifest.parquet, partitions/, targets/, features/, model/; the report goes to RUN/report/.")] = None,
    embeddings: Annotated[list[str] | None, typer.Option(help="More embeddings to compare, NAME=DIR (repeatable): a folder of vectors.npy + ids.csv for every split, or with train/ val/ test/ folders.")] = None,
    manifest: Annotated[Path | None, typer.Option(help="Manifest: tags and artists (default RUN/manifest.parquet).")] = None,
    partitions: Annotated[Path | None, typer.Option(help="Folder with train.csv, val.csv, test.csv (default RUN/partitions).")] = None,
    targets: Annotated[Path | None, typer.Option(help="Target spaces: joint/ grades nDCG and is the oracle, text/ grades nDCG_text (default RUN/targets).")] = None,
    features: Annotated[Path | None, typer.Option(help="Merged train/ val/ test/ stores for the handcrafted and untrained baselines (default RUN/features).")] = None,
    model: Annotated[Path | None, typer.Option(help="Model folder whose untrained network is a baseline (default RUN/model).")] = None,
    out: Annotated[Path | None, typer.Option(help="Report folder (default RUN/report). With --compare: a .md file or a folder (default ./compare.md).")] = None,
    tagset: Annotated[str, typer.Option(help="Tagset(s) of retrieval's relevance (shares a label), comma-separated.")] = "genres",
    probe_tagsets: Annotated[str | None, typer.Option(help="Tagsets to probe, comma-separated (default: every tagset of the manifest).")] = None,
    k: Annotated[str, typer.Option("--k", help="List lengths of P@k, MAP@k, nDCG@k, comma-separated.")] = "1,5,10,20,50",
    baselines: Annotated[str | None, typer.Option(help="Baselines, comma-separated: handcrafted, untrained, random, oracle, or none (default: every one the inputs allow).")] = None,
    no_probes: Annotated[bool, typer.Option("--no-probes", help="Skip the classification probes (retrieval only).")] = False,
    no_artist_filter: Annotated[bool, typer.Option("--no-artist-filter", help="Headline the unfiltered results (the query's artist's tracks stay candidates); both are always reported.")] = False,
    seed: Annotated[int | None, typer.Option(help="Seed of the untrained network, random vectors, probes and map (default: the model's recipe seed).")] = None,
    device: Annotated[str, typer.Option(help="Torch device for the untrained network: cpu, cuda, ...")] = "cpu",
    batch_size: Annotated[int, typer.Option(help="Windows per forward pass of the untrained network.")] = 64,
    no_plots: Annotated[bool, typer.Option("--no-plots", help="Write metrics.json and report.md only.")] = False,
    compare: Annotated[bool, typer.Option("--compare", help="Compare evaluated runs instead: musicrep evaluate --compare RUN1 RUN2 ...")] = False,
    runs: Annotated[list[Path] | None, typer.Argument(help="With --compare: runs (or report folders, or metrics.json files).", show_default=False)] = None,
) -> int:
    """Evaluate embeddings on the test split next to baselines, and write a report.

    Retrieval: each test track queries the other test tracks by cosine similarity;
    P@k and MAP@k (relevant = shares a label of --tagset) and nDCG@k graded in the
    joint tag space (and nDCG_text@k in the text space), with the query's artist's
    tracks removed and not; queries without a relevant candidate are skipped and
    counted. Probes: logistic regression or a small MLP per tagset, standardized on
    train, chosen on val, scored on test (ROC-AUC / PR-AUC, or accuracy / macro-F1).
    Baselines in the same table: handcrafted features of the stored log-mel, the
    untrained network, random vectors, and the tag-space oracle (an upper bound).

    Writes report.md, metrics.json and PNG figures (precision@k, per-label scores,
    a t-SNE map, training curves). --compare prints one table across evaluated runs
    and writes it as Markdown.
    """
    if compare:
        return _compare(runs or [], out, no_artist_filter)
    if runs:
        raise UsageError(f"unexpected argument {str(runs[0])!r} (runs to compare go after --compare)")
    from musicrep.evaluation.evaluate import BASELINES, evaluate
    from musicrep.evaluation.report import main_table, markdown_table

    chosen = None
    if baselines is not None:
        chosen = [] if baselines.strip() == "none" else _names(baselines)
        unknown = [b for b in chosen if b not in BASELINES]
        if unknown:
            raise UsageError(f"--baselines: unknown {unknown[0]!r} (baselines: {', '.join(BASELINES)}, or none)")
    with _steps() as on_progress:
        metrics = evaluate(run, embeddings=_named_folders(embeddings or []), manifest=manifest, partitions=partitions,
                           targets=targets, features=features, model=model, out=out, tagsets=_names(tagset),
                           probe_tagsets=None if probe_tagsets is None else _names(probe_tagsets), ks=_ks(k),
                           baselines=chosen, probes=not no_probes, artist_filter=not no_artist_filter, seed=seed,
                           device=device, batch_size=batch_size, plots=not no_plots, on_progress=on_progress)
    for line in markdown_table(*main_table(metrics)):
        print_line(line)
    report = metrics["report"]
    print_line(f"report: {Path(report['dir']) / 'report.md'} (metrics.json, {len(report['figures'])} figures)")
    for note in metrics["notes"]:
        err.print(f"note: {note}", markup=False)
    for split, info in metrics["splits"].items():
        if info["left_out"]:
            err.print(f"note: {len(info['left_out'])} {split} track(s) left out: no vector in every method (e.g. "
                      f"{info['left_out'][0]['track_id']}: {info['left_out'][0]['reason']}; all in report.md)",
                      markup=False)
    if metrics["problems"]:
        err.print(f"{len(metrics['problems'])} problem(s):", markup=False)
        print_lines(metrics["problems"])
        return EXIT_ITEM_FAILURES
    return EXIT_OK


def _compare(runs: list[Path], out: Path | None, unfiltered: bool) -> int:
    from musicrep.evaluation.report import compare, markdown_table

    result = compare(runs, out=out, rule="unfiltered" if unfiltered else None)
    for line in markdown_table(result.header, result.rows):
        print_line(line)
    for note in result.notes:
        print_line(f"note: {note}")
    print_line(f"written to {result.path}")
    return EXIT_OK


@contextlib.contextmanager
def _steps():
    """A ``(step, done, total)`` callback: one progress bar per step (a line per step when not on a terminal)."""
    stack = contextlib.ExitStack()
    current: dict[str, object] = {}

    def on_progress(step: str, done: int, total: int) -> None:
        if current.get("step") != step:
            stack.close()
            if not err.is_terminal:
                err.print(f"{step} ({total})", markup=False)
            current["step"], current["update"] = step, stack.enter_context(progress_bar(step))
        current["update"](done, total)

    with stack:
        yield on_progress


def _names(text: str) -> list[str]:
    return [part.strip() for part in text.split(",") if part.strip()]


def _ks(text: str) -> list[int]:
    try:
        return [int(part) for part in _names(text)]
    except ValueError:
        raise UsageError(f"--k must be positive integers like 1,5,10,20,50 (got {text!r})") from None


def _named_folders(items: list[str]) -> dict[str, Path]:
    folders: dict[str, Path] = {}
    for item in items:
        name, sep, folder = item.partition("=")
        if not sep or not name.strip() or not folder.strip():
            raise UsageError(f"--embeddings must be NAME=DIR (got {item!r})")
        if name.strip() in folders:
            raise UsageError(f"--embeddings: the name {name.strip()!r} is given twice")
        folders[name.strip()] = Path(folder.strip())
    return folders
