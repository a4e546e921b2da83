"""Benchmark: FAISS IVF-Flat and USearch HNSW against exact numpy search, on clustered unit vectors.

Each library runs in a fresh interpreter (so that its memory is its own) on the same
generated collection: ``--n`` unit vectors of ``--dim`` dimensions in ``n / 1000``
clusters ("artists") around 16 centers ("genres"), each cluster varying along 16
directions of its own plus a little isotropic noise (learned embeddings have a low
intrinsic dimension), and ``--queries`` held-out queries drawn the same way. In the
same process, on the same data:

* exact search: :func:`musicrep.search.vectors.exact_search` (numpy matrix products,
  ``argpartition``), which is also the ground truth of recall@10;
* the library's index as ``musicrep index`` builds it
  (:func:`musicrep.search.vectors.build_vector_index`): training or linking, then the
  calibration that picks the smallest search effort (FAISS ``nprobe``, USearch
  ``expansion_search``) reaching recall@10 >= 0.95 on a sample of indexed rows;
  build time includes both;
* memory: resident growth during the build (peak and after) and the saved file's size;
* queries/s batched (all queries in one call) and one query per call, against exact
  search the same way; recall@10 of the held-out queries.

Search runs on one thread everywhere (numpy's BLAS, FAISS's OpenMP, USearch), the build on
``--build-threads``. At 1,000,000 vectors on 2 cores FAISS takes about a minute in all and
USearch's graph about 10 minutes; ``--n 100000`` is a quick look (under a minute each).

Usage: ``python bench/index.py [--n 1000000] [--dim 128] [--queries 1000] [--build-threads 2]``
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

ONE_THREAD = {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
LIBRARIES = ("faiss-ivf", "usearch-hnsw")
GENRES, INTRINSIC = 16, 16
SINGLE_EXACT = 20  # exact single queries timed (each scans every vector)


def clustered(n: int, dim: int, n_clusters: int, *, seed: int, queries_seed: int | None = None):
    """``n`` unit vectors of ``n_clusters`` clusters, float32, generated in blocks (peak memory ~ the output);
    ``queries_seed`` draws other vectors of the same clusters."""
    import numpy as np

    rng = np.random.default_rng(seed)
    genres = rng.standard_normal((GENRES, dim)).astype(np.float32)
    centers = genres[rng.integers(0, GENRES, n_clusters)] + 0.7 * rng.standard_normal((n_clusters, dim)).astype(
        np.float32)
    bases = rng.standard_normal((n_clusters, INTRINSIC, dim)).astype(np.float32) / np.sqrt(INTRINSIC)
    spread = rng.uniform(0.5, 1.0, n_clusters).astype(np.float32)
    draw = np.random.default_rng(seed if queries_seed is None else queries_seed)
    out = np.empty((n, dim), dtype=np.float32)
    for first in range(0, n, 50_000):
        m = min(50_000, n - first)
        cluster = draw.integers(0, n_clusters, m)
        z = draw.standard_normal((m, 1, INTRINSIC)).astype(np.float32)
        block = centers[cluster] + spread[cluster, None] * (z @ bases[cluster])[:, 0]
        block += 0.1 * draw.standard_normal((m, dim)).astype(np.float32)
        out[first:first + m] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def _rss_mb(field: str) -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) / 1024
    return float("nan")


def worker(library: str, n: int, dim: int, n_queries: int, build_threads: int, out: Path) -> dict:
    """Build ``library``'s index and measure it against exact search; runs in its own interpreter."""
    from musicrep.search.vectors import VECTOR_INDEXES, build_vector_index, exact_search, recall_at_k

    n_clusters = max(GENRES, n // 1000)
    vectors = clustered(n, dim, n_clusters, seed=0)
    queries = clustered(n_queries, dim, n_clusters, seed=0, queries_seed=1)
    k = 10
    timings: dict[str, float] = {}

    start = time.perf_counter()
    _, truth = exact_search(vectors, queries, k)
    timings["exact_batch"] = time.perf_counter() - start
    start = time.perf_counter()
    for query in queries[:SINGLE_EXACT]:
        exact_search(vectors, query[None], k)
    timings["exact_single"] = (time.perf_counter() - start) / SINGLE_EXACT

    _set_threads(library, build_threads)
    Path("/proc/self/clear_refs").write_text("5")  # peak RSS from here on is the build's
    base = _rss_mb("VmRSS")
    start = time.perf_counter()
    index = build_vector_index(vectors, kind=library, threads=build_threads)
    build = time.perf_counter() - start
    peak, after = _rss_mb("VmHWM") - base, _rss_mb("VmRSS") - base
    _set_threads(library, 1)
    path = out / f"{library}.index"
    index.save(path)
    size = path.stat().st_size / 2**20
    assert type(index) is VECTOR_INDEXES[library]

    start = time.perf_counter()
    _, found = index.search(queries, k)
    timings["ann_batch"] = time.perf_counter() - start
    single = min(n_queries, 500)
    start = time.perf_counter()
    for query in queries[:single]:
        index.search(query[None], k)
    timings["ann_single"] = (time.perf_counter() - start) / single
    return {"library": library, "build_s": build, "peak_mb": peak, "resident_mb": after, "file_mb": size,
            "params": index.params(), "recall": recall_at_k(found, truth, k),
            "exact_qps": n_queries / timings["exact_batch"], "exact_single_qps": 1 / timings["exact_single"],
            "ann_qps": n_queries / timings["ann_batch"], "ann_single_qps": 1 / timings["ann_single"],
            "data_mb": vectors.nbytes / 2**20}


def _set_threads(library: str, threads: int) -> None:
    """FAISS's OpenMP pool (USearch takes its threads per call)."""
    if library == "faiss-ivf":
        import faiss

        faiss.omp_set_num_threads(threads)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--n", type=int, default=1_000_000, help="indexed vectors")
    parser.add_argument("--dim", type=int, default=128)
    parser.add_argument("--queries", type=int, default=1000, help="held-out queries")
    parser.add_argument("--build-threads", type=int, default=2)
    parser.add_argument("--libraries", default=",".join(LIBRARIES))
    parser.add_argument("--out", type=Path, default=Path("bench/out/index"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    if args.worker:
        result = worker(args.worker, args.n, args.dim, args.queries, args.build_threads, args.out)
        print("RESULT " + json.dumps(result))
        return
    results = []
    for library in args.libraries.split(","):
        argv = [sys.executable, __file__, "--worker", library, "--n", str(args.n), "--dim", str(args.dim),
                "--queries", str(args.queries), "--build-threads", str(args.build_threads), "--out", str(args.out)]
        proc = subprocess.run(argv, capture_output=True, text=True, env={**os.environ, **ONE_THREAD})
        line = next((x for x in proc.stdout.splitlines() if x.startswith("RESULT ")), None)
        if line is None:
            raise RuntimeError(f"{library} failed:\n{proc.stderr[-3000:]}")
        results.append(json.loads(line[len("RESULT "):]))
    first = results[0]
    print(f"{args.n:,} x {args.dim} clustered unit vectors ({first['data_mb']:.0f} MB), {args.queries} held-out "
          f"queries, k=10; search on 1 thread, build on {args.build_threads}; load average {os.getloadavg()[0]:.1f}")
    print(f"{'':<14}{'build s':>8}{'peak MB':>9}{'kept MB':>9}{'file MB':>9}{'recall@10':>10}{'batch q/s':>11}"
          f"{'vs exact':>9}{'1-query q/s':>12}{'vs exact':>9}  search effort")
    for r in results:
        print(f"{'exact (numpy)':<14}{'':>8}{'':>9}{'':>9}{'':>9}{1.0:>10.3f}{r['exact_qps']:>11.0f}{'1.0x':>9}"
              f"{r['exact_single_qps']:>12.1f}{'1.0x':>9}  (same run as {r['library']})")
        print(f"{r['library']:<14}{r['build_s']:>8.1f}{r['peak_mb']:>9.0f}{r['resident_mb']:>9.0f}{r['file_mb']:>9.0f}"
              f"{r['recall']:>10.3f}{r['ann_qps']:>11.0f}{r['ann_qps'] / r['exact_qps']:>8.1f}x"
              f"{r['ann_single_qps']:>12.0f}{r['ann_single_qps'] / r['exact_single_qps']:>8.1f}x  "
              f"{json.dumps(r['params'])}")


if __name__ == "__main__":
    main()
