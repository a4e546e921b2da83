"""Targets: semantic spaces built from tags and text, and the triplets mined in them.

``tags.embed_tags`` and ``text.embed_text`` fit TF-IDF + LSI spaces on a
partition and project every track (layout in :mod:`musicrep.targets.space`);
``triplets.mine_triplets`` mines anchor/positive/negative triplets by cosine
relatedness in one space.
"""
