"""`musicrep serve`: the JSON API, audio streaming with ranges, uploads, bad input and path traversal, the CLI.

Every request goes to a real uvicorn server on 127.0.0.1 serving a real index: a tiny model trained on the
session's demo run, indexed with `musicrep index` (built once per session, shared with test_browser.py).
"""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from conftest import run_cli

UPLOAD_LIMIT = 2 ** 20
"""The test server's upload limit (small, so that 413 needs little traffic)."""
BOUNDARY = "musicrepTestBoundary5d1f"

TINY_SEARCH_RECIPE = """
[model]
name = "kim2019"
width = 0.25
embedding_dim = 32

[[tasks]]
space = "joint"
objective = "contrastive"

[[tasks]]
space = "genres"
name = "genre-tags"
objective = "classification"
weight = 0.5

[train]
epochs = 1
batch_size = 16
lr = 1e-3
seed = 0
crop_frames = 64
num_workers = 0
"""
"""One epoch of a narrow network with the joint contrastive head (the head tag and text queries use)."""


# ---------------------------------------------------------------------------------------------- fixtures


@dataclass
class SearchIndex:
    run: Path
    model: Path
    index: Path


def build_search_index(tmp_path_factory: pytest.TempPathFactory, demo_run: Path) -> SearchIndex:
    """A real index of the demo run: train a tiny model, then `musicrep index --model M --run RUN`.

    Built once per session in the session's base folder (test_serve.py and test_browser.py both ask for it).
    """
    base = tmp_path_factory.getbasetemp() / "search-index"
    found = SearchIndex(run=base / "run", model=base / "run" / "model", index=base / "run" / "index")
    if (base / "ready").is_file():
        return found
    run = found.run
    run.mkdir(parents=True, exist_ok=True)
    for name in ("manifest.parquet", "partitions", "features", "targets"):
        if not (run / name).exists():
            (run / name).symlink_to(demo_run / name)
    recipe = base / "tiny-search.toml"
    recipe.write_text(TINY_SEARCH_RECIPE)
    trained = run_cli("train", "--config", recipe, "--run", run)
    assert trained.exit_code == 0, trained.stderr
    indexed = run_cli("index", "--model", found.model, "--run", run)
    assert indexed.exit_code in (0, 1), indexed.stderr  # 1: the demo's deliberately broken files are listed
    assert found.index.is_dir(), f"`musicrep index` wrote no {found.index}"
    (base / "ready").write_text("ok")
    return found


@pytest.fixture(scope="session")
def search_index(tmp_path_factory, demo_run) -> SearchIndex:
    return build_search_index(tmp_path_factory, demo_run)


@pytest.fixture(scope="module")
def searcher(search_index):
    from musicrep.search.query import Searcher

    return Searcher.open(search_index.index)


@contextlib.contextmanager
def serving(app, *, timeout: float = 30.0) -> Iterator[str]:
    """Run ``app`` with uvicorn in a thread on 127.0.0.1 (a free port); yields its base URL."""
    import uvicorn

    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, access_log=False, timeout_graceful_shutdown=2))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + timeout
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(timeout=timeout)
        listener.close()


@dataclass
class Served:
    url: str
    port: int
    upload_dir: Path
    client: httpx.Client


@pytest.fixture(scope="module")
def served(searcher, tmp_path_factory) -> Iterator[Served]:
    from musicrep.search.serve import create_app

    upload_dir = tmp_path_factory.mktemp("uploads")
    app = create_app(searcher, max_upload_bytes=UPLOAD_LIMIT, tmp_dir=upload_dir)
    with serving(app) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield Served(url=url, port=int(url.rsplit(":", 1)[1]), upload_dir=upload_dir, client=client)


def still_serving(served: Served) -> None:
    """The server answers a plain request after whatever the test sent it."""
    response = httpx.get(f"{served.url}/health", timeout=10)
    assert response.status_code == 200 and response.json()["status"] == "ok"


