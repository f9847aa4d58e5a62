"""The devstack's local publisher server: ``<executionID>.tar.gz`` files on a port of their own.

As Bacalhau v1.9.3's compute node (pkg/publisher/local/publisher.go ``NewLocalPublisher``,
server.go ``LocalPublisherServer``): a plain file server for the local publisher's directory,
at ``Publishers.Types.Local.Address``/``Port`` (defaults ``127.0.0.1`` and ``6001``,
pkg/config/defaults.go), and result URLs ``http://<Address>:<Port>/<executionID>.tar.gz``.
That is the node's own address: a client elsewhere usually cannot reach it.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
from functools import partial
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

log = logging.getLogger(__name__)

DEFAULT_ADDRESS = "127.0.0.1"
DEFAULT_PORT = 6001
# Bacalhau's config keys as environment variables (BACALHAU_ + key, dots as _).
ADDRESS_ENV = "BACALHAU_PUBLISHERS_TYPES_LOCAL_ADDRESS"
PORT_ENV = "BACALHAU_PUBLISHERS_TYPES_LOCAL_PORT"
_PORT_FILE = "local-publisher-port"


def configured_address() -> str:
    return os.environ.get(ADDRESS_ENV, "").strip() or DEFAULT_ADDRESS


def configured_port() -> int:
    """The port from ``BACALHAU_PUBLISHERS_TYPES_LOCAL_PORT``, or 0 (choose)."""
    raw = os.environ.get(PORT_ENV, "").strip()
    if not raw:
        return 0
    if not raw.isdigit() or not 0 < int(raw) < 65536:
        raise ValueError(f"{PORT_ENV}: expected a port number, got {raw!r}")
    return int(raw)


def _is_free(address: str, port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((address, port))
        except OSError:
            return False
    return True


def _free_port(address: str) -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((address, 0))
        return probe.getsockname()[1]


def choose_port(data_dir: Path, address: str, configured: int = 0) -> int:
    """``configured`` when set; else the port this data directory used before (so a restarted
    server keeps its result URLs valid); else 6001 when free, else a free port (as Bacalhau's
    own devstack gives each node a free one, pkg/devstack/devstack.go)."""
    if configured:
        return configured
    remembered = Path(data_dir) / _PORT_FILE
    before = remembered.read_text().strip() if remembered.exists() else ""
    if before.isdigit() and _is_free(address, int(before)):
        return int(before)
    port = DEFAULT_PORT if _is_free(address, DEFAULT_PORT) else _free_port(address)
    remembered.write_text(str(port))
    return port


def base_url(address: str, port: int) -> str:
    """``urlPrefix`` of ``NewLocalPublisher``: the configured address as given, not resolved."""
    return f"http://{address}:{port}"


class _Files(SimpleHTTPRequestHandler):
    """GET and HEAD of the directory's files (Go's ``http.FileServer``); nothing else."""

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the base class's name
        log.debug("local publisher: " + format, *args)


class LocalResultServer:
    """Serves ``directory`` at ``address:port`` from a daemon thread.

    :param directory: the local publisher's directory.
    :param address: interface to listen on (the devstack listens only where it is told, not on
        every interface as the Go server does: results are nobody else's business).
    :param port: TCP port.
    """

    def __init__(self, directory: Path, address: str, port: int) -> None:
        self.directory, self.address, self.port = Path(directory), address, port
        self._server: ThreadingHTTPServer | None = None

    def start(self) -> LocalResultServer:
        self.directory.mkdir(parents=True, exist_ok=True)
        try:
            handler = partial(_Files, directory=str(self.directory))
            self._server = ThreadingHTTPServer((self.address, self.port), handler)
        except OSError as exc:  # as Go's server: log it, the node keeps running without downloads
            log.error("local publisher server could not listen on %s:%d: %s", self.address, self.port, exc)
            return self
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name="local-publisher", daemon=True).start()
        log.info("local publisher results served at %s", base_url(self.address, self.port))
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
