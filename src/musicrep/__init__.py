"""musicrep: audio representations of music learned from tags and multilingual text.

One subpackage per stage, in data-flow order: ``musicrep.data`` (manifest,
sources, align, partition), ``musicrep.features`` (extract, merge),
``musicrep.targets`` (tag and text spaces, triplets); importing this package
loads none of them.
"""

__version__ = "0.1.0"
