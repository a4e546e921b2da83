"""Command of the serving stage: serve (HTTP API and web page)."""

from __future__ import annotations

import typer

from musicrep.cli.common import guarded
from musicrep.errors import UsageError


@guarded
def serve_command(ctx: typer.Context) -> int:
    """Serve search over HTTP with a web page. [being built]"""
    raise UsageError("`musicrep serve` is not built yet")
