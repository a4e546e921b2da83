"""Reading the tables users hand us: tidfiles and metadata, with one set of rules for every command.

- UTF-8, with or without a byte-order mark; quoted headers and fields (RFC 4180).
- Comma-separated, or tab-separated when the file is ``.tsv``/``.tab`` or its
  header holds tabs and no commas; JSON lines for ``.jsonl``/``.ndjson``/``.json``.
- A row with more fields than the header is an error naming the file and the
  line (pandas would silently shift it into an index); shorter rows are padded
  with empty fields.
- A missing column is an error that names the header that was read, and the
  delimiter it seems to use when that is not ours.
- Tidfiles (``track_id[,filename]``): every id must be safe
  (:func:`musicrep.data.manifest.is_safe_track_id`), a row with other fields has an id,
  a file is named where one is needed, and an id listed twice with two different files
  is ambiguous; each is reported per row, never written anywhere.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from musicrep.data.manifest import TRACK_ID_RULE, is_safe_track_id
from musicrep.errors import InputError

JSON_LINES_SUFFIXES = frozenset({".jsonl", ".ndjson", ".json"})
TAB_SUFFIXES = frozenset({".tsv", ".tab"})
ID_COLUMNS = ("track_id", "tid", "trackid")
_DELIMITER_NAMES = {",": "comma", "\t": "tab", ";": "semicolon", "|": "pipe"}


def check_file(path: str | Path, what: str) -> Path:
    """``path`` as a :class:`Path` when it is a file or a pipe (``<(...)``), else a one-line :class:`InputError`.

    A pipe is read once, like any of these files.
    """
    file = Path(path)
    if file.is_dir():
        raise InputError(f"{file}: is a directory, not a {what}")
    if not file.exists():
        raise InputError(f"{file}: {what} not found")
    if not (file.is_file() or file.is_fifo()):
        raise InputError(f"{file}: not a regular file (a device or socket), not a {what}")
    return file


def _open_text(file: Path, what: str) -> str:
    try:
        return file.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InputError(f"{file}: not UTF-8 text (byte {exc.start}); save the {what} as UTF-8") from exc
    except OSError as exc:
        raise InputError(f"{file}: cannot read the {what} ({exc.strerror or exc})") from exc


def _delimiter(file: Path, first_line: str) -> str:
    if file.suffix.lower() in TAB_SUFFIXES or ("\t" in first_line and "," not in first_line):
        return "\t"
    return ","


@dataclass
class Rows:
    """A CSV/TSV file opened by :func:`iter_rows`: its header, delimiter and ``(line, fields)`` rows."""

    path: Path
    header: list[str]
    delimiter: str
    rows: Iterator[tuple[int, list[str]]]

    def missing_columns(self, wanted: str) -> InputError:
        """An error naming the header that was read, and the delimiter it seems to use when that is not ours."""
        hint = ""
        if len(self.header) == 1:
            found = [name for sep, name in _DELIMITER_NAMES.items() if sep != self.delimiter and sep in self.header[0]]
            if found:
                hint = (f"; it looks {found[0]}-separated, but was read as "
                        f"{_DELIMITER_NAMES[self.delimiter]}-separated")
        return InputError(f"{self.path}: needs {wanted}; read the header "
                          f"{_header_text(self.header, self.delimiter)!r}{hint}")


def iter_rows(path: str | Path, *, what: str = "table", ragged_if_tab: bool = False) -> Rows:
    """Open a CSV/TSV file: its header and its ``(line number, fields)`` rows; blank lines are skipped.

    Parameters
    ----------
    ragged_if_tab : bool
        A tab-separated file may hold rows longer than its header (MTG-Jamendo
        TSVs end in a variable number of tags).

    Raises
    ------
    InputError
        Missing file, a directory, not UTF-8, no header, or a row with more
        fields than the header (raised while iterating); names the file and the line.
    """
    file = check_file(path, what)
    text = _open_text(file, what)
    delimiter = _delimiter(file, text.split("\n", 1)[0])
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = next(reader, None)
    if not header or not any(h.strip() for h in header):
        raise InputError(f"{file}: empty {what} (no header line)")
    header = [h.strip() for h in header]
    ragged = ragged_if_tab and delimiter == "\t"

    def rows() -> Iterator[tuple[int, list[str]]]:
        line = reader.line_num + 1
        for fields in reader:
            if any(f.strip() for f in fields):
                if len(fields) > len(header) and not ragged:
                    raise InputError(f"{file}, line {line}: {len(fields)} fields where the header "
                                     f"({_header_text(header)}) has {len(header)}")
                yield line, fields + [""] * (len(header) - len(fields))
            line = reader.line_num + 1

    return Rows(path=file, header=header, delimiter=delimiter, rows=rows())


def _header_text(header: list[str], delimiter: str = ",") -> str:
    return delimiter.join(header)[:120]


def read_table(path: str | Path, *, required_any: tuple[str, ...] = (), required_all: tuple[str, ...] = (),
               what: str = "metadata file") -> pd.DataFrame:
    """Read a CSV, TSV or JSON-lines metadata file as strings.

    Returns
    -------
    pandas.DataFrame
        One string column per header field (missing cells are ``""``); the
        index holds each row's line number in the file, for messages.

    Raises
    ------
    InputError
        As :func:`iter_rows`, or a required column missing (``required_all``:
        every one; ``required_any``: at least one); names the file.
    """
    file = check_file(path, what)
    if file.suffix.lower() in JSON_LINES_SUFFIXES:
        frame = _read_json_lines(file)
        missing = _missing(list(frame.columns), required_any, required_all)
        if missing:
            raise InputError(f"{file}: needs {missing}; read the fields {_header_text(list(frame.columns))!r}")
        return frame
    opened = iter_rows(file, what=what)
    missing = _missing(opened.header, required_any, required_all)
    if missing:
        raise opened.missing_columns(missing)
    lines, records = [], []
    for line, fields in opened.rows:
        lines.append(line)
        records.append(fields)
    return pd.DataFrame(records, columns=opened.header, index=pd.Index(lines, name="line"), dtype=object)


def _missing(header: list[str], required_any: tuple[str, ...], required_all: tuple[str, ...]) -> str | None:
    """What the header lacks, in words, or None."""
    missing = [c for c in required_all if c not in header]
    if missing:
        return f"column(s) {', '.join(missing)}"
    if required_any and not set(required_any) & set(header):
        return f"a column named {' or '.join(required_any)}"
    return None


def _read_json_lines(file: Path) -> pd.DataFrame:
    try:
        frame = pd.read_json(file, lines=True, dtype=False, encoding="utf-8-sig")
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{file}: not JSON lines ({str(exc).splitlines()[0] if str(exc) else exc})") from exc
    frame.columns = [str(c).strip() for c in frame.columns]
    frame.index = pd.Index(range(1, len(frame) + 1), name="line")
    return frame


@dataclass
class TidProblem:
    """One tidfile row that cannot be used, with its line."""

    track_id: str
    line: int
    reason: str


@dataclass
class Tidfile:
    """The usable rows of a tidfile and what was wrong with the others.

    ``tracks`` has columns ``track_id`` and ``filename`` (``""`` when the file
    has no filename column), one row per distinct id, in file order.
    """

    path: Path
    tracks: pd.DataFrame
    problems: list[TidProblem] = field(default_factory=list)

    @property
    def track_ids(self) -> list[str]:
        return self.tracks["track_id"].tolist()

    def problem_lines(self) -> list[str]:
        """One line per problem: ``FILE, line N: ID: reason`` (``FILE, line N: empty track id`` without an id)."""
        return [f"{self.path}, line {p.line}: " + (f"{p.track_id!r}: " if p.track_id else "") + p.reason
                for p in self.problems]


def read_tidfile(path: str | Path, *, need_filename: bool = False) -> Tidfile:
    """Read a partition file (``track_id,filename``, the original format) or an MTG-Jamendo split TSV.

    The id column may be named ``track_id``, ``tid`` or ``trackid``; MTG-Jamendo
    TSVs end each row in a variable number of tags, so only tab-separated
    files may hold rows longer than their header.

    Parameters
    ----------
    need_filename : bool
        The file must have a ``filename`` column (extraction).

    Returns
    -------
    Tidfile
        Unsafe ids and ids listed twice with different filenames are problems
        (the id is not used at all); an id listed twice with the same filename is kept once.
        A row with an empty id but other fields is a problem of its own (``empty track id``);
        with ``need_filename``, so is an id without a filename (``no filename``).
    """
    opened = iter_rows(path, what="tidfile", ragged_if_tab=True)
    header = [c.lower() for c in opened.header]
    id_index = next((i for i, c in enumerate(header) if c in ID_COLUMNS), None)
    file_index = header.index("filename") if "filename" in header else None
    if id_index is None or (need_filename and file_index is None):
        raise opened.missing_columns("a header with track_id" + (" and filename" if need_filename else "")
                                     + " (a tidfile starts with the line track_id,filename)")
    first_seen: dict[str, tuple[int, str]] = {}
    ambiguous: dict[str, TidProblem] = {}
    problems: list[TidProblem] = []
    for line, fields in opened.rows:
        track_id = fields[id_index].strip()
        filename = fields[file_index].strip() if file_index is not None else ""
        if not track_id:  # (blank lines never get here)
            problems.append(TidProblem("", line, "empty track id"))
            continue
        if not is_safe_track_id(track_id):
            problems.append(TidProblem(track_id, line, f"unsafe track id ({TRACK_ID_RULE})"))
            continue
        if track_id not in first_seen:
            first_seen[track_id] = (line, filename)
        elif first_seen[track_id][1] != filename and track_id not in ambiguous:
            first_line, first_file = first_seen[track_id]
            ambiguous[track_id] = TidProblem(track_id, line, f"listed twice with different files: line {first_line} "
                                                             f"({first_file!r}) and line {line} ({filename!r})")
    problems.extend(ambiguous.values())
    if need_filename:
        problems.extend(TidProblem(t, line, "no filename") for t, (line, f) in first_seen.items()
                        if not f and t not in ambiguous)
    kept = [(t, f) for t, (_, f) in first_seen.items() if t not in ambiguous and (f or not need_filename)]
    tracks = pd.DataFrame(kept, columns=["track_id", "filename"], dtype=object)
    return Tidfile(path=opened.path, tracks=tracks, problems=sorted(problems, key=lambda p: p.line))
