"""The ``musicrep`` command: a thin typer app over the stage functions.

One module per stage group (``data``, ``features``, ``targets``) holds the
commands; they are registered here, explicitly and in data-flow order, so
this file is the whole command table. Exit codes and error handling live in
:mod:`musicrep.cli.common`.
"""

from __future__ import annotations

from typing import Annotated

import typer

from musicrep.cli import classify, data, evaluate, features, search, serve, targets, train, use
from musicrep.cli.common import configure_logging, guarded
from musicrep.errors import UsageError

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


@app.callback()
def _main(
    log_level: Annotated[
        str, typer.Option("--log-level", help="Logging level: debug, info, warning, error.")
    ] = "warning",
) -> None:
    configure_logging(log_level)  # an unknown level: one error line, exit 2


COMMANDS = {
    "align": data.align,
    "info": data.info,
    "partition": data.partition_command,
    "extract": features.extract_command,
    "merge": features.merge_command,
    "embed-tags": targets.embed_tags_command,
    "embed-text": targets.embed_text_command,
    "mine-triplets": targets.mine_triplets_command,
    "embed": use.embed_command,
    "train": train.train_command,
    "evaluate": evaluate.evaluate_command,
    "train-classifier": classify.train_classifier_command,
    "classify": classify.classify_command,
    "index": search.index_command,
    "search": search.search_command,
    "serve": serve.serve_command,
    "demo": data.demo,
}
"""Command name -> its function (already wrapped by :func:`~musicrep.cli.common.guarded`)."""

PLANNED = {
    "run": "Run every stage of a TOML config into one run directory.",
}
"""Stages not built yet: each answers with one line and exit 2."""


def _planned(name: str, summary: str):
    def command(ctx: typer.Context) -> int:
        raise UsageError(f"`musicrep {name}` is not built yet ({summary})")

    command.__doc__ = f"{summary} [not built yet: exits 2]"
    return guarded(command)


for _name, _command in COMMANDS.items():
    app.command(name=_name)(_command)
for _name, _summary in PLANNED.items():
    app.command(name=_name, context_settings={"allow_extra_args": True, "ignore_unknown_options": True})(
        _planned(_name, _summary))


def main() -> None:
    """Entry point of the ``musicrep`` script."""
    app()
