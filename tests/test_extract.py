from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import librosa
import numpy as np
import pandas as pd
import pytest

from conftest import run_cli
from musicrep.features.audio import segment
from musicrep.features.extract import ExtractConfig, extract_features
from musicrep.features.store import read_track, track_path


def librosa_reference(path) -> np.ndarray:
    """The original pipeline with today's librosa: whole-file decode, segment, mel, dB per channel."""
    y, _ = librosa.load(path, sr=22050, mono=False)
    if y.ndim == 1:
        y = np.stack([y, y])
    y = segment(y)
    mel = librosa.feature.melspectrogram(y=y, sr=22050, n_fft=1024, hop_length=256, n_mels=128)
    db = np.stack([librosa.power_to_db(mel[c], ref=np.max) for c in range(2)])
    return db.transpose(1, 2, 0)


def _playable(demo):
    frame = demo.manifest.frame
    bad = set(demo.report.expected_problems)
    return frame[~frame.track_id.isin(bad) & frame.duration.notna()]


def test_parity_with_librosa_on_every_format_rate_and_channel_count(demo):
    frame = _playable(demo)
    chosen = frame.groupby(["format", "sample_rate", "channels"]).head(1)
    assert set(chosen.format) == {"wav", "flac", "ogg", "mp3"}
    assert len(chosen) >= 12
    long_and_short = {True: 0, False: 0}
    for row in chosen.itertuples():
        path = demo.manifest.audio_file(row.audio_path)
        reference = librosa_reference(path)
        ours, silent = extract_features(path, ExtractConfig())
        assert not silent and ours.dtype == np.float32
        assert ours.shape == reference.shape
        if row.duration > 14.1:
            assert ours.shape == (128, 948, 2)  # the 3-14 s segment
        assert np.abs(ours - reference).max() < 0.01, (row.format, row.sample_rate, row.channels)
        half, _ = extract_features(path, ExtractConfig(precision=16))
        assert half.dtype == np.float16
        np.testing.assert_array_equal(half, ours.astype(np.float16))
        # against the reference cast to float16: equal but where the two float32 values straddle a rounding step
        gap = np.abs(half.astype(np.float32) - reference.astype(np.float16).astype(np.float32))
        assert (gap == 0).mean() > 0.98 and gap.max() <= 0.0625
        long_and_short[row.duration > 14] += 1
    assert all(long_and_short.values())


def test_crop_pad_and_pad_value(demo):
    frame = _playable(demo)
    short = frame[frame.duration < 10].iloc[0]
    path = demo.manifest.audio_file(short.audio_path)
    natural, _ = extract_features(path, ExtractConfig())
    padded, _ = extract_features(path, ExtractConfig(crop=True, pad=True))
    assert padded.shape == (128, 880, 2) and natural.shape[1] < 880
    assert (padded[:, natural.shape[1]:] == -80).all()
    np.testing.assert_array_equal(padded[:, : natural.shape[1]], natural)
    original, _ = extract_features(path, ExtractConfig(crop=True, pad=True, pad_value="original"))
    assert (original[:, natural.shape[1]:] == 0).all()
    long = frame[frame.duration > 14].iloc[0]
    cropped, _ = extract_features(demo.manifest.audio_file(long.audio_path), ExtractConfig(crop=True, pad=True))
    assert cropped.shape == (128, 880, 2)


