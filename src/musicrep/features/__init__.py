"""Features: decoded audio turned into per-track log-mel arrays, merged into one store per partition.

``audio`` (decode, resample, segment rule), ``frontend`` (the log-mel front
end), ``extract`` (one array per track, every track accounted for) on the
runners of ``executors`` (process pool or dask.distributed), ``store`` (where
per-track arrays live) and ``merge`` (one memory-mappable store per
partition, with train statistics, read by ``FeatureStore``).
"""