def wait_empty(folder: Path, timeout: float = 10.0) -> list[str]:
    """What is left in ``folder`` once it is empty or ``timeout`` passed (uploads are removed as requests end)."""
    deadline = time.monotonic() + timeout
    while list(folder.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def multipart(filename: str, content: bytes, **fields: str) -> bytes:
    parts = [f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode()
             for name, value in fields.items()]
    parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; filename="{filename}"\r\n'
                 "Content-Type: application/octet-stream\r\n\r\n".encode() + content + b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return b"".join(parts)


def upload_head(length: int | None) -> bytes:
    """Request line and headers of a multipart POST to /api/search (chunked when ``length`` is None)."""
    size = f"Content-Length: {length}" if length is not None else "Transfer-Encoding: chunked"
    return (f"POST /api/search HTTP/1.1\r\nHost: 127.0.0.1\r\n{size}\r\n"
            f"Content-Type: multipart/form-data; boundary={BOUNDARY}\r\n\r\n").encode()


def read_response(sock: socket.socket, timeout: float = 20.0) -> tuple[int, bytes]:
    """Status and whatever the server sent until it closed or ``timeout`` passed."""
    sock.settimeout(timeout)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\r\n\r\n" not in data or not _complete(data):
        if time.monotonic() > deadline:
            break
        try:
            chunk = sock.recv(65536)
        except (TimeoutError, ConnectionResetError):
            break
        if not chunk:
            break
        data += chunk
    match = re.match(rb"HTTP/1\.1 (\d{3})", data)
    return (int(match.group(1)) if match else 0), data


def _complete(data: bytes) -> bool:
    head, _, body = data.partition(b"\r\n\r\n")
    length = re.search(rb"(?i)content-length: (\d+)", head)
    return length is not None and len(body) >= int(length.group(1))


def raw_get(port: int, target: str) -> tuple[int, bytes]:
    """GET ``target`` exactly as written (no client-side normalization of dots or percent-escapes)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=20)
    try:
        connection.putrequest("GET", target, skip_accept_encoding=True)
        connection.endheaders()
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def smallest_audio(searcher, min_seconds: float = 4.0) -> Path:
    """The smallest indexed audio file lasting ``min_seconds`` or more (uploads stay under the test limit)."""
    import soundfile as sf

    paths = sorted((Path(searcher.audio_path(t)) for t in searcher.ids), key=lambda p: p.stat().st_size)
    path = next(p for p in paths if sf.info(p).duration >= min_seconds)
    assert path.stat().st_size < UPLOAD_LIMIT
    return path


def review_words(demo, n_words: int = 10) -> str:
    """The start of a review of the collection: a text query in words the text space knows."""
    text = next(t for t in demo.manifest.frame["text"] if isinstance(t, str) and len(t.split()) >= n_words)
    return " ".join(text.replace(";", ",").split()[:n_words])


def some_tracks(searcher, n: int = 3) -> list[dict]:
    """Indexed tracks with audio and at least one tag."""
    tracks = [searcher.track(track_id) for track_id in searcher.ids[:40]]
    tracks = [t for t in tracks if t["has_audio"] and any(t["tags"].values())]
    assert len(tracks) >= n
    return tracks[:n]


# ------------------------------------------------------------------------------------ health, page, docs


def test_health_page_assets_and_docs_work_offline(served, searcher, search_index):
    config = json.loads((search_index.model / "config.json").read_text())
    health = served.client.get("/health").json()
    assert health["status"] == "ok" and health["tracks"] == len(searcher.ids) > 0
    assert health["model_id"] == config["model_id"]
    assert health["max_k"] == searcher.max_k and health["max_upload_bytes"] == UPLOAD_LIMIT
    page = served.client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for name in ("app.js", "style.css", "favicon.svg"):
        assert f"/static/{name}" in page.text
        asset = served.client.get(f"/static/{name}")
        assert asset.status_code == 200 and asset.content
        assert not re.search(rb"(?:src|href|url)\s*[=(]\s*[\"']?(?:https?:)?//", asset.content), name
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", page.text)  # nothing from a CDN
    assert served.client.get("/static/nothing.js").status_code == 404
    docs = served.client.get("/docs")
    assert docs.status_code == 200 and "/api/search" in docs.text and "/api/audio/{track_id}" in docs.text
    assert not re.search(r"(?:src|href)=\"(?:https?:)?//", docs.text)
    assert "multipart/form-data" in docs.text
    openapi = served.client.get("/openapi.json").json()
    assert {"/api/search", "/api/tracks/{track_id}", "/api/audio/{track_id}", "/api/map", "/health"} <= set(
        openapi["paths"])
    assert served.client.get("/redoc").status_code == 404  # the CDN page is not offered


def test_map_has_every_indexed_track(served, searcher):
    points = served.client.get("/api/map").json()
    ids, xy = searcher.map_points()
    assert points["ids"] == list(ids) and len(points["xy"]) == len(ids)
    assert all(len(p) == 2 and all(abs(v - w) < 1e-4 for v, w in zip(p, q, strict=True))
               for p, q in zip(points["xy"], xy.tolist(), strict=True))


# ------------------------------------------------------------------------------------------------ search


def test_json_queries_answer_what_the_searcher_answers(served, searcher, demo):
    track = some_tracks(searcher, 1)[0]
    text = review_words(demo)
    tags = ";".join(next(v for v in track["tags"].values() if v)[:1])
    cases = {
        "track": ({"track_id": track["track_id"], "k": 5}, searcher.by_track(track["track_id"], k=5)),
        "tags": ({"tags": tags, "k": 4}, searcher.by_tags(tags, k=4)),
        "tags as a list": ({"tags": tags.split(";"), "k": 4}, searcher.by_tags(tags.split(";"), k=4)),
        "text": ({"text": text, "k": 6}, searcher.by_text(text, k=6)),
    }
    for name, (body, expected) in cases.items():
        response = served.client.post("/api/search", json=body)
        assert response.status_code == 200, (name, response.text)
        answer = response.json()
        assert [h["track_id"] for h in answer["hits"]] == [h.track_id for h in expected.hits], name
        assert len(answer["hits"]) == body["k"]
        assert answer["query"]["kind"] == expected.query["kind"]
        for hit in answer["hits"]:
            assert {"rank", "track_id", "score", "title", "artist", "album", "tags", "why", "xy"} <= set(hit)
            assert isinstance(hit["why"], dict)
        assert [h["rank"] for h in answer["hits"]] == list(range(1, body["k"] + 1))
        assert isinstance(answer["timings"], dict) and "search" in answer["timings"]
    # leaving out the query's artist
    response = served.client.post("/api/search", json={"track_id": track["track_id"], "k": 8,
                                                       "exclude_artist": True})
    assert response.status_code == 200
    assert all(hit["artist"] != track["artist"] for hit in response.json()["hits"])


def test_track_metadata(served, searcher):
    track = some_tracks(searcher, 1)[0]
    answer = served.client.get(f"/api/tracks/{track['track_id']}").json()
    assert answer["track_id"] == track["track_id"] and answer["title"] == track["title"]
    assert answer["tags"] == track["tags"]


def test_upload_query_with_timings_from_a_private_file_that_is_removed(served, searcher):
    path = smallest_audio(searcher)
    track_id = next(t for t in searcher.ids if Path(searcher.audio_path(t)) == path)
    response = served.client.post("/api/search", files={"file": (f"my clip{path.suffix}", path.read_bytes())},
                                  data={"k": "5", "exclude_artist": "false"})
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["query"]["kind"] == "audio" and answer["query"]["value"] == f"my clip{path.suffix}"
    assert {"decode", "embed", "search"} <= set(answer["timings"])
    expected = searcher.by_audio(path, k=5)
    assert [h["track_id"] for h in answer["hits"]] == [h.track_id for h in expected.hits]
    assert answer["hits"][0]["track_id"] == track_id  # a track's own file finds it first
    assert wait_empty(served.upload_dir) == []


def test_upload_is_written_to_a_private_file_while_it_arrives(served, searcher):
    """Half-sent upload: the server holds it in a 0600 file inside a 0700 folder; both go when it ends."""
    path = smallest_audio(searcher)
    body = multipart(path.name, path.read_bytes(), k="3")
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(upload_head(len(body)) + body[: len(body) // 2])
        deadline = time.monotonic() + 10
        while not list(served.upload_dir.rglob("upload-*")) and time.monotonic() < deadline:
            time.sleep(0.02)
        folders = list(served.upload_dir.iterdir())
        files = list(served.upload_dir.rglob("upload-*"))
        assert len(folders) == 1 and len(files) == 1
        assert stat.S_IMODE(folders[0].stat().st_mode) == 0o700
        assert stat.S_IMODE(files[0].stat().st_mode) == 0o600
        sock.sendall(body[len(body) // 2:])
        status, _ = read_response(sock, timeout=60)
    assert status == 200
    assert wait_empty(served.upload_dir) == []


# ----------------------------------------------------------------------------------- bad input, safety


BAD_QUERIES = {
    "empty object": {},
    "empty text": {"text": ""},
    "blank text": {"text": "   "},
    "only separators": {"tags": " ; ;"},
    "empty tag list": {"tags": []},
    "two kinds": {"text": "jazz", "tags": "jazz"},
    "k zero": {"text": "jazz", "k": 0},
    "k negative": {"text": "jazz", "k": -3},
    "k a string": {"text": "jazz", "k": "ten"},
    "k a float": {"text": "jazz", "k": 2.5},
    "text a number": {"text": 5},
    "unknown field": {"text": "jazz", "colour": "blue"},
    "a list": ["jazz"],
    "exclude_artist a string": {"track_id": "x", "exclude_artist": "maybe"},
}


@pytest.mark.parametrize("name", BAD_QUERIES)
def test_bad_json_queries_are_422_and_the_server_goes_on(served, name):
    response = served.client.post("/api/search", json=BAD_QUERIES[name])
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail
    still_serving(served)


def test_malformed_bodies_and_k_over_the_limit_are_422(served, searcher):
    cases = [
        ({"content": b'{"text": "ja', "headers": {"Content-Type": "application/json"}}, "malformed JSON"),
        ({"content": b"", "headers": {"Content-Type": "application/json"}}, "empty query"),
        ({"content": b"text=jazz", "headers": {"Content-Type": "text/plain"}}, "send JSON"),
        ({"content": json.dumps({"text": "a" * 70_000}).encode(), "headers": {"Content-Type": "application/json"}},
         "longer than"),
        ({"json": {"text": "jazz", "k": searcher.max_k + 1}}, f"between 1 and {searcher.max_k}"),
    ]
    for request, message in cases:
        response = served.client.post("/api/search", **request)
        assert response.status_code == 422 and message in response.json()["detail"], (message, response.text)
        still_serving(served)


def test_unknown_tracks_are_404(served):
    for response in (served.client.get("/api/tracks/no-such-track"), served.client.get("/api/audio/no-such-track"),
                     served.client.post("/api/search", json={"track_id": "no-such-track"})):
        assert response.status_code == 404 and "no-such-track" in response.json()["detail"]
    still_serving(served)


def test_exclude_artist_with_a_tag_or_text_query_is_422(served):
    for query in ({"tags": "rock", "exclude_artist": True}, {"text": "calm piano", "exclude_artist": True}):
        response = served.client.post("/api/search", json=query)
        assert response.status_code == 422, response.text
        assert "exclude_artist goes with track_id or an audio file" in response.json()["detail"]
    assert served.client.post("/api/search", json={"tags": "rock", "exclude_artist": False}).status_code == 200
    still_serving(served)


def test_error_bodies_show_no_server_paths(served, search_index, searcher):
    failed = search_index.index / "failed.csv"
    broken = [line.split(",", 1)[0] for line in failed.read_text().splitlines()[1:]]
    assert broken, "the demo's broken files should be listed in failed.csv"
    responses = [
        served.client.get("/api/tracks/no-such-track"),
        served.client.get("/api/audio/no-such-track"),
        served.client.post("/api/search", json={"track_id": "no-such-track"}),
        served.client.post("/api/search", json={"track_id": broken[0]}),
        served.client.get(f"/api/tracks/{broken[0]}"),
        served.client.post("/api/search", json={"tags": "nosuchtag"}),
        served.client.post("/api/search", files={"file": ("notes.wav", b"not audio at all\n" * 50)}),
    ]
    index_forms = {str(search_index.index), str(search_index.index.resolve()), str(search_index.run)}
    for response in responses:
        assert response.status_code in (404, 422), response.text
        detail = response.json()["detail"]
        assert not any(form in detail for form in index_forms), detail
        assert not re.search(r"(^|[\s'\"(=])/[\w.-]+/", detail), detail  # no absolute path at all
    assert "not in the index" in responses[0].json()["detail"]
    assert "is in the manifest but not indexed" in responses[3].json()["detail"]
    assert "notes.wav" in responses[-1].json()["detail"]
    still_serving(served)


def test_uploads_that_are_not_audio_are_422_naming_the_file(served, tmp_path):
    cases = {
        "notes.mp3": b"these are not audio samples\n" * 50,
        "random.wav": os.urandom(4000),
        "half.flac": b"fLaC\x00\x00\x00\x22" + os.urandom(3000),
        "../../escaped.mp3": b"ID3" + os.urandom(3000),  # a client's file name never becomes a path
    }
    for filename, content in cases.items():
        response = served.client.post("/api/search", files={"file": (filename, content)})
        assert response.status_code == 422, (filename, response.text)
        detail = response.json()["detail"]
        assert filename in detail and "musicrep-upload-" not in detail and "\n" not in detail
        still_serving(served)
    assert not (served.upload_dir.parent / "escaped.mp3").exists()
    assert not (served.upload_dir.parent.parent / "escaped.mp3").exists()
    empty = served.client.post("/api/search", files={"file": ("empty.wav", b"")})
    assert empty.status_code == 422 and "empty" in empty.json()["detail"]
    no_file = served.client.post("/api/search", files={"other": ("x.wav", b"123")})
    assert no_file.status_code == 422 and "'file'" in no_file.json()["detail"]
    bad_k = served.client.post("/api/search", files={"file": ("x.wav", b"123")}, data={"k": "lots"})
    assert bad_k.status_code == 422 and "k must be an integer" in bad_k.json()["detail"]
    broken = served.client.post("/api/search", content=multipart("x.wav", b"123")[:-30],
                                headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    assert broken.status_code == 422 and "multipart" in broken.json()["detail"]
    assert wait_empty(served.upload_dir) == []
    still_serving(served)


def test_uploads_over_the_limit_are_413_before_the_body_is_read(served):
    # declared too large: answered from the headers alone, not one byte of the body sent
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(upload_head(100 * 2 ** 20))
        status, data = read_response(sock)
    assert status == 413 and b"limit" in data
    # no length given (chunked): stopped as soon as the file passes the limit, the rest never sent
    body = multipart("big.wav", b"\x00" * (UPLOAD_LIMIT + 50_000))
    first = body[: UPLOAD_LIMIT + 10_000]
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(upload_head(None) + f"{len(first):x}\r\n".encode() + first + b"\r\n")
        status, data = read_response(sock)
    assert status == 413 and b"limit" in data
    # through an ordinary client too
    response = served.client.post("/api/search", files={"file": ("big.wav", b"\x00" * (UPLOAD_LIMIT + 1))})
    assert response.status_code == 413
    assert wait_empty(served.upload_dir) == []
    still_serving(served)


def test_a_client_that_leaves_mid_upload_leaves_nothing_behind(served):
    body = multipart("gone.wav", b"\x01" * 100_000)
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(upload_head(len(body)) + body[:40_000])
        deadline = time.monotonic() + 10
        while not list(served.upload_dir.iterdir()) and time.monotonic() < deadline:
            time.sleep(0.02)
    assert wait_empty(served.upload_dir) == []
    still_serving(served)


def test_audio_is_streamed_with_ranges(served, searcher):
    media_types = {".wav": "audio/wav", ".flac": "audio/flac", ".ogg": "audio/ogg", ".mp3": "audio/mpeg"}
    by_format: dict[str, str] = {}
    for track_id in searcher.ids:
        by_format.setdefault(Path(searcher.audio_path(track_id)).suffix, track_id)
    assert {".wav", ".ogg"} <= set(by_format)
    for suffix, track_id in by_format.items():
        data = Path(searcher.audio_path(track_id)).read_bytes()
        size = len(data)
        whole = served.client.get(f"/api/audio/{track_id}")
        assert whole.status_code == 200 and whole.content == data
        assert whole.headers["content-type"] == media_types[suffix]
        assert whole.headers["accept-ranges"] == "bytes" and int(whole.headers["content-length"]) == size
        part = served.client.get(f"/api/audio/{track_id}", headers={"Range": "bytes=0-99"})
        assert part.status_code == 206 and part.content == data[:100]
        assert part.headers["content-range"] == f"bytes 0-99/{size}" and part.headers["content-length"] == "100"
        assert part.headers["content-type"] == media_types[suffix]
        middle = served.client.get(f"/api/audio/{track_id}", headers={"Range": f"bytes={size // 2}-"})
        assert middle.status_code == 206 and middle.content == data[size // 2:]
        assert middle.headers["content-range"] == f"bytes {size // 2}-{size - 1}/{size}"
        tail = served.client.get(f"/api/audio/{track_id}", headers={"Range": "bytes=-50"})
        assert tail.status_code == 206 and tail.content == data[-50:]
        outside = served.client.get(f"/api/audio/{track_id}", headers={"Range": f"bytes={size + 10}-"})
        assert outside.status_code == 416 and outside.headers["content-range"] == f"bytes */{size}"
        head = served.client.head(f"/api/audio/{track_id}")
        assert head.status_code == 200 and int(head.headers["content-length"]) == size and not head.content
    still_serving(served)


def test_paths_in_requests_never_reach_the_filesystem(served, searcher, demo):
    track_id = searcher.ids[0]
    audio = Path(searcher.audio_path(track_id))
    relative = audio.relative_to(demo.manifest.audio_root).as_posix()
    secrets = {"passwd": b"root:", "manifest": b"PAR1", "source": b"create_app", "audio": audio.read_bytes()[:64]}
    targets = [
        "/api/audio/../../../../etc/passwd",
        "/api/audio/..%2F..%2F..%2F..%2Fetc%2Fpasswd",
        "/api/audio/%2e%2e%2f%2e%2e%2f%2e%2e%2fetc%2fpasswd",
        "/api/audio/%2E%2E/%2E%2E/etc/passwd",
        "/api/audio/%252e%252e%252f%252e%252e%252fetc%252fpasswd",
        "/api/audio/..%252F..%252Fetc%252Fpasswd",
        "/api/audio/..%5C..%5C..%5Cetc%5Cpasswd",
        "/api/audio/..%5c..%5cmanifest.parquet",
        "/api/audio/%2Fetc%2Fpasswd",
        "/api/audio//etc/passwd",
        "/api/audio/%2F" + "%2F".join(audio.parts[1:]),
        "/api/audio/" + relative.replace("/", "%2F"),
        "/api/audio/" + relative,
        "/api/audio/..%2Fmanifest.parquet",
        "/api/audio/..",
        "/api/audio/.",
        "/api/audio/%2e%2e",
        "/api/audio/" + track_id + "%2F..%2F..%2Fmanifest.parquet",
        "/api/audio/" + track_id + "%00.txt",
        "/api/tracks/..%2F..%2Fetc%2Fpasswd",
        "/api/tracks/%2e%2e",
        "/static/..%2Fapp.py",
        "/static/%2e%2e%2fapp.py",
        "/static/../app.py",
        "/static/..%5Capp.py",
        "/static/%2Fetc%2Fpasswd",
        "/static/....//....//etc/passwd",
    ]
    for target in targets:
        status, body = raw_get(served.port, target)
        assert status in (400, 404), (target, status)
        for name, secret in secrets.items():
            assert secret not in body, (target, name)
    # a backslash path sent raw: not a valid request target, refused by the HTTP parser or unknown
    with socket.create_connection(("127.0.0.1", served.port), timeout=20) as sock:
        sock.sendall(b"GET /api/audio/..\\..\\etc\\passwd HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        status, body = read_response(sock)
    assert status in (400, 404) and b"root:" not in body
    for value in ("../../etc/passwd", "/etc/passwd", str(audio), relative, "..\\..\\etc\\passwd", "%2e%2e%2f"):
        response = served.client.post("/api/search", json={"track_id": value})
        assert response.status_code == 404, value
    still_serving(served)


def test_concurrent_queries_give_the_sequential_answers(served, searcher, demo):
    tracks = some_tracks(searcher, 3)
    path = smallest_audio(searcher)
    tags = ";".join(tag for values in tracks[1]["tags"].values() for tag in values[:1])
    requests = [{"json": {"track_id": t["track_id"], "k": 5}} for t in tracks]
    requests += [{"json": {"text": review_words(demo), "k": 5}}, {"json": {"tags": tags, "k": 5}}]
    requests += [{"files": {"file": (path.name, path.read_bytes())}, "data": {"k": "5"}}] * 2

    def ask(request: dict) -> list[str]:
        with httpx.Client(base_url=served.url, timeout=120) as client:
            response = client.post("/api/search", **request)
        assert response.status_code == 200, response.text
        return [hit["track_id"] for hit in response.json()["hits"]]

    sequential = [ask(request) for request in requests]
    with ThreadPoolExecutor(max_workers=8) as pool:
        concurrent = list(pool.map(ask, requests * 2))
    assert concurrent == sequential * 2
    assert wait_empty(served.upload_dir) == []


# ------------------------------------------------------------------------------------------------- CLI


def test_serve_command_refusals_are_one_line(search_index, tmp_path):
    missing = run_cli("serve", "--index", tmp_path / "no-index")
    assert missing.exit_code == 2 and missing.stderr.startswith("error:")
    assert len(missing.stderr.strip().splitlines()) == 1
    bad_port = run_cli("serve", "--index", search_index.index, "--port", "70000")
    assert bad_port.exit_code == 2 and "--port must be between 0 and 65535" in bad_port.stderr
    bad_limit = run_cli("serve", "--index", search_index.index, "--max-upload-mb", "0")
    assert bad_limit.exit_code == 2 and "--max-upload-mb must be positive" in bad_limit.stderr
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        busy = run_cli("serve", "--index", search_index.index, "--port", str(port))
    assert busy.exit_code == 2 and f"cannot listen on 127.0.0.1:{port}: the port is in use" in busy.stderr


def start_serve_command(index: Path, *extra: str, timeout: float = 120.0) -> tuple[subprocess.Popen, str]:
    """`musicrep serve --index INDEX --port 0 ...` as a user runs it; returns the process and its URL."""
    script = Path(sys.executable).parent / "musicrep"
    process = subprocess.Popen([str(script), "serve", "--index", str(index), "--port", "0", *extra],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + timeout
    line = ""
    while time.monotonic() < deadline and process.poll() is None:
        line = process.stdout.readline()
        found = re.search(r"http://(127\.0\.0\.1:\d+)/", line)
        if found:
            return process, f"http://{found.group(1)}"
    process.kill()
    raise AssertionError(f"`musicrep serve` did not start: {line!r} {process.stderr.read()[-2000:]}")


def stop(process: subprocess.Popen, sig: int = signal.SIGINT, timeout: float = 30.0) -> tuple[int, str, str]:
    process.send_signal(sig)
    try:
        out, err = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        out, err = process.communicate()
    return process.returncode, out, err


def test_serve_command_listens_on_loopback_and_stops_cleanly(search_index):
    import psutil

    process, url = start_serve_command(search_index.index)
    try:
        assert httpx.get(f"{url}/health", timeout=30).json()["status"] == "ok"
        server = psutil.Process(process.pid)
        connections = getattr(server, "net_connections", None) or server.connections  # psutil < 6: connections
        listening = [c for c in connections(kind="tcp") if c.status == psutil.CONN_LISTEN]
        assert [c.laddr.ip for c in listening] == ["127.0.0.1"]
    finally:
        code, out, err = stop(process, signal.SIGINT)
    assert code == 0 and "stopped" in out, err
    process, url = start_serve_command(search_index.index)
    code, out, err = stop(process, signal.SIGTERM)
    assert code == 0 and "stopped" in out, err
