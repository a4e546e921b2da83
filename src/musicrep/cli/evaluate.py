"""Commands of the evaluation stage: evaluate (retrieval, probes, baselines, report, comparison)."""

from __future__ import annotations

import typer

from musicrep.cli.common import guarded
from musicrep.errors import UsageError


@guarded
def evaluate_command(ctx: typer.Context) -> int:
    """Evaluate embeddings: retrieval and classification metrics against baselines, with a report. [being built]"""
    raise UsageError("`musicrep evaluate` is not built yet")
