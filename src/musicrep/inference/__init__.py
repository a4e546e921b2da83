"""Using an exported model: the model folder and :class:`Encoder` (``hub``), embedding many tracks (``embed``),
the HEAR API (``hear``). Never imports training code."""

from musicrep.inference.hub import Encoder, export_model, load

__all__ = ["Encoder", "export_model", "load"]
