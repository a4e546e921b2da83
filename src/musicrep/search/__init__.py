"""Search over a collection: the index (``musicrep index``), queries (``musicrep search``) and, in
:mod:`musicrep.search.serve`, the HTTP API and web page.

- :mod:`musicrep.search.vectors`: nearest-neighbour search over unit vectors (exact, FAISS, USearch);
- :mod:`musicrep.search.spaces`: how tag and text queries reach audio (heads, linear maps, query terms);
- :mod:`musicrep.search.layout`: the 2-D map;
- :mod:`musicrep.search.index`: the index folder (build, ``--add``, read);
- :mod:`musicrep.search.query`: :class:`Searcher`, by track, audio, tags or text.

Examples
--------
>>> from musicrep.search import Searcher  # doctest: +SKIP
>>> searcher = Searcher.open("runs/demo/index")  # doctest: +SKIP
>>> [hit.title for hit in searcher.by_text("ein ruhiges, verträumtes Album", k=3).hits]  # doctest: +SKIP
"""

from musicrep.search.add import add_to_index
from musicrep.search.index import IndexReport, build_index
from musicrep.search.query import Hit, Searcher, SearchResult, UnknownTrackError

__all__ = ["Hit", "IndexReport", "SearchResult", "Searcher", "UnknownTrackError", "add_to_index", "build_index"]
