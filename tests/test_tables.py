"""One reader for tidfiles and metadata tables: the same rules in every command."""

from __future__ import annotations

import os

import pandas as pd
import pytest

from conftest import run_cli, write_tone
from musicrep.errors import InputError
from musicrep.fileio import write_csv
from musicrep.tables import read_table, read_tidfile


def _write(path, text: str, *, bom: bool = False):
    path.write_text(("\ufeff" if bom else "") + text, encoding="utf-8")
    return path


def test_bom_and_quoted_header_are_read_everywhere(tmp_path):
    tid = _write(tmp_path / "train.csv", '"track_id","filename"\n"a",a.mp3\nb,"b, live.mp3"\n', bom=True)
    listed = read_tidfile(tid, need_filename=True)
    assert listed.tracks.values.tolist() == [["a", "a.mp3"], ["b", "b, live.mp3"]] and not listed.problems
    table = read_table(_write(tmp_path / "meta.csv", '"path","artist"\nx.mp3,"Björk"\n', bom=True))
    assert table.to_dict("records") == [{"path": "x.mp3", "artist": "Björk"}]
    assert read_tidfile(_write(tmp_path / "t.tsv", "track_id\tfilename\na\ta.mp3\n")).track_ids == ["a"]


def test_a_row_with_more_fields_than_the_header_names_file_and_line(tmp_path):
    meta = _write(tmp_path / "meta.csv", "path,genre\na.mp3,rock\nb.mp3,rock,pop\n")
    with pytest.raises(InputError, match=r"meta.csv, line 3: 3 fields where the header \(path,genre\) has 2"):
        read_table(meta)
    tid = _write(tmp_path / "train.csv", "track_id,filename\na,a.mp3\n\nb,b.mp3,extra\n")
    with pytest.raises(InputError, match=r"train.csv, line 4: 3 fields"):
        read_tidfile(tid)


def test_a_wrong_delimiter_says_which_header_it_read(tmp_path):
    tid = _write(tmp_path / "train.csv", "track_id;filename\na;a.mp3\n")
    with pytest.raises(InputError, match=r"needs a header with track_id and filename .*read the header "
                                         r"'track_id;filename'; it looks semicolon-separated"):
        read_tidfile(tid, need_filename=True)
    with pytest.raises(InputError, match=r"is a directory, not a tidfile"):
        read_tidfile(tmp_path)
    with pytest.raises(InputError, match=r"nothing.csv: tidfile not found"):
        read_tidfile(tmp_path / "nothing.csv")


def test_unsafe_and_ambiguous_ids_are_problems_of_their_own_rows(tmp_path):
    rows = ["ok-1,a.mp3", "../../x,b.mp3", "/etc/passwd,c.mp3", "..,d.mp3", ".,e.mp3", "dup,f.mp3", "twice,g.mp3",
            "dup,h.mp3", "twice,g.mp3", "x" * 129 + ",i.mp3", "ok-2,j.mp3"]
    listed = read_tidfile(_write(tmp_path / "train.csv", "track_id,filename\n" + "\n".join(rows) + "\n"))
    assert listed.track_ids == ["ok-1", "twice", "ok-2"]
    reasons = {p.track_id: (p.line, p.reason) for p in listed.problems}
    for unsafe, line in (("../../x", 3), ("/etc/passwd", 4), ("..", 5), (".", 6), ("x" * 129, 11)):
        assert reasons[unsafe][0] == line and reasons[unsafe][1].startswith("unsafe track id")
    assert reasons["dup"] == (9, "listed twice with different files: line 7 ('f.mp3') and line 9 ('h.mp3')")