def test_extract_cli_accounts_for_every_track(demo, tmp_path):
    frame = demo.manifest.frame
    kinds = {k: t for t, k in demo.report.expected_problems.items()}
    picked = frame[frame.track_id.isin([kinds["empty"], kinds["not audio"], kinds["silent"], kinds["short"]])]
    good = _playable(demo).head(3)
    tid = pd.concat([good, picked])[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"})
    (tmp_path / "folder.mp3").mkdir()
    tid = pd.concat([tid, pd.DataFrame({"track_id": ["gone", "folder"],
                                        "filename": ["nowhere/gone.mp3", str(tmp_path / "folder.mp3")]})])
    tid.to_csv(tmp_path / "train.csv", index=False)
    dst = tmp_path / "features"
    result = run_cli("extract", "--tidfile", tmp_path / "train.csv", "--audio-root", demo.manifest.audio_root,
                     "--dst", dst, "--crop", "--pad", "--workers", "2")
    assert result.exit_code == 1
    log = pd.read_csv(dst / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert sorted(log.index) == sorted(tid.track_id)  # every track exactly once
    # each failure names the path that was tried
    audio = demo.manifest.audio_file
    paths = frame.set_index("track_id").audio_path
    assert log.loc[kinds["empty"], "message"] == f"{audio(paths[kinds['empty']])}: empty file"
    assert log.loc[kinds["not audio"], "message"] == (f"{audio(paths[kinds['not audio']])}: not a readable audio "
                                                      "file (format not recognised)")
    assert log.loc["gone", "message"] == f"{demo.manifest.audio_root / 'nowhere/gone.mp3'}: audio file missing"
    assert log.loc["folder", "message"] == f"{tmp_path / 'folder.mp3'}: is a directory, not an audio file"
    assert f"gone: {demo.manifest.audio_root / 'nowhere/gone.mp3'}: audio file missing" in result.stderr
    assert log.loc[kinds["silent"], ["status", "message"]].tolist() == ["ok", "silent"]
    assert int(log.loc[kinds["short"], "frames"]) < 880  # valid frames before padding
    assert (read_track(dst, kinds["silent"]) == -80).all()
    assert log.loc[kinds["short"], "status"] == "ok"
    assert not np.isnan(read_track(dst, kinds["short"])).any()
    assert not list(dst.rglob("*.tmp"))
    assert len(list((dst / "logs").glob("extract-*.csv"))) == 1

    again = run_cli("extract", "--tidfile", tmp_path / "train.csv", "--audio-root", demo.manifest.audio_root,
                    "--dst", dst, "--crop", "--pad", "--skip", "--allow-failures")
    assert again.exit_code == 0
    log = pd.read_csv(dst / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert (log.loc[good.track_id, "status"] == "skipped").all()
    other = run_cli("extract", "--tidfile", tmp_path / "train.csv", "--audio-root", demo.manifest.audio_root,
                    "--dst", dst, "--skip", "--precision", "16")
    assert other.exit_code == 2 and "other parameters: crop was True, now False" in other.stderr


def test_extract_bad_inputs(demo, tmp_path):
    noheader = tmp_path / "tids.csv"
    noheader.write_text("demo000-000001,a/b.mp3\n")
    result = run_cli("extract", "--tidfile", noheader, "--dst", tmp_path / "f")
    assert result.exit_code == 2 and "needs a header with track_id and filename" in result.stderr
    blocker = tmp_path / "file"
    blocker.write_text("x")
    ok = tmp_path / "ok.csv"
    pd.DataFrame({"track_id": ["a"], "filename": ["a.wav"]}).to_csv(ok, index=False)
    result = run_cli("extract", "--tidfile", ok, "--dst", blocker / "sub")
    assert result.exit_code == 2 and "cannot create output directory" in result.stderr
    unknown = tmp_path / "unknown.csv"
    pd.DataFrame({"track_id": ["nope", demo.manifest.frame.track_id.iloc[0]], "filename": ["", ""]}).to_csv(
        unknown, index=False)
    result = run_cli("extract", "--tidfile", unknown, "--manifest", demo.report.manifest_path, "--dst", tmp_path / "m")
    assert result.exit_code == 1
    log = pd.read_csv(tmp_path / "m" / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert log.loc["nope", "message"] == "track id not in the manifest"


@pytest.mark.slow
def test_killed_run_resumes_to_identical_results(demo, tmp_path):
    # 48 tracks and a kill after the first few: a loaded machine that starves this test's polling still
    # leaves the killed run mid-way
    tid = _playable(demo).head(48)[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"})
    tid.to_csv(tmp_path / "tids.csv", index=False)
    args = ["--tidfile", str(tmp_path / "tids.csv"), "--audio-root", str(demo.manifest.audio_root),
            "--crop", "--pad", "--workers", "1"]
    script = os.path.join(os.path.dirname(sys.executable), "musicrep")
    assert subprocess.run([script, "extract", *args, "--dst", str(tmp_path / "full")],
                          capture_output=True).returncode == 0

    proc = subprocess.Popen([script, "extract", *args, "--dst", str(tmp_path / "killed")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        logs = list((tmp_path / "killed" / "logs").glob("*.csv")) if (tmp_path / "killed" / "logs").exists() else []
        if logs and len(logs[0].read_text().splitlines()) >= 4:
            break
        time.sleep(0.02)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait(timeout=30)
    done_before = sum(1 for _ in (tmp_path / "killed").rglob("*.npy"))
    assert 0 < done_before < len(tid)

    resumed = subprocess.run([script, "extract", *args, "--dst", str(tmp_path / "killed"), "--skip"],
                             capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert not list((tmp_path / "killed").rglob("*.tmp"))
    for track_id in tid.track_id:
        assert track_path(tmp_path / "killed", track_id).read_bytes() == track_path(tmp_path / "full",
                                                                                    track_id).read_bytes()
    log = pd.read_csv(tmp_path / "killed" / "extract_log.csv").set_index("track_id")
    assert sorted(log.index) == sorted(tid.track_id) and set(log.status) <= {"ok", "skipped"}
    # tracks the killed run finished keep their valid-frame counts (merge and the statistics need them)
    full = pd.read_csv(tmp_path / "full" / "extract_log.csv").set_index("track_id")
    assert (log.status == "skipped").any()
    assert log.frames.loc[full.index].tolist() == full.frames.tolist()
    # and their messages: the log is the full run's but for `skipped` in place of `ok`
    messages = {name: pd.read_csv(tmp_path / name / "extract_log.csv", keep_default_na=False).set_index(
        "track_id").message for name in ("killed", "full")}
    assert messages["killed"].loc[full.index].tolist() == messages["full"].tolist()


def test_killed_worker_fails_its_tracks_and_the_run_goes_on(demo, tmp_path):
    import threading

    import psutil

    from musicrep.features.extract import extract

    tid = _playable(demo).head(40)[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"})
    me = psutil.Process()
    earlier = {c.pid for c in me.children(recursive=True)}  # e.g. helpers left by earlier tests: not the pool's

    def kill_one_worker() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            workers = [c for c in me.children() if c.pid not in earlier and c.is_running()]
            if len(list((tmp_path / "f").rglob("*.npy"))) >= 2 and workers:
                workers[0].send_signal(signal.SIGKILL)
                return
            time.sleep(0.01)

    killer = threading.Thread(target=kill_one_worker)
    killer.start()
    report = extract(tid, tmp_path / "f", ExtractConfig(crop=True, pad=True), audio_root=demo.manifest.audio_root,
                     workers=2)
    killer.join()
    statuses = {r.track_id: (r.status, r.message) for r in report.results}
    assert sorted(statuses) == sorted(tid.track_id)  # every track exactly once
    died = [t for t, (status, message) in statuses.items() if message.startswith("worker died")]
    assert died and all(statuses[t][0] == "failed" for t in died)
    assert any("signal 9" in statuses[t][1] for t in died), {statuses[t][1] for t in died}
    assert sum(status == "ok" for status, _ in statuses.values()) >= len(tid) - len(died)


def test_segment_decoding_matches_whole_file_decoding(demo):
    from musicrep.features.audio import load, load_segment
    from musicrep.features.frontend import MelConfig, mel_front_end

    front_end = mel_front_end(MelConfig())

    frame = _playable(demo)
    for row in frame.groupby(["sample_rate", frame.duration > 14]).head(1).itertuples():
        path = demo.manifest.audio_file(row.audio_path)
        whole = front_end.log_mel(segment(load(path)))[0]
        part = front_end.log_mel(load_segment(path))[0]
        assert whole.shape == part.shape
        assert np.abs(whole - part).max() < 0.01, (row.format, row.sample_rate, row.duration)


def _tidfile(frame: pd.DataFrame, path) -> None:
    frame[["track_id", "audio_path"]].rename(columns={"audio_path": "filename"}).to_csv(path, index=False)


@pytest.mark.slow
def test_dask_local_cluster_gives_byte_identical_output(demo, tmp_path):
    from conftest import run_musicrep

    kinds = {k: t for t, k in demo.report.expected_problems.items()}
    frame = demo.manifest.frame
    chosen = pd.concat([_playable(demo).head(10), frame[frame.track_id.isin([kinds["not audio"], kinds["silent"]])]])
    _tidfile(chosen, tmp_path / "tids.csv")
    common = ["extract", "--tidfile", tmp_path / "tids.csv", "--audio-root", demo.manifest.audio_root,
              "--crop", "--pad", "--precision", "16", "--workers", "2", "--allow-failures"]
    pool = run_musicrep(*common, "--dst", tmp_path / "pool")
    dask = run_musicrep(*common, "--dst", tmp_path / "dask", "--scheduler", "local")
    assert pool.exit_code == 0 and dask.exit_code == 0, dask.stderr
    assert "11 extracted, 0 skipped, 1 failed" in dask.stdout
    assert "Scheduler at" not in dask.stderr  # distributed's INFO chatter stays quiet
    for track_id in chosen.track_id:
        if track_id != kinds["not audio"]:
            assert track_path(tmp_path / "dask", track_id).read_bytes() == track_path(tmp_path / "pool",
                                                                                      track_id).read_bytes()
    for name in ("extract_log.csv", "extract_config.json"):
        assert (tmp_path / "dask" / name).read_bytes() == (tmp_path / "pool" / name).read_bytes()

    from distributed import LocalCluster

    # a running cluster joined by address, as `--scheduler tcp://HOST:PORT` does on a real one
    with LocalCluster(n_workers=1, threads_per_worker=1, processes=True, host="127.0.0.1",
                      dashboard_address="127.0.0.1:0") as cluster:
        assert cluster.scheduler_address.startswith("tcp://127.0.0.1:")
        remote = run_musicrep(*common[:-3], "--allow-failures", "--dst", tmp_path / "tcp",
                              "--scheduler", cluster.scheduler_address)
    assert remote.exit_code == 0, remote.stderr
    assert (tmp_path / "tcp" / "extract_log.csv").read_bytes() == (tmp_path / "pool" / "extract_log.csv").read_bytes()
    assert all(track_path(tmp_path / "tcp", t).read_bytes() == track_path(tmp_path / "pool", t).read_bytes()
               for t in chosen.track_id if t != kinds["not audio"])


def test_unreachable_scheduler_fails_before_any_work(tmp_path):
    import socket

    ok = tmp_path / "ok.csv"
    pd.DataFrame({"track_id": ["a"], "filename": ["a.wav"]}).to_csv(ok, index=False)
    bad = run_cli("extract", "--tidfile", ok, "--dst", tmp_path / "f", "--scheduler", "nowhere")
    assert bad.exit_code == 2 and "--scheduler must be local or an address" in bad.stderr
    with socket.socket() as probe:  # a port nobody listens on: bound, then released
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    dst = tmp_path / "g"
    dst.mkdir()
    unreachable = run_cli("extract", "--tidfile", ok, "--dst", dst, "--scheduler", f"tcp://127.0.0.1:{port}")
    assert unreachable.exit_code == 2
    assert f"cannot reach the dask scheduler at tcp://127.0.0.1:{port}" in unreachable.stderr
    assert list(dst.iterdir()) == []  # no extract_config.json, no logs/


def test_preset_overrides_mono_full_length_match_librosa(demo, tmp_path):
    frame = _playable(demo)
    row = frame[(frame.channels == 2) & (frame.duration > 14)].iloc[0]
    path = demo.manifest.audio_file(row.audio_path)
    config = ExtractConfig.from_preset(mel_overrides={"sr": 16000, "n_fft": 512, "hop_length": 320, "n_mels": 64},
                                       mono=True, segment="full")
    ours, _ = extract_features(path, config)
    y, _ = librosa.load(path, sr=16000, mono=True)
    mel = librosa.feature.melspectrogram(y=y, sr=16000, n_fft=512, hop_length=320, n_mels=64)
    reference = librosa.power_to_db(mel, ref=np.max)
    assert ours.shape == (64, 1 + len(y) // 320, 1) == (*reference.shape, 1)
    assert np.abs(ours[..., 0] - reference).max() < 0.01

    _tidfile(frame.head(4), tmp_path / "tids.csv")
    args = ["--tidfile", tmp_path / "tids.csv", "--audio-root", demo.manifest.audio_root, "--dst", tmp_path / "f"]
    result = run_cli("extract", *args, "--mono", "--n-mels", "40", "--segment", "full", "--crop", "--pad",
                     "--frames", "300")
    assert result.exit_code == 0, result.stderr
    merged = run_cli("merge", "--tidfile", tmp_path / "tids.csv", "--src", tmp_path / "f", "--dst", tmp_path / "m",
                     "--crop", "--pad")
    assert merged.exit_code == 0, merged.stderr
    assert np.load(tmp_path / "m" / "features.npy", mmap_mode="r").shape == (4, 40, 300, 1)
    assert np.load(tmp_path / "m" / "stats.npz")["mean"].shape == (40, 1)

    impossible = run_cli("extract", *args, "--n-mels", "9999")
    assert impossible.exit_code == 2 and "--n-mels must be between 1 and n_fft / 2 + 1 = 513" in impossible.stderr
    unknown = run_cli("extract", *args, "--segment", "middle")
    assert unknown.exit_code == 2 and "--segment must be one of original, full" in unknown.stderr


def test_other_formats_decode_through_the_pyav_fallback(tmp_path):
    av = pytest.importorskip("av")  # the musicrep[ffmpeg] extra; `make test` installs it
    from musicrep.features.audio import probe

    sr = 44100
    t = np.arange(20 * sr) / sr
    y = (0.3 * np.stack([np.sin(2 * np.pi * 440 * t), np.sin(2 * np.pi * 1250 * t)])).astype(np.float32)
    m4a = tmp_path / "tone.m4a"
    with av.open(str(m4a), "w") as container:
        stream = container.add_stream("aac", rate=sr, layout="stereo")
        stream.bit_rate = 256_000
        frame = av.AudioFrame.from_ndarray(y, format="fltp", layout="stereo")
        frame.rate = sr
        for packet in [*stream.encode(frame), *stream.encode(None)]:
            container.mux(packet)
    import soundfile as sf

    sf.write(tmp_path / "tone.wav", y.T, sr)
    info = probe(m4a)
    assert (info.decoder, info.sample_rate, info.channels) == ("pyav", sr, 2) and abs(info.duration - 20) < 0.1
    lossy, silent = extract_features(m4a, ExtractConfig())
    exact, _ = extract_features(tmp_path / "tone.wav", ExtractConfig())
    assert lossy.shape == exact.shape == (128, 948, 2) and not silent
    loud = exact > -10  # the tones' own bands (AAC drops the window's leakage skirts further down)
    for channel in range(2):
        gap = (lossy - exact)[..., channel][loud[..., channel]]
        # up to a level offset: an encoder transient can move a channel's maximum (the dB reference)
        assert np.abs(gap - np.median(gap)).mean() < 0.5
    assert (lossy.argmax(axis=0) == exact.argmax(axis=0)).mean() > 0.95  # same loudest band, frame by frame

    fake = tmp_path / "notes.wma"
    fake.write_text("not audio at all\n" * 20)
    with pytest.raises(Exception, match="unsupported format"):
        extract_features(fake, ExtractConfig())


def test_a_write_error_fails_that_track_and_the_run_goes_on(demo, tmp_path):
    tracks = _playable(demo).head(6)
    _tidfile(tracks, tmp_path / "tids.csv")
    dst = tmp_path / "f"
    victim = tracks.track_id.iloc[0]
    shard = track_path(dst, victim).parent
    shard.parent.mkdir(parents=True)
    shard.write_text("a file where the shard folder should be")  # a real OSError on write, even as root
    result = run_cli("extract", "--tidfile", tmp_path / "tids.csv", "--audio-root", demo.manifest.audio_root,
                     "--dst", dst, "--crop", "--pad")
    assert result.exit_code == 1
    log = pd.read_csv(dst / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert log.loc[victim, "status"] == "failed"
    assert log.loc[victim, "message"].startswith(f"cannot write features to {shard}")
    others = [t for t in tracks.track_id if track_path(dst, t).parent != shard]
    assert others and (log.loc[others, "status"] == "ok").all()
    assert not list(dst.rglob("*.tmp"))


def test_one_silent_channel_is_named_and_odd_fft_sizes_match_librosa(tmp_path):
    import soundfile as sf

    from musicrep.features.frontend import MelConfig, mel_filterbank

    t = np.arange(5 * 22050) / 22050
    sf.write(tmp_path / "half.wav", np.stack([0.3 * np.sin(2 * np.pi * 440 * t), np.zeros_like(t)], axis=1), 22050)
    pd.DataFrame({"track_id": ["half"], "filename": ["half.wav"]}).to_csv(tmp_path / "tids.csv", index=False)
    result = run_cli("extract", "--tidfile", tmp_path / "tids.csv", "--dst", tmp_path / "f")
    assert result.exit_code == 0
    log = pd.read_csv(tmp_path / "f" / "extract_log.csv", keep_default_na=False)
    assert log.message.tolist() == ["silent channel(s): 2"]
    array = read_track(tmp_path / "f", "half")
    assert (array[..., 1] == -80).all() and array[..., 0].max() == 0

    for n_fft in (1023, 1024, 2047):
        ours = mel_filterbank(MelConfig(n_fft=n_fft, n_mels=96))
        np.testing.assert_allclose(ours, librosa.filters.mel(sr=22050, n_fft=n_fft, n_mels=96), atol=1e-7)


def test_a_failed_extraction_removes_the_stale_array_and_skip_extracts_it_again(tmp_path):
    import soundfile as sf

    from conftest import write_tone

    write_tone(tmp_path / "a.wav", seconds=2)
    sf.write(tmp_path / "quiet.wav", np.zeros(22050 * 2), 22050)
    pd.DataFrame({"track_id": ["a", "quiet"], "filename": ["a.wav", "quiet.wav"]}).to_csv(
        tmp_path / "tids.csv", index=False)
    args = ["extract", "--tidfile", tmp_path / "tids.csv", "--dst", tmp_path / "f", "--crop", "--pad"]
    assert run_cli(*args).exit_code == 0
    first = pd.read_csv(tmp_path / "f" / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert track_path(tmp_path / "f", "a").is_file()

    (tmp_path / "a.wav").write_bytes(b"")  # the audio is now an empty file: the next run fails on it
    again = run_cli(*args)
    assert again.exit_code == 1 and "empty file" in again.stderr
    assert not track_path(tmp_path / "f", "a").exists()  # the failed track's old array is gone
    # --skip never brings a failed track back: it is extracted again (and fails again)
    skipped = run_cli(*args, "--skip")
    assert skipped.exit_code == 1 and "0 extracted, 1 skipped, 1 failed" in skipped.stdout
    log = pd.read_csv(tmp_path / "f" / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert log.loc["a", "status"] == "failed" and log.loc["a", "message"].endswith("empty file")
    # a skipped track keeps the message and the valid frames of the extraction it skips
    assert log.loc["quiet"].tolist() == ["skipped", "silent", str(first.loc["quiet", "frames"])]

    # an array whose track failed last is not skipped even when it is there (left by an older musicrep)
    from musicrep.features.store import write_track

    write_track(tmp_path / "f", "a", read_track(tmp_path / "f", "quiet"))
    write_tone(tmp_path / "a.wav", seconds=2)
    resumed = run_cli(*args, "--skip")
    assert resumed.exit_code == 0 and "1 extracted, 1 skipped, 0 failed" in resumed.stdout
    np.testing.assert_array_equal(read_track(tmp_path / "f", "a"),
                                  extract_features(tmp_path / "a.wav", ExtractConfig(crop=True, pad=True))[0])
