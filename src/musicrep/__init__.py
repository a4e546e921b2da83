"""musicrep: audio representations of music learned from tags and multilingual text.

Stages live in their own modules (``musicrep.align``, ``musicrep.partition``,
``musicrep.extract``, ``musicrep.merge``, ``musicrep.targets``); importing
this package loads none of them.
"""

__version__ = "0.1.0"
