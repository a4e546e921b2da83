"""What the C decoders print (libmpg123: "Xing stream size off", "Illegal Audio-MPEG-Header", ...) ends up
in the track's log message or the log, never on the process's stderr (fd 2)."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import soundfile as sf

from conftest import run_musicrep, write_tone
from musicrep.data.align import align
from musicrep.data.sources.folder import FolderSource
from musicrep.features.audio import load_segment, probe
from musicrep.features.extract import ExtractConfig, extract

CHATTER = ("xing", "mpeg", "part2_3", "resync", "dequantization")


def _chatter(text: str) -> list[str]:
    return [line for line in text.splitlines() if any(word in line.lower() for word in CHATTER)]


@pytest.fixture(scope="module")
def mp3s(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A 20-s mp3 (a tone: libmpg123 complains after every seek into it), cut to 2/5, and with bytes garbled."""
    root = tmp_path_factory.mktemp("mp3")
    data = write_tone(root / "clean.mp3", seconds=20.0).read_bytes()
    (root / "truncated.mp3").write_bytes(data[: len(data) * 2 // 5])
    garbled = bytearray(data)
    rng = np.random.default_rng(0)
    for offset in range(len(data) // 3, len(data) // 3 + 4000, 97):
        garbled[offset:offset + 8] = rng.integers(0, 256, 8, dtype=np.uint8).tobytes()
    (root / "corrupt.mp3").write_bytes(bytes(garbled))
    return {name: root / f"{name}.mp3" for name in ("clean", "truncated", "corrupt")}


def test_the_decoder_itself_prints_to_stderr(mp3s):
    """The premise: soundfile alone lets libmpg123 write these lines to fd 2."""
    for name, expected in (("truncated", "Xing stream size"), ("corrupt", "Illegal Audio-MPEG-Header")):
        proc = subprocess.run([sys.executable, "-c", "import soundfile, sys; soundfile.read(sys.argv[1])",
                               str(mp3s[name])], capture_output=True, text=True, timeout=60)
        assert proc.returncode == 0 and expected in proc.stderr


def test_extract_cli_puts_decoder_output_in_the_log_not_on_stderr(mp3s, tmp_path):
    tidfile = tmp_path / "tids.csv"
    pd.DataFrame({"track_id": list(mp3s), "filename": [str(p) for p in mp3s.values()]}).to_csv(tidfile, index=False)
    result = run_musicrep("extract", "--tidfile", tidfile, "--dst", tmp_path / "features")
    assert result.exit_code == 0, result.stderr
    assert _chatter(result.stderr) == [] and _chatter(result.stdout) == []
    log = pd.read_csv(tmp_path / "features" / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert (log.status == "ok").all()
    assert log.loc["clean", "message"] == ""  # the complaints after seeking to 3 s are not the file's
    assert log.loc["truncated", "message"] == ("decoded with warnings: Warning: Xing stream size off by more "
                                               "than 1%, fuzzy seeking may be even more fuzzy than by design!")
    corrupt = log.loc["corrupt", "message"]
    assert corrupt.startswith("decoded with warnings: ") and "Illegal Audio-MPEG-Header" in corrupt
    assert "[src/" not in corrupt and len(corrupt) < 500  # trimmed, first distinct lines only


@pytest.mark.parametrize("segment", ["original", "full"])
def test_extract_one_track_in_process(mp3s, tmp_path, capfd, segment):
    config = ExtractConfig(segment=segment)
    tracks = pd.DataFrame({"track_id": list(mp3s), "filename": [str(p) for p in mp3s.values()]})
    report = extract(tracks, tmp_path / "features", config)
    results = {r.track_id: r for r in report.results}
    assert all(r.status == "ok" for r in results.values())
    assert results["clean"].message == ""
    assert results["truncated"].message.startswith("decoded with warnings: Warning: Xing stream size")
    assert results["corrupt"].message.startswith("decoded with warnings: ")
    assert _chatter(capfd.readouterr().err) == []


def test_probe_and_decode_in_the_main_process(mp3s, capfd):
    from musicrep.features.audio import decoder_output

    with decoder_output() as output:
        info = probe(mp3s["truncated"])
        y = load_segment(mp3s["truncated"])
    assert info.format == "mp3" and y.shape[0] == 2
    assert output.summary() == "Warning: Xing stream size off by more than 1%, fuzzy seeking may be even more " \
                               "fuzzy than by design!"  # printed by the probe and by the decode: shown once
    with decoder_output() as output:
        load_segment(mp3s["clean"])
    assert output.summary() == ""
    assert _chatter(capfd.readouterr().err) == []


def test_without_a_collector_the_decoder_output_is_logged(mp3s, capfd, caplog):
    with caplog.at_level(logging.WARNING, logger="musicrep.features.audio"):
        probe(mp3s["truncated"])
    assert "truncated.mp3: the decoder printed: Warning: Xing stream size" in caplog.text
    assert _chatter(capfd.readouterr().err) == []


def test_align_probes_headers_quietly(mp3s, tmp_path, capfd, caplog):
    meta = tmp_path / "meta.csv"
    pd.DataFrame({"path": [p.name for p in mp3s.values()], "genres": "rock"}).to_csv(meta, index=False)
    with caplog.at_level(logging.INFO, logger="musicrep.data.align"):
        report = align(FolderSource(audio_root=mp3s["clean"].parent, metadata=meta), tmp_path / "out")
    assert report.n_tracks == 3 and report.problems == []
    assert _chatter(capfd.readouterr().err) == []
    assert "truncated.mp3: the decoder printed while reading the header: Warning: Xing" in caplog.text
    assert "clean.mp3" not in caplog.text


def _stdio_swappable() -> bool:
    if sys.platform == "darwin":
        return True
    try:
        return bool(os.confstr("CS_GNU_LIBC_VERSION"))
    except (AttributeError, ValueError, OSError):
        return False


@pytest.mark.skipif(not _stdio_swappable(), reason="C stdio redirection needs glibc or macOS")
def test_other_threads_keep_writing_to_stderr_while_headers_are_probed(mp3s, capfd):
    from musicrep.features.audio import decoder_output

    stop = threading.Event()

    def tick() -> int:  # another thread writing to fd 2 meanwhile (a progress bar, log lines)
        n = 0
        while not stop.is_set():
            os.write(2, f"tick {n}\n".encode())
            n += 1
            time.sleep(0.0005)
        return n

    def probe_one(_: int) -> str:
        with decoder_output() as output:
            probe(mp3s["truncated"])
        return output.summary()

    with ThreadPoolExecutor(1) as ticker:
        ticks = ticker.submit(tick)
        with ThreadPoolExecutor(4) as pool:
            summaries = list(pool.map(probe_one, range(200)))
        stop.set()
        n_ticks = ticks.result()
    err = capfd.readouterr().err
    assert all(s.startswith("Warning: Xing stream size") and "tick" not in s for s in summaries)
    assert n_ticks > 0 and err.count("tick") == n_ticks
    assert _chatter(err) == []


def test_stderr_is_restored_when_the_block_raises(mp3s, capfd):
    from musicrep.features.stderr_capture import capture_stderr

    with pytest.raises(RuntimeError, match="boom"), capture_stderr() as captured:
        sf.info(str(mp3s["truncated"]))
        raise RuntimeError("boom")
    assert captured.text.startswith("Warning: Xing stream size")
    assert capfd.readouterr().err == ""
    os.write(2, b"after\n")
    sf.info(str(mp3s["truncated"]))  # outside a window the decoder reaches stderr again
    err = capfd.readouterr().err
    assert err.startswith("after\n") and "Xing stream size" in err


def test_nested_windows_keep_their_own_text(capfd):
    from musicrep.features.stderr_capture import capture_stderr

    with capture_stderr() as outer:
        os.write(2, b"outer 1\n")
        with capture_stderr() as inner:
            os.write(2, b"inner\n")
        os.write(2, b"outer 2\n")
    if threading.active_count() == 1:  # fd 2 itself is redirected only when no other thread runs
        assert (outer.text, inner.text) == ("outer 1\nouter 2\n", "inner\n")
        assert capfd.readouterr().err == ""


def test_summary_is_one_short_line():
    from musicrep.features.stderr_capture import summarize

    text = ("[src/libmpg123/layer3.c:INT123_do_layer3():1804] error: dequantization failed!\n"
            "Note: Illegal Audio-MPEG-Header 0xff21d7d9 at offset 8373.\n"
            "Note: Trying to resync...\n"
            "Note: Illegal Audio-MPEG-Header 0x7d0a10c4 at offset 8477.\n"
            "Note: Trying to resync...\n\n"
            "Note: Skipped 52 bytes in input.\n"
            "  Note: Skipped 26 bytes in input.  \n")
    assert summarize(text) == ("error: dequantization failed!; Note: Illegal Audio-MPEG-Header 0xff21d7d9 at "
                               "offset 8373.; Note: Trying to resync... (+1 more)")
    assert summarize(text, max_lines=5).endswith("; Note: Skipped 52 bytes in input.")
    assert summarize("x" * 500, width=20) == "x" * 19 + "…"
    assert summarize("") == summarize("\n \n") == ""
