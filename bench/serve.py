"""Benchmark: `musicrep serve` under loopback load, next to the same queries on the Searcher in one process.

Starts the real server (``musicrep serve --index IDX --port 0``, a subprocess on 127.0.0.1), then:

* **load**: ``--clients`` concurrent clients (one keep-alive connection each, asyncio + httpx) send
  queries back to back for ``--seconds``, mixing track, tag and text queries in equal parts (tags
  taken from indexed tracks, texts in several languages); prints requests/s, p50/p95/p99 latency and
  the error count (anything but 200 is an error: there must be none);
* **reference**: the same queries called on :class:`~musicrep.search.query.Searcher` in this process,
  one at a time, no HTTP: queries/s, and the ratio server / in-process (what HTTP, JSON and the thread
  pool cost or win with concurrency);
* **upload**: an audio-upload query (an indexed track's own file, fetched from ``/api/audio``),
  ``--uploads`` times one after another: latency as the client sees it, split into decode, embed and
  search from the answer's ``timings``; the rest is upload, parsing and the answer.

Usage: ``python bench/serve.py [--index RUN/index] [--seconds 30] [--clients 16] [--uploads 5]``
(default index: ``runs/demo/index``; without it one is built from ``runs/demo`` into ``bench/out/serve``,
the run left untouched). ``--threads N`` sets OMP/MKL/torch threads in the server (library default
otherwise).
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

DEMO_RUN = Path("runs/demo")
TEXTS = [
    "calm piano music for a quiet evening",
    "energetic rock with distorted guitars",
    "musique douce et mélancolique",
    "música alegre para bailar",
    "ruhige Musik mit Gitarre",
    "musica jazz rilassante",
    "dark electronic beats",
    "uplifting folk songs about travel",
]


def default_index(out: Path) -> Path:
    """``runs/demo/index`` when it exists; else an index of ``runs/demo`` built into ``out`` (once)."""
    if (DEMO_RUN / "index").is_dir():
        return DEMO_RUN / "index"
    index = out / "index"
    if not index.is_dir():
        print(f"building an index of {DEMO_RUN} into {index} ...", flush=True)
        built = subprocess.run([str(Path(sys.executable).parent / "musicrep"), "index", "--model",
                                str(DEMO_RUN / "model"), "--run", str(DEMO_RUN), "--out", str(index)])
        if built.returncode not in (0, 1):  # 1: the demo's deliberately broken files are left out
            sys.exit(f"musicrep index failed (exit {built.returncode})")
    return index


def start_server(index: Path, threads: int | None) -> tuple[subprocess.Popen, str]:
    """``musicrep serve --port 0`` in a subprocess; returns it and its base URL once it listens."""
    env = dict(os.environ)
    if threads:
        env.update(OMP_NUM_THREADS=str(threads), MKL_NUM_THREADS=str(threads))
    script = str(Path(sys.executable).parent / "musicrep")
    server = subprocess.Popen([script, "serve", "--index", str(index), "--port", "0"], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        line = server.stdout.readline()
        if not line:
            break
        found = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        if found:
            return server, f"http://127.0.0.1:{found.group(1)}"
    server.kill()
    raise RuntimeError(f"the server did not start:\n{server.stderr.read()[-2000:]}")


def query_mix(base: str, n_tracks: int, seed: int = 0) -> list[dict]:
    """Track, tag and text queries in equal parts, from the index's own tracks."""
    rng = random.Random(seed)
    with httpx.Client(base_url=base, timeout=60) as client:
        ids = client.get("/api/map").json()["ids"]
        sample = rng.sample(ids, min(n_tracks, len(ids)))
        tag_sets = []
        for track_id in sample:
            tags = [t for values in client.get(f"/api/tracks/{track_id}").json()["tags"].values() for t in values]
            if tags:
                tag_sets.append(";".join(rng.sample(tags, min(2, len(tags)))))
    queries = []
    for i, track_id in enumerate(sample):
        queries.append({"track_id": track_id, "k": 10})
        queries.append({"tags": tag_sets[i % len(tag_sets)], "k": 10})
        queries.append({"text": TEXTS[i % len(TEXTS)], "k": 10})
    return queries


