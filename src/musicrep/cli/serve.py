"""Command of the serving stage: serve (HTTP API and web page over a search index)."""

from __future__ import annotations

import errno
import logging
import signal
import socket
from pathlib import Path
from typing import Annotated

import typer

from musicrep.cli.common import guarded, print_line
from musicrep.errors import UsageError

logger = logging.getLogger(__name__)


@guarded
def serve_command(
    index: Annotated[Path, typer.Option("--index", help="Index folder written by `musicrep index` (e.g. RUN/index).")],
    model: Annotated[Path | None, typer.Option("--model", help="Model folder; default: the one recorded in the index (another model is refused).")] = None,
    host: Annotated[str, typer.Option("--host", help="Address to listen on. The default, 127.0.0.1, is this machine only; there is no authentication, so think before opening it to a network.")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="TCP port; 0 picks a free one (printed).")] = 8000,
    max_upload_mb: Annotated[float, typer.Option("--max-upload-mb", help="Largest audio upload accepted, in MB (2^20 bytes); larger ones get HTTP 413.")] = 50.0,
    device: Annotated[str, typer.Option("--device", help="Torch device for embedding uploads: cpu, cuda, cuda:1, mps.")] = "cpu",
) -> int:
    """Serve search over HTTP: a JSON API, streaming of the indexed audio, and a web page at /. Ctrl+C stops."""
    if not 0 <= port <= 65535:
        raise UsageError(f"--port must be between 0 and 65535 (got {port})")
    if not max_upload_mb > 0:
        raise UsageError(f"--max-upload-mb must be positive (got {max_upload_mb:g})")
    try:
        import uvicorn

        from musicrep.search.serve import create_app
    except ImportError as exc:
        raise UsageError(f"`musicrep serve` needs the serve extra: pip install 'musicrep[serve]' ({exc})") from exc
    from musicrep.search.query import Searcher

    searcher = Searcher.open(index, model=model, device=device)
    app = create_app(searcher, max_upload_bytes=int(max_upload_mb * 2 ** 20))
    listener = _listen(host, port)  # bound here, so that a busy port is one line, and port 0 is known
    bound_host, bound_port = listener.getsockname()[:2]
    shown = f"[{bound_host}]" if ":" in bound_host else bound_host
    config = uvicorn.Config(app, log_config=None, access_log=logger.isEnabledFor(logging.INFO),
                            timeout_graceful_shutdown=5)
    # uvicorn shuts down gracefully on SIGINT/SIGTERM, then raises the signal again; being stopped is a
    # server's normal end (exit 0), also when SIGTERM comes before uvicorn listens for it
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        print_line(f"serving {len(searcher.ids)} tracks of {index} on http://{shown}:{bound_port}/ "
                   f"(API reference: /docs); Ctrl+C stops")
        if not _is_loopback(bound_host):
            logger.warning("listening on %s: anyone who can reach this address can search and download the "
                           "indexed audio (there is no authentication)", bound_host)
        uvicorn.Server(config).run(sockets=[listener])
    except KeyboardInterrupt:
        pass
    finally:
        signal.signal(signal.SIGTERM, previous)
        listener.close()
    print_line("stopped")
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _listen(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port``, or a :class:`UsageError` saying why not."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE)
    except socket.gaierror as exc:
        raise UsageError(f"--host {host!r}: not an address of this machine ({exc.strerror})") from exc
    family, kind, proto, _, address = infos[0]
    listener = socket.socket(family, kind, proto)
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        listener.bind(address)
        listener.listen(128)
    except OSError as exc:
        listener.close()
        why = "the port is in use" if exc.errno == errno.EADDRINUSE else exc.strerror
        raise UsageError(f"cannot listen on {host}:{port}: {why}") from exc
    listener.set_inheritable(True)
    return listener


def _is_loopback(host: str) -> bool:
    import ipaddress

    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"
