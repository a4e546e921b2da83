"""musicrep: audio representations of music learned from tags and multilingual text.

One subpackage per stage, in data-flow order: ``musicrep.data`` (manifest,
sources, align, partition), ``musicrep.features`` (extract, merge),
``musicrep.targets`` (tag and text spaces, triplets), ``musicrep.inference``
(exported models); importing this package loads none of them.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from musicrep.inference.hub import Encoder

__version__ = "0.1.0"


def load(path: Any, **kw: Any) -> Encoder:
    """Load an exported model folder: ``musicrep.load(folder).embed("song.mp3")``.

    See :func:`musicrep.inference.hub.load` (keyword ``device``, default ``"cpu"``).
    """
    from musicrep.inference.hub import load as load_model

    return load_model(path, **kw)