async def load(base: str, queries: list[dict], *, clients: int, seconds: float) -> tuple[list[float], int, int]:
    """``clients`` loops sending ``queries`` for ``seconds``: latencies (s), errors, requests done."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds

    async def client(offset: int) -> None:
        nonlocal errors
        async with httpx.AsyncClient(base_url=base, timeout=60) as session:
            for query in itertools.islice(itertools.cycle(queries), offset, None):
                if time.perf_counter() >= deadline:
                    return
                start = time.perf_counter()
                try:
                    response = await session.post("/api/search", json=query)
                    ok = response.status_code == 200 and response.json()["hits"]
                except httpx.HTTPError:
                    ok = False
                latencies.append(time.perf_counter() - start)
                errors += not ok

    await asyncio.gather(*(client(i * 7) for i in range(clients)))
    return latencies, errors, len(latencies)


def in_process(index: Path, queries: list[dict], seconds: float) -> float:
    """Queries per second of the same queries on the Searcher in this process, one at a time, no HTTP."""
    from musicrep.search.query import Searcher

    searcher = Searcher.open(index)
    calls = {"track_id": searcher.by_track, "tags": searcher.by_tags, "text": searcher.by_text}
    for query in queries[:9]:  # warm-up, as the server's first requests
        kind = next(k for k in calls if k in query)
        calls[kind](query[kind], k=query["k"])
    done, start = 0, time.perf_counter()
    for query in itertools.cycle(queries):
        kind = next(k for k in calls if k in query)
        calls[kind](query[kind], k=query["k"])
        done += 1
        if time.perf_counter() - start >= seconds:
            break
    return done / (time.perf_counter() - start)


def uploads(base: str, track_id: str, n: int) -> tuple[list[float], dict[str, list[float]], int]:
    """``n`` audio-upload queries with one indexed track's file: client latencies, server timings, file size."""
    with httpx.Client(base_url=base, timeout=120) as client, tempfile.TemporaryDirectory() as folder:
        audio = client.get(f"/api/audio/{track_id}")
        audio.raise_for_status()
        suffix = {"audio/mpeg": ".mp3", "audio/ogg": ".ogg", "audio/flac": ".flac"}.get(
            audio.headers["content-type"], ".wav")
        path = Path(folder) / f"clip{suffix}"
        path.write_bytes(audio.content)
        latencies, timings = [], {}
        for _ in range(n):
            start = time.perf_counter()
            with path.open("rb") as handle:
                response = client.post("/api/search", files={"file": (path.name, handle)}, data={"k": "10"})
            latencies.append(time.perf_counter() - start)
            response.raise_for_status()
            for step, seconds in response.json()["timings"].items():
                timings.setdefault(step, []).append(seconds)
    return latencies, timings, len(audio.content)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--index", type=Path, default=None, help="index folder (default: the demo run's)")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--uploads", type=int, default=5)
    parser.add_argument("--threads", type=int, default=None, help="OMP/MKL threads in the server")
    parser.add_argument("--out", type=Path, default=Path("bench/out/serve"))
    args = parser.parse_args()
    index = args.index or default_index(args.out)
    server, base = start_server(index, args.threads)
    try:
        health = httpx.get(f"{base}/health", timeout=30).json()
        queries = query_mix(base, 60)
        asyncio.run(load(base, queries[:30], clients=4, seconds=2))  # warm-up: first calls load lazily
        load_before = os.getloadavg()[0]
        latencies, errors, done = asyncio.run(load(base, queries, clients=args.clients, seconds=args.seconds))
        upload_latency, upload_timings, upload_bytes = uploads(base, queries[0]["track_id"], args.uploads)
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
    reference = in_process(index, queries, min(args.seconds, 10.0))
    rate = done / args.seconds
    p50, p95, p99 = (1000 * np.percentile(latencies, q) for q in (50, 95, 99))
    cores = os.cpu_count() or 1
    print(f"index {index}: {health['tracks']} tracks, model {str(health['model_id'])[:12]}; {args.clients} clients "
          f"for {args.seconds:g} s over loopback; track/tags/text queries in equal parts, k=10; {cores} cores, "
          f"load average {load_before:.1f} before")
    print(f"  server     {rate:8.1f} requests/s   p50 {p50:6.1f} ms   p95 {p95:6.1f} ms   p99 {p99:6.1f} ms   "
          f"errors {errors} of {done}")
    print(f"  in-process {reference:8.1f} queries/s (Searcher, one at a time, no HTTP)")
    print(f"  server / in-process = {rate / reference:.2f}x")
    median = {step: 1000 * float(np.median(values)) for step, values in upload_timings.items()}
    total = 1000 * float(np.median(upload_latency))
    split = "  ".join(f"{step} {ms:.1f} ms" for step, ms in median.items())
    print(f"  audio upload ({upload_bytes / 1024:.0f} KiB, median of {args.uploads}): {total:.1f} ms = {split}  "
          f"+ upload, parsing and answer {total - sum(median.values()):.1f} ms")
    if errors:
        sys.exit(f"{errors} requests failed")


if __name__ == "__main__":
    main()
