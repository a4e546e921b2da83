"""The HTTP API and the web page over a :class:`~musicrep.search.query.Searcher`: :func:`create_app`.

Routes (``/docs`` lists them with their parameters, from ``/openapi.json``)::

    GET  /                      the web page (static/index.html, app.js, style.css: no CDN, works offline)
    POST /api/search            JSON {track_id | tags | text, k, exclude_artist}, or multipart with an audio `file`
    GET  /api/tracks/{track_id} one indexed track's metadata
    GET  /api/audio/{track_id}  its audio file, with HTTP Range requests (206) so that browsers can seek
    GET  /api/map               every track's point on the 2-D map
    GET  /health                model_id, number of tracks, limits

A request's path or file name never reaches the filesystem: audio is streamed only for indexed tracks,
looked up by id in the index; static assets come from a fixed table read at start. Errors are JSON
``{"detail": "one line"}``: 404 unknown track, 413 upload over the limit, 422 bad query or not audio;
they never show the server's paths (:func:`public_message`).
Searching is CPU-bound, so it runs in the thread pool, with one model forward at a time.
"""

from __future__ import annotations

import json
import logging
import os
import re
import threading
import time
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import FileResponse, HTMLResponse, JSONResponse, Response
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from musicrep import __version__
from musicrep.data.manifest import is_safe_track_id
from musicrep.errors import InputError, MusicrepError, UsageError
from musicrep.search.query import UnknownTrackError
from musicrep.search.serve.docs import render_docs
from musicrep.search.serve.upload import FILE_FIELD, UploadTooLargeError, receive_upload

if TYPE_CHECKING:
    from musicrep.search.query import Searcher, SearchResult

logger = logging.getLogger(__name__)

DEFAULT_MAX_UPLOAD_BYTES = 50 * 2 ** 20
MAX_JSON_BYTES = 64 * 1024
"""A JSON query is a few fields; a larger body is refused before it is parsed."""

STATIC_TYPES = {"index.html": "text/html; charset=utf-8", "app.js": "text/javascript; charset=utf-8",
                "style.css": "text/css; charset=utf-8", "favicon.svg": "image/svg+xml"}
"""The page's assets: the only files served besides indexed audio."""

AUDIO_TYPES = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".oga": "audio/ogg",
               ".opus": "audio/ogg", ".mp3": "audio/mpeg", ".m4a": "audio/mp4", ".mp4": "audio/mp4",
               ".aac": "audio/aac", ".webm": "audio/webm", ".aif": "audio/aiff", ".aiff": "audio/aiff"}

