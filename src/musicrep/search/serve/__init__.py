"""``musicrep serve``: the HTTP API and the web page over a search index (FastAPI; run with uvicorn)."""

from musicrep.search.serve.app import create_app

__all__ = ["create_app"]
