"""Shared benchmark helper: run a step in a fresh interpreter and read its time and peak RSS."""

from __future__ import annotations

import json
import subprocess
import sys

_MEASURE = r"""
import json, resource, sys, time
start = time.perf_counter()
code = 0
try:
    {body}
except SystemExit as exc:
    code = exc.code or 0
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 ** 2
print("MEASURE " + json.dumps({{"seconds": elapsed, "peak_gb": peak, "exit": code}}), file=sys.stderr)
"""


def measure(body: str) -> dict:
    """Run Python ``body`` in a fresh interpreter; return seconds, peak RSS (GB), exit code and stdout."""
    script = _MEASURE.format(body=body.replace("\n", "\n    "))
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    line = next((x for x in proc.stderr.splitlines() if x.startswith("MEASURE ")), None)
    if line is None:
        raise RuntimeError(f"benchmark step failed:\n{proc.stderr[-2000:]}")
    result = json.loads(line[len("MEASURE "):])
    result["stdout"] = proc.stdout
    return result


def measure_cli(argv: list[str]) -> dict:
    """Run ``musicrep ARGV`` in a fresh interpreter; return seconds, peak RSS and exit code."""
    return measure(f"from musicrep.cli import main; sys.argv = {['musicrep', *argv]!r}; main()")