def test_extract_writes_nothing_for_unsafe_ids(tmp_path):
    audio = write_tone(tmp_path / "in" / "a.wav", seconds=2.0)
    rows = [f"good,{audio}", f"../../escaped,{audio}", f"{tmp_path / 'abs'},{audio}", f"..,{audio}"]
    tid = _write(tmp_path / "train.csv", "track_id,filename\n" + "\n".join(rows) + "\n")
    dst = tmp_path / "deep" / "dst"
    result = run_cli("extract", "--tidfile", tid, "--dst", dst)
    assert result.exit_code == 1
    assert "../../escaped: tidfile line 3: unsafe track id" in result.stderr
    log = pd.read_csv(dst / "extract_log.csv", keep_default_na=False).set_index("track_id")
    assert log.status.to_dict() == {"good": "ok", "../../escaped": "failed", str(tmp_path / "abs"): "failed",
                                    "..": "failed"}
    written = sorted(p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*.npy"))
    assert len(written) == 1 and written[0].startswith("deep/dst/") and written[0].endswith("/good.npy")


def test_partition_from_and_targets_take_the_same_files(demo, tmp_path):
    ids = demo.manifest.frame.track_id.tolist()
    train = _write(tmp_path / "train.csv", '"track_id","filename"\n' + "".join(f"{t},x\n" for t in ids[:80])
                   + "../evil,x\n", bom=True)
    _write(tmp_path / "test.csv", "track_id,filename\n" + "".join(f"{t},x\n" for t in ids[80:]), bom=True)
    parted = run_cli("partition", "--manifest", demo.report.manifest_path, "--out", tmp_path / "p",
                     "--from", train, "--from", tmp_path / "test.csv")
    assert parted.exit_code == 1 and "unsafe track id" in parted.stderr
    assert len(pd.read_csv(tmp_path / "p" / "train.csv")) == 80
    tags = run_cli("embed-tags", "--manifest", demo.report.manifest_path, "--tidfile", train, "--out", tmp_path / "t",
                   "--tagsets", "genres")
    assert tags.exit_code == 1 and "line 82: '../evil': unsafe track id" in tags.stderr
    assert (tmp_path / "t" / "genres" / "vectors.npy").is_file()
    clean = _write(tmp_path / "clean.csv", "track_id\n" + "".join(f"{t}\n" for t in ids[:80]) + "not-a-track\n",
                   bom=True)
    mined = run_cli("mine-triplets", "--space", tmp_path / "t" / "genres", "--tidfile", clean,
                    "--out", tmp_path / "triplets.parquet")
    assert mined.exit_code == 1 and "'not-a-track': not in the space" in mined.stderr
    assert (tmp_path / "triplets.parquet").is_file()


@pytest.mark.parametrize("umask", [0o022, 0o002])
def test_outputs_get_the_mode_the_umask_gives(tmp_path, umask):
    previous = os.umask(umask)
    try:
        write_csv(pd.DataFrame({"a": [1]}), tmp_path / "table.csv")
        audio = write_tone(tmp_path / "a.wav", seconds=1.0)
        _write(tmp_path / "t.csv", f"track_id,filename\nt1,{audio}\n")
        assert run_cli("extract", "--tidfile", tmp_path / "t.csv", "--dst", tmp_path / "f").exit_code == 0
    finally:
        os.umask(previous)
    expected = 0o666 & ~umask
    outputs = [tmp_path / "table.csv", tmp_path / "f" / "extract_log.csv", tmp_path / "f" / "extract_config.json",
               *(tmp_path / "f").rglob("*.npy")]
    assert len(outputs) == 4
    assert {oct(p.stat().st_mode & 0o777) for p in outputs} == {oct(expected)}


def test_rows_without_an_id_or_a_needed_filename_are_problems_of_their_own(tmp_path):
    tid = _write(tmp_path / "train.csv", "track_id,filename\n,file.wav\nn1,\nn2,b.wav\n,\nn3,\nn3,c.wav\n")
    listed = read_tidfile(tid, need_filename=True)
    assert listed.track_ids == ["n2"]
    assert [(p.track_id, p.line, p.reason) for p in listed.problems] == [
        ("", 2, "empty track id"), ("n1", 3, "no filename"),  # line 5 (",") is blank: skipped
        ("n3", 7, "listed twice with different files: line 6 ('') and line 7 ('c.wav')")]
    assert listed.problem_lines()[:2] == [f"{tid}, line 2: empty track id", f"{tid}, line 3: 'n1': no filename"]
    # without a need for filenames (merge, targets), an id alone is a whole row
    assert read_tidfile(tid).track_ids == ["n1", "n2"]

    audio = write_tone(tmp_path / "b.wav", seconds=1.0)
    assert audio.is_file()
    result = run_cli("extract", "--tidfile", tid, "--dst", tmp_path / "f")
    assert result.exit_code == 1 and "  tidfile line 2: empty track id\n" in result.stderr
    log = pd.read_csv(tmp_path / "f" / "extract_log.csv", keep_default_na=False)
    assert log[["track_id", "status", "message"]].values.tolist() == [
        ["", "failed", "tidfile line 2: empty track id"], ["n1", "failed", "tidfile line 3: no filename"],
        ["n2", "ok", ""], ["n3", "failed", "tidfile line 7: listed twice with different files: line 6 ('') and "
                                            "line 7 ('c.wav')"]]


def test_a_pipe_is_read_as_a_tidfile(tmp_path):
    import threading

    fifo = tmp_path / "tids.pipe"
    os.mkfifo(fifo)
    # a daemon: were the pipe never opened for reading, the writer would block forever
    writer = threading.Thread(target=lambda: fifo.write_text("track_id,filename\na,a.wav\n"), daemon=True)
    writer.start()
    try:
        assert read_tidfile(fifo, need_filename=True).tracks.values.tolist() == [["a", "a.wav"]]
    finally:
        writer.join(timeout=10)
    with pytest.raises(InputError, match=r"/dev/null: not a regular file \(a device or socket\), not a tidfile"):
        read_tidfile("/dev/null")
