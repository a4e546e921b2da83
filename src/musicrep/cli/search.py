"""Commands of the search stage: index and search."""

from __future__ import annotations

import typer

from musicrep.cli.common import guarded
from musicrep.errors import UsageError


@guarded
def index_command(ctx: typer.Context) -> int:
    """Build a vector index of a run's embeddings. [being built]"""
    raise UsageError("`musicrep index` is not built yet")


@guarded
def search_command(ctx: typer.Context) -> int:
    """Query a vector index by track, audio, tags or text. [being built]"""
    raise UsageError("`musicrep search` is not built yet")
