"""Commands of classification models: train-classifier and classify."""

from __future__ import annotations

import typer

from musicrep.cli.common import guarded
from musicrep.errors import UsageError


@guarded
def train_classifier_command(ctx: typer.Context) -> int:
    """Fit a classifier on frozen embeddings and export it as a model folder. [being built]"""
    raise UsageError("`musicrep train-classifier` is not built yet")


@guarded
def classify_command(ctx: typer.Context) -> int:
    """Tag audio files with a classifier model folder. [being built]"""
    raise UsageError("`musicrep classify` is not built yet")
