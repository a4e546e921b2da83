"""The HEAR 2021 API of musicrep models (``import musicrep.hear``); see :mod:`musicrep.inference.hear`."""

from musicrep.inference.hear import HearModel, get_scene_embeddings, get_timestamp_embeddings, load_model

__all__ = ["HearModel", "get_scene_embeddings", "get_timestamp_embeddings", "load_model"]
