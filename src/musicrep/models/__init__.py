"""Audio encoders, registered by name; layers (``layers``) and task heads (``heads``) kept apart.

:func:`build_encoder` turns a model folder's or a recipe's ``{"name": ..., params}``
into a module taking ``(batch, channels, n_mels, frames)`` log-mel input and
returning ``(batch, embedding_dim)``. Add an architecture by writing its module
and naming it in :data:`MODELS`.
"""

from __future__ import annotations

import inspect
from typing import Any

from torch import nn

from musicrep.errors import UsageError
from musicrep.models.crnn import CRNN
from musicrep.models.kim2019 import Kim2019

MODELS: dict[str, type[nn.Module]] = {"kim2019": Kim2019, "crnn": CRNN}
"""Registry: architecture name -> class; its keyword arguments are the architecture's parameters."""


def model_parameters(name: str) -> dict[str, Any]:
    """The parameters of architecture ``name`` and their defaults."""
    if name not in MODELS:
        raise UsageError(f"unknown model {name!r} (known: {', '.join(sorted(MODELS))})")
    signature = inspect.signature(MODELS[name])
    return {p.name: p.default for p in signature.parameters.values() if p.kind is p.KEYWORD_ONLY}


def build_encoder(name: str, **params: Any) -> nn.Module:
    """Architecture ``name`` with ``params``; an unknown name or parameter is a :class:`UsageError` naming it."""
    known = model_parameters(name)
    unknown = sorted(set(params) - set(known))
    if unknown:
        raise UsageError(f"model {name!r} has no parameter {unknown[0]!r} (parameters: {', '.join(known)})")
    return MODELS[name](**params)
