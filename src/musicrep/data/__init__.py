"""Data: a collection's tracks, aligned into one manifest, and split into leak-free partitions.

``manifest`` (the Track record and the table), ``sources`` (one adapter per
collection layout), ``align`` (sources -> manifest), ``partition``
(manifest -> train/val/test files) and ``info`` (what a manifest holds).
"""
