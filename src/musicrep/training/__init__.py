"""Training: recipes (TOML dataclasses), objectives, data (crops, batch samplers), the Lightning module,
and :func:`musicrep.training.run.train`, which exports a model folder (:mod:`musicrep.inference.hub`)."""
