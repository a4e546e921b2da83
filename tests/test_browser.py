"""The web page of `musicrep serve`, end to end in headless Chromium.

Starts the real server (`musicrep serve --port 0`, a subprocess on 127.0.0.1) on a real index and drives the
page with Playwright for Python through Debian's chromium (never a downloaded browser): a text query, a tag
query, an upload, playing and seeking a result, "more like this", an error shown to the user, the API page.
A screenshot is saved in the test's folder and copied to ``test-artifacts/serve-page.png``.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from test_serve import build_search_index, review_words, smallest_audio, start_serve_command, stop

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts"
WAIT_MS = 30_000
"""Upper bound of every wait on the page."""

pytestmark = pytest.mark.skipif(CHROMIUM is None, reason="Debian's chromium is not installed "
                                "(apt-get install chromium; .ci/run installs it)")


@pytest.fixture(scope="module")
def search_index(tmp_path_factory, demo_run):
    return build_search_index(tmp_path_factory, demo_run)


@pytest.fixture(scope="module")
def server(search_index):
    process, url = start_serve_command(search_index.index)
    yield url
    stop(process)


@pytest.fixture(scope="module")
def upload_file(search_index) -> tuple[Path, str]:
    """An indexed track's own file (the smallest) and its id."""
    from musicrep.search.query import Searcher

    searcher = Searcher.open(search_index.index)
    path = smallest_audio(searcher)
    return path, next(t for t in searcher.ids if Path(searcher.audio_path(t)) == path)


def test_search_listen_and_map_in_chromium(server, upload_file, demo, tmp_path):
    from playwright.sync_api import sync_playwright

    path, track_id = upload_file
    requests: list[str] = []
    audio_statuses: list[int] = []
    errors: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, headless=True,
                                             args=["--autoplay-policy=no-user-gesture-required"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900})
            page.set_default_timeout(WAIT_MS)
            page.on("request", lambda request: requests.append(request.url))
            page.on("response", lambda response: audio_statuses.append(response.status)
                    if "/api/audio/" in response.url else None)
            page.on("pageerror", lambda exc: errors.append(f"page error: {exc}"))
            page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)

            page.goto(server)
            page.wait_for_selector("body[data-ready=true]")
            n_tracks = int(re.match(r"(\d+) tracks", page.text_content("#status")).group(1))
            assert page.get_attribute("#map", "data-points") == str(n_tracks)

            # a text query (auto: no ";"), typed and submitted with Enter
            page.fill("#query", review_words(demo))
            page.press("#query", "Enter")
            page.wait_for_selector("#results[data-query-kind=text] .hit")
            hits = page.locator("#results .hit")
            assert hits.count() == min(10, n_tracks)
            first = hits.first
            assert first.locator(".title").text_content().strip()
            assert re.fullmatch(r"score -?\d\.\d{3}", first.locator(".score").text_content())
            assert first.locator(".why").text_content().startswith("Why:")
            assert first.locator("button.play").is_visible()
            assert page.get_attribute("#map", "data-highlighted") == str(hits.count())

            # tags (auto: ";" separates tags)
            tag = page.locator("#results .hit .tag").first.text_content()
            page.fill("#query", f"{tag};")
            page.press("#query", "Enter")
            page.wait_for_selector("#results[data-query-kind=tags] .hit")
            assert tag in page.text_content("#results-title")

            # an upload: the track's own file finds it first; timings shown; the query drawn on the map
            with page.expect_response(lambda response: response.url.endswith("/api/search")) as searched:
                page.set_input_files("#file", str(path))
            answer = searched.value.json()
            page.wait_for_selector("#results[data-query-kind=audio] .hit")
            assert page.get_attribute("#results .hit >> nth=0", "data-track-id") == track_id
            assert all(step in page.text_content("#timings") for step in ("decode", "embed", "search"))
            assert answer["hits"][0]["track_id"] == track_id
            if answer.get("query_xy") is not None:
                assert page.get_attribute("#map", "data-query") == "shown"

            # play the first result: the audio element's time advances; seeking works (HTTP ranges)
            page.click("#results .hit >> nth=0 >> button.play")
            page.wait_for_function("() => document.querySelector('#player').currentTime > 0.3")
            src = page.get_attribute("#player", "src")
            assert src.endswith(f"/api/audio/{track_id}")
            assert page.locator("#results .hit.playing").count() == 1
            page.screenshot(path=str(tmp_path / "serve-page.png"))
            assert page.evaluate("() => document.querySelector('#player').duration") >= 4
            page.evaluate("() => { const a = document.querySelector('#player'); a.currentTime = a.duration / 2; }")
            page.wait_for_function("() => { const a = document.querySelector('#player'); "
                                   "return !a.seeking && a.currentTime >= a.duration / 2 - 0.2; }")
            assert 206 in audio_statuses  # the media element asked for byte ranges and got them

            # "more like this": a track query
            page.click("#results .hit >> nth=1 >> button.similar")
            page.wait_for_selector("#results[data-query-kind=track] .hit")
            assert not errors, errors

            # the server's refusal is shown, and the page keeps working
            page.fill("#query", " ; ;")
            page.press("#query", "Enter")
            page.wait_for_selector("#message.error")
            assert "exactly one of" in page.text_content("#message")
            page.fill("#k", "3")
            page.fill("#query", "jazz")
            page.press("#query", "Enter")
            page.wait_for_selector("#results[data-query-kind=text] .hit >> nth=2")
            assert page.locator("#results .hit").count() == 3

            page.goto(f"{server}/docs")
            assert "/api/search" in page.text_content("body")
        finally:
            browser.close()
    assert (tmp_path / "serve-page.png").stat().st_size > 10_000
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(tmp_path / "serve-page.png", ARTIFACTS / "serve-page.png")
    # everything the page loaded came from the server itself (works offline)
    assert requests and all(url.startswith(server) for url in requests), [u for u in requests
                                                                            if not u.startswith(server)]
    page_errors = [e for e in errors if e.startswith("page error")]
    assert not page_errors
