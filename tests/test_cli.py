from __future__ import annotations

from conftest import run_cli, run_musicrep

STAGES = ["align", "partition", "extract", "merge", "embed-tags", "embed-text", "mine-triplets", "train",
          "embed", "evaluate", "index", "search", "serve", "run", "demo", "info"]


def test_help_lists_every_stage():
    result = run_cli("--help")
    assert result.exit_code == 0
    for stage in STAGES:
        assert stage in result.stdout


def test_unbuilt_stage_says_so_and_exits_2():
    result = run_musicrep("train", "--config", "x.toml")
    assert result.exit_code == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "not built yet" in lines[0]


def test_usage_error_exits_2():
    assert run_cli("partition", "--out", "x").exit_code == 2
    assert run_cli("align", "--source", "nope", "--out", "x").exit_code == 2


def test_internal_errors_are_one_line(tmp_path):
    bad = tmp_path / "m.parquet"
    bad.write_bytes(b"PAR1garbage")
    result = run_musicrep("info", bad)
    assert result.exit_code == 2
    assert len(result.stderr.strip().splitlines()) == 1
    assert str(bad) in result.stderr
    assert "Traceback" not in result.stderr