PAGE_HEADERS = {
    # the page loads nothing from elsewhere (offline by design) and runs no inline script
    "Content-Security-Policy": "default-src 'self'; img-src 'self' data:; media-src 'self'; object-src 'none'; "
                               "base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}

ABSOLUTE_PATH = re.compile(r"(?<![^\s'\"(=])/[^\s'\"(),;:]*")
"""An absolute path in an error message: a ``/`` that starts a word, up to a blank, quote or punctuation."""
EXCLUDE_ARTIST_MESSAGE = ("exclude_artist goes with track_id or an audio file (a tag or text query has no artist)")

ERROR_STATUS = ((UnknownTrackError, 404), (UploadTooLargeError, 413), (MusicrepError, 422))
"""Error kind -> HTTP status, first match wins (UnknownTrackError is an InputError)."""


class SearchRequest(BaseModel):
    """A JSON query: exactly one of ``track_id``, ``tags``, ``text``."""

    model_config = ConfigDict(extra="forbid")

    track_id: str | None = Field(None, description="Tracks that sound like this indexed track.")
    tags: str | list[str] | None = Field(None, description='Tags, as a list or separated by ";": "jazz;mellow".')
    text: str | None = Field(None, description="A description in any language the run's text space knows.")
    k: int = Field(10, strict=True, description="How many results (1 to the index's max_k, see /health).")
    exclude_artist: bool = Field(False, strict=True,
                                 description="Leave out the query track's artist (track and audio queries).")


UPLOAD_SCHEMA = {
    "type": "object", "required": [FILE_FIELD],
    "properties": {FILE_FIELD: {"type": "string", "format": "binary", "description": "An audio clip."},
                   "k": {"type": "integer", "default": 10}, "exclude_artist": {"type": "boolean", "default": False}},
}

SEARCH_ERRORS = {
    404: {"description": "Unknown track_id."},
    413: {"description": "Upload larger than the server's limit."},
    422: {"description": "Empty or malformed query, k out of range, or an upload that is not audio."},
}


def create_app(searcher: Searcher, *, max_upload_bytes: int = DEFAULT_MAX_UPLOAD_BYTES,
               tmp_dir: str | Path | None = None) -> FastAPI:
    """The FastAPI application serving ``searcher``'s index: JSON API, audio streaming and the web page.

    Parameters
    ----------
    searcher : Searcher
        An opened index (:meth:`musicrep.search.query.Searcher.open`).
    max_upload_bytes : int
        Largest audio upload accepted (413 beyond it, enforced while reading).
    tmp_dir : path-like, optional
        Where each upload gets its private temporary folder (the system's temporary folder by default).

    Returns
    -------
    FastAPI
        Run it with uvicorn (``musicrep serve`` does).
    """
    if max_upload_bytes < 1:
        raise UsageError(f"the upload limit must be at least 1 byte (got {max_upload_bytes})")
    app = FastAPI(title="musicrep search", version=__version__, docs_url=None, redoc_url=None,
                  description="Music similarity search by audio, track, tags or free text. "
                              "Errors are JSON {\"detail\": \"...\"}.")
    assets = _read_assets()
    model_lock = threading.Lock()  # one forward pass at a time: concurrent ones only compete for the same cores
    map_cache: dict[str, bytes] = {}

    @app.exception_handler(MusicrepError)
    async def musicrep_error(request: Request, exc: MusicrepError) -> JSONResponse:
        status = next(code for kind, code in ERROR_STATUS if isinstance(exc, kind))
        return JSONResponse({"detail": public_message(str(exc), searcher.path)}, status_code=status)

    @app.exception_handler(RequestValidationError)
    async def validation_error(request: Request, exc: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": _validation_message(exc.errors())}, status_code=422)

    @app.exception_handler(ClientDisconnect)
    async def client_gone(request: Request, exc: ClientDisconnect) -> Response:
        logger.info("%s %s: the client left before sending the whole body", request.method, request.url.path)
        return Response(status_code=400)  # nobody reads it

    queries = {"track_id": searcher.by_track, "tags": searcher.by_tags, "text": searcher.by_text}

    def check_k(k: int) -> None:
        if not 1 <= k <= searcher.max_k:
            raise UsageError(f"k must be between 1 and {searcher.max_k} (got {k})")

    def by_audio(path: Path, k: int, exclude_artist: bool) -> SearchResult:
        with model_lock:
            return searcher.by_audio(path, k=k, exclude_artist=exclude_artist)

    @app.get("/", include_in_schema=False)
    def page() -> Response:
        return Response(assets["index.html"], media_type=STATIC_TYPES["index.html"], headers=PAGE_HEADERS)

    @app.get("/static/{name}", include_in_schema=False)
    def static(name: str) -> Response:
        if name not in assets:
            return JSONResponse({"detail": f"no asset {name!r}"}, status_code=404)
        return Response(assets[name], media_type=STATIC_TYPES[name], headers=PAGE_HEADERS)

    @app.get("/docs", include_in_schema=False)
    def docs() -> HTMLResponse:
        return HTMLResponse(render_docs(app.openapi()), headers=PAGE_HEADERS)

    @app.get("/health", summary="Model and index identity")
    def health() -> dict[str, Any]:
        """``status``, the model's ``model_id``, the number of indexed ``tracks``, ``max_k`` and the upload limit."""
        return {"status": "ok", "model_id": searcher.model_id, "tracks": len(searcher.ids),
                "max_k": searcher.max_k, "max_upload_bytes": max_upload_bytes}

    @app.post("/api/search", summary="Search by track, tags, text or an uploaded clip", responses=SEARCH_ERRORS,
              openapi_extra={"requestBody": {"required": True, "content": {
                  "application/json": {"schema": SearchRequest.model_json_schema()},
                  "multipart/form-data": {"schema": UPLOAD_SCHEMA}}}})
    async def search(request: Request) -> dict[str, Any]:
        """JSON with exactly one of ``track_id``, ``tags``, ``text`` (plus ``k``, ``exclude_artist``), or a
        multipart form with an audio ``file`` (plus ``k``, ``exclude_artist``). Answers the search result:
        ``query``, ``hits`` (rank, track_id, score, title, artist, album, tags, why, xy), ``timings`` (seconds)
        and ``query_xy``."""
        content_type = request.headers.get("content-type", "").split(";")[0].strip().lower()
        if content_type == "multipart/form-data":
            return await search_upload(request)
        if content_type != "application/json":
            raise UsageError("send JSON (Content-Type: application/json) or a multipart form with an audio file "
                             f"(got {content_type or 'no Content-Type'!r})")
        query = _parse_query(await _read_json(request))
        check_k(query.k)
        kind, value = _query_kind(query)
        if query.exclude_artist and kind != "track_id":
            raise UsageError(EXCLUDE_ARTIST_MESSAGE)
        options = {"exclude_artist": query.exclude_artist} if kind == "track_id" else {}
        result = await run_in_threadpool(queries[kind], value, k=query.k, **options)
        return result.to_dict()

    async def search_upload(request: Request) -> dict[str, Any]:
        async with receive_upload(request, max_bytes=max_upload_bytes, tmp_dir=tmp_dir) as upload:
            k = _int_field(upload.fields.get("k", "10"), "k")
            exclude_artist = _bool_field(upload.fields.get("exclude_artist", "false"), "exclude_artist")
            check_k(k)
            start = time.perf_counter()
            try:
                result = await run_in_threadpool(by_audio, upload.path, k, exclude_artist)
            except MusicrepError as exc:  # name the client's file, not our temporary one
                message = str(exc).replace(str(upload.path), upload.filename or "the upload")
                raise (UsageError if isinstance(exc, UsageError) else InputError)(message) from None
            logger.info("upload %r (%d bytes) searched in %.3f s", upload.filename, upload.size,
                        time.perf_counter() - start)
        answer = result.to_dict()
        answer["query"] = {**answer.get("query", {}), "value": upload.filename}
        return answer

    @app.get("/api/tracks/{track_id}", summary="One indexed track", responses={404: {"description": "Unknown."}})
    def track(track_id: str) -> dict[str, Any]:
        """``track_id``, ``title``, ``artist``, ``album``, ``tags`` (tagset -> tags), ``xy``, ``has_audio``."""
        _check_id(track_id)
        return searcher.track(track_id)

    @app.get("/api/audio/{track_id}", summary="Stream an indexed track's audio", response_class=FileResponse,
             responses={206: {"description": "The requested byte range."},
                        404: {"description": "Unknown track or no audio."},
                        416: {"description": "Range not satisfiable."}})
    def audio(track_id: str) -> FileResponse:
        """The track's audio file as indexed. Supports ``Range: bytes=...`` (206 Partial Content) so that
        players can seek."""
        _check_id(track_id)
        path = Path(searcher.audio_path(track_id))
        if not path.is_file():
            raise UnknownTrackError(f"track {track_id!r}: its audio file is not there any more")
        media_type = AUDIO_TYPES.get(path.suffix.lower(), "application/octet-stream")
        return FileResponse(path, media_type=media_type, headers={"X-Content-Type-Options": "nosniff"})

    app.add_api_route("/api/audio/{track_id}", audio, methods=["HEAD"], include_in_schema=False)

    @app.get("/api/map", summary="The 2-D map of the collection")
    def map_points() -> Response:
        """``ids`` and ``xy`` (one ``[x, y]`` per id, same order): every indexed track's point on the map."""
        if "body" not in map_cache:  # the index does not change while serving
            ids, xy = searcher.map_points()
            map_cache["body"] = json.dumps({"ids": list(ids), "xy": [[round(float(x), 5), round(float(y), 5)]
                                                                     for x, y in xy]}).encode()
        return Response(map_cache["body"], media_type="application/json")

    return app


def public_message(message: str, index_dir: str | Path) -> str:
    """An error message fit for a client: the index folder's path left out, any other absolute path cut to
    its last part (the CLI shows them; a server does not tell where its files are)."""
    for form in dict.fromkeys((os.path.abspath(index_dir), str(Path(index_dir).resolve()))):
        message = message.replace(f" {form}", "").replace(form, "the index")
    return ABSOLUTE_PATH.sub(lambda match: Path(match.group()).name or "/", message)


def _read_assets() -> dict[str, bytes]:
    """The page's files, from the package (read once: requests never name a file on disk)."""
    folder = resources.files("musicrep.search.serve") / "static"
    return {name: (folder / name).read_bytes() for name in STATIC_TYPES}


def _check_id(track_id: str) -> None:
    """An id that could not be in any index (``..``, slashes, ...) is unknown like any other."""
    if not is_safe_track_id(track_id):
        raise UnknownTrackError(f"unknown track {track_id[:80]!r}")


async def _read_json(request: Request) -> Any:
    """The request's JSON body, read up to :data:`MAX_JSON_BYTES`."""
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_JSON_BYTES:
            raise UsageError(f"the JSON query is longer than {MAX_JSON_BYTES // 1024} KiB")
    if not body.strip():
        raise UsageError("empty query: send JSON with one of track_id, tags, text")
    try:
        return json.loads(body)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise UsageError(f"malformed JSON ({exc})") from None


def _parse_query(data: Any) -> SearchRequest:
    try:
        return SearchRequest.model_validate(data)
    except ValidationError as exc:
        raise UsageError(_validation_message(exc.errors())) from None


def _validation_message(errors: list[dict[str, Any]]) -> str:
    """Pydantic's errors as one line: ``k: Input should be a valid integer; ...``."""
    parts = []
    for error in errors[:3]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p != "body")
        parts.append(f"{where}: {error.get('msg', 'invalid')}" if where else str(error.get("msg", "invalid")))
    return "; ".join(parts) or "malformed query"


def _query_kind(query: SearchRequest) -> tuple[str, Any]:
    """The one query given (``track_id``, ``tags`` or ``text``) and its value; blank values count as not given."""
    given = {name: value for name, value in (("track_id", query.track_id), ("tags", query.tags),
                                             ("text", query.text)) if _given(value)}
    if len(given) != 1:
        found = ", ".join(given) or "none (or only blank ones)"
        raise UsageError(f"give exactly one of track_id, tags, text (got {found})")
    return next(iter(given.items()))


def _given(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value.strip().strip(";").strip())
    if isinstance(value, list):
        return any(isinstance(v, str) and v.strip() for v in value)
    return value is not None


def _int_field(text: str, name: str) -> int:
    try:
        return int(text.strip())
    except ValueError:
        raise UsageError(f"{name} must be an integer (got {text[:40]!r})") from None


def _bool_field(text: str, name: str) -> bool:
    value = text.strip().lower()
    if value in ("true", "1", "on", "yes"):
        return True
    if value in ("false", "0", "off", "no", ""):
        return False
    raise UsageError(f"{name} must be true or false (got {text[:40]!r})")
