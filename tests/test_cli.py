from __future__ import annotations

from conftest import run_cli, run_musicrep

STAGES = ["align", "partition", "extract", "merge", "embed-tags", "embed-text", "mine-triplets", "train",
          "embed", "evaluate", "train-classifier", "classify", "index", "search", "serve", "run", "demo", "info"]


def test_every_stage_is_a_command():
    result = run_cli("--help")
    assert result.exit_code == 0
    for stage in STAGES:
        # the app description names the stages too: each must answer as a command of its own
        own = run_cli(stage, "--help")
        assert own.exit_code == 0, stage
        assert f"Usage: musicrep {stage} " in own.stdout
    assert run_cli("no-such-stage", "--help").exit_code == 2


def test_unbuilt_stage_says_so_and_exits_2():
    result = run_musicrep("run", "x.toml")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not built yet" in lines[0]


def test_usage_error_exits_2():
    assert run_cli("partition", "--out", "x").exit_code == 2
    assert run_cli("align", "--source", "nope", "--out", "x").exit_code == 2


def test_input_errors_are_one_line(tmp_path):
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"PAR1garbage")
    result = run_musicrep("info", bad)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr and "internal error" not in result.stderr


def test_internal_errors_are_one_line_with_the_traceback_on_request(tmp_path, monkeypatch):
    import musicrep.data.info

    def broken(*args, **kwargs):  # a bug inside a stage: not a MusicrepError
        raise ZeroDivisionError("division by zero")

    monkeypatch.setattr(musicrep.data.info, "manifest_info", broken)
    from musicrep.data.manifest import Manifest, Track, tracks_to_frame, write_manifest

    write_manifest(Manifest(tracks_to_frame([Track("a", "a.wav")], []), [], tmp_path), tmp_path / "m.parquet")
    result = run_cli("info", tmp_path / "m.parquet")
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines() == [
        "error: internal error: ZeroDivisionError: division by zero (run with --log-level debug for the traceback)"]
    debug = run_cli("--log-level", "debug", "info", tmp_path / "m.parquet")
    assert debug.exit_code == 2 and "Traceback" in debug.stderr and "ZeroDivisionError" in debug.stderr


def test_bad_log_level_is_a_usage_error_on_every_command(tmp_path):
    for command in (["extract", "--tidfile", tmp_path / "t.csv", "--dst", tmp_path / "f"],
                    ["merge", "--tidfile", tmp_path / "t.csv", "--src", tmp_path, "--dst", tmp_path / "m"]):
        result = run_musicrep(*command, "--log-level", "bogus")
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            "error: --log-level must be debug, info, warning or error (got 'bogus')"]
    assert not (tmp_path / "f").exists() and not (tmp_path / "m").exists()


def test_bad_global_log_level_is_one_line(tmp_path):
    for args in (["--log-level", "bogus", "info", tmp_path / "m.parquet"],
                 ["--log-level", "bogus", "extract", "--tidfile", tmp_path / "t.csv", "--dst", tmp_path / "f"]):
        result = run_musicrep(*args)
        assert result.exit_code == 2
        assert result.stderr.strip().splitlines() == [
            "error: --log-level must be debug, info, warning or error (got 'bogus')"]
    assert not (tmp_path / "f").exists()


def test_extract_audio_root_must_be_a_folder_and_excludes_manifest(tmp_path):
    tid = tmp_path / "t.csv"
    tid.write_text("track_id,filename\na,a.wav\n")
    (tmp_path / "file").write_text("x")
    for root, what in ((tmp_path / "nowhere", "audio folder not found"), (tmp_path / "file", "is not a directory")):
        result = run_cli("extract", "--tidfile", tid, "--dst", tmp_path / "f", "--audio-root", root)
        assert result.exit_code == 2 and result.stderr.strip() == f"error: {root}: {what} (--audio-root)"
    both = run_cli("extract", "--tidfile", tid, "--dst", tmp_path / "f", "--audio-root", tmp_path,
                   "--manifest", tmp_path / "manifest.parquet")
    assert both.exit_code == 2 and len(both.stderr.strip().splitlines()) == 1
    assert both.stderr.startswith("error: --manifest and --audio-root exclude each other")
    assert not (tmp_path / "f").exists()
