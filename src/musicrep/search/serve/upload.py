"""Receiving an audio upload: a streamed ``multipart/form-data`` body into a private temporary file.

The body is parsed as it arrives (python-multipart's streaming parser), so memory stays bounded
whatever is sent, and the size limit is enforced while reading: the first byte past the limit ends
the request with 413. The file part goes straight into a ``NamedTemporaryFile`` (mode 0600) inside a
fresh private folder (mode 0700); both are removed when the request ends, whatever happened. Nothing
of the request (the client's file name included) becomes part of a path except a short alphanumeric
suffix, so that decoders that look at the extension see the right one.
"""

from __future__ import annotations

import contextlib
import re
import tempfile
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from musicrep.errors import UsageError

FILE_FIELD = "file"
"""The multipart field that holds the audio file."""
MAX_FIELD_BYTES = 1024
"""Other fields (``k``, ``exclude_artist``) are short; anything longer is refused."""
MAX_PARTS = 8
BODY_OVERHEAD = 64 * 1024
"""Room for the multipart framing and the small fields on top of the file itself."""
_SAFE_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


class UploadTooLargeError(UsageError):
    """The upload is larger than the server accepts (HTTP 413)."""


@dataclass
class Upload:
    """An uploaded file, on disk for as long as the request lasts."""

    path: Path
    """The private temporary file holding the file part."""
    filename: str
    """The name the client gave (for messages only: it never becomes a path)."""
    size: int
    """Bytes received."""
    fields: dict[str, str] = field(default_factory=dict)
    """The other form fields, as text."""


class _FormReader:
    """python-multipart callbacks: the file part into ``handle`` (counted), small fields into memory."""

    def __init__(self, handle, max_bytes: int) -> None:
        self.handle = handle
        self.max_bytes = max_bytes
        self.size = 0
        self.parts = 0
        self.filename: str | None = None
        self.fields: dict[str, str] = {}
        self._header_name = bytearray()
        self._header_value = bytearray()
        self._disposition = b""
        self._name = ""
        self._is_file = False
        self._data = bytearray()
        self.complete = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self.on_part_begin, "on_header_field": self.on_header_field,
                "on_header_value": self.on_header_value, "on_header_end": self.on_header_end,
                "on_headers_finished": self.on_headers_finished, "on_part_data": self.on_part_data,
                "on_part_end": self.on_part_end, "on_end": self.on_end}

    def on_part_begin(self) -> None:
        self.parts += 1
        if self.parts > MAX_PARTS:
            raise UsageError(f"too many form fields (at most {MAX_PARTS})")
        self._disposition, self._name, self._is_file, self._data = b"", "", False, bytearray()

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_name += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        if bytes(self._header_name).lower() == b"content-disposition":
            self._disposition = bytes(self._header_value)
        self._header_name, self._header_value = bytearray(), bytearray()

    def on_headers_finished(self) -> None:
        _, options = parse_options_header(self._disposition)
        self._name = options.get(b"name", b"").decode("utf-8", "replace")
        if self._name == FILE_FIELD:
            if self.filename is not None:
                raise UsageError(f"send one file in the {FILE_FIELD!r} field, not several")
            self._is_file = True
            self.filename = options.get(b"filename", b"").decode("utf-8", "replace")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._is_file:
            self.size += end - start
            if self.size > self.max_bytes:
                raise UploadTooLargeError(f"the upload is larger than this server's limit of "
                                          f"{_megabytes(self.max_bytes)}")
            self.handle.write(data[start:end])
        else:
            self._data += data[start:end]
            if len(self._data) > MAX_FIELD_BYTES:
                raise UsageError(f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if not self._is_file and self._name:
            self.fields[self._name] = self._data.decode("utf-8", "replace")

    def on_end(self) -> None:
        self.complete = True


def _megabytes(n_bytes: int) -> str:
    return f"{n_bytes / 2 ** 20:.3g} MB"


def _suffix(filename: str) -> str:
    """The file name's extension when it is short and alphanumeric (decoders may look at it), else none."""
    suffix = Path(filename.replace("\\", "/")).suffix
    return suffix.lower() if _SAFE_SUFFIX.fullmatch(suffix) else ""


@contextlib.asynccontextmanager
async def receive_upload(request: Request, *, max_bytes: int, tmp_dir: str | Path | None = None
                         ) -> AsyncIterator[Upload]:
    """Stream a ``multipart/form-data`` request's file into a private temporary file, for the ``with`` block.

    Parameters
    ----------
    request : Request
        Its body is read here, once.
    max_bytes : int
        Largest file accepted; checked against ``Content-Length`` before reading and counted while reading.
    tmp_dir : path-like, optional
        Where the private folder is made (the system's temporary folder by default).

    Yields
    ------
    Upload
        Removed, with its folder, when the block ends (also on errors and client disconnects).

    Raises
    ------
    UploadTooLargeError
        Declared or received size over ``max_bytes``.
    UsageError
        Not a multipart form, a malformed one, no ``file`` field, an empty file, too many or too long fields.
    """
    content_type, params = parse_options_header(request.headers.get("content-type"))
    boundary = params.get(b"boundary")
    if content_type != b"multipart/form-data" or not boundary:
        raise UsageError("an upload must be multipart/form-data with a boundary")
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > max_bytes + BODY_OVERHEAD:
        raise UploadTooLargeError(f"the upload ({_megabytes(int(declared))}) is larger than this server's limit "
                                  f"of {_megabytes(max_bytes)}")
    # the folder is made 0700 and the file 0600 by tempfile itself; both go when the block ends
    with tempfile.TemporaryDirectory(prefix="musicrep-upload-", dir=tmp_dir) as folder:
        with tempfile.NamedTemporaryFile(dir=folder, prefix="upload-", delete=False) as handle:
            reader = _FormReader(handle, max_bytes)
            parser = MultipartParser(boundary, reader.callbacks())
            try:
                async for chunk in request.stream():
                    parser.write(chunk)
                parser.finalize()
            except MultipartParseError as exc:
                raise UsageError(f"malformed multipart form ({exc})") from exc
            filename = reader.filename
        if not reader.complete:
            raise UsageError("incomplete multipart form (the body ended before its closing boundary)")
        if filename is None:
            raise UsageError(f"no {FILE_FIELD!r} field in the form: send the audio as {FILE_FIELD}=@clip.mp3")
        if reader.size == 0:
            raise UsageError(f"the uploaded file {filename!r} is empty")
        path = Path(handle.name)
        if _suffix(filename):  # rename inside the private folder only
            path = path.rename(path.with_name(path.name + _suffix(filename)))
        yield Upload(path=path, filename=filename, size=reader.size, fields=reader.fields)
