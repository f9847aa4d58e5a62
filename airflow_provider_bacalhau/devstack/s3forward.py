"""A plain TCP forwarder: gives the devstack's compute node its own address for the S3 server.

On a real network Airflow and the compute nodes often reach one S3 server at different addresses
(``localhost:8333`` for Airflow, ``seaweed.internal:8333`` for the nodes). On one machine the
devstack makes a second, real address by listening on another port and passing the bytes on,
unchanged, to the S3 server. SigV4 signs the Host header the client sent, which arrives as sent,
so signatures made for the node's address verify at the server.
"""

from __future__ import annotations

import contextlib
import logging
import socket
import threading
from urllib.parse import urlparse

log = logging.getLogger(__name__)

_CHUNK = 256 * 1024


def host_port(url: str) -> tuple[str, int]:
    parsed = urlparse(url if "://" in url else f"http://{url}")
    if not parsed.hostname:
        raise ValueError(f"not an endpoint URL: {url!r}")
    return parsed.hostname, parsed.port or (443 if parsed.scheme == "https" else 80)


class TcpForwarder:
    """Accept on ``listen`` and pipe each connection to ``target`` (both ``http://host:port``).

    :param listen: the address to serve (e.g. the compute node's S3 endpoint).
    :param target: the real server's address.
    """

    def __init__(self, listen: str, target: str) -> None:
        self.listen = host_port(listen)
        self.target = host_port(target)
        self._sock: socket.socket | None = None
        self._stopped = threading.Event()

    def start(self) -> TcpForwarder:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(self.listen)
        sock.listen(128)
        self._sock = sock
        threading.Thread(target=self._accept, name="s3-forward", daemon=True).start()
        log.info("forwarding %s:%d to S3 at %s:%d", *self.listen, *self.target)
        return self

    def stop(self) -> None:
        self._stopped.set()
        if self._sock is not None:
            self._sock.close()

    def _accept(self) -> None:
        assert self._sock is not None
        while not self._stopped.is_set():
            try:
                client, _ = self._sock.accept()
            except OSError:
                return  # closed by stop()
            threading.Thread(target=self._connect, args=(client,), daemon=True).start()

    def _connect(self, client: socket.socket) -> None:
        try:
            upstream = socket.create_connection(self.target, timeout=10)
        except OSError:
            client.close()  # the peer sees its connection closed, as with a dead server
            return
        upstream.settimeout(None)
        _Pair(client, upstream).run()


class _Pair:
    """One forwarded connection: two one-way pipes; the last to finish closes both sockets."""

    def __init__(self, a: socket.socket, b: socket.socket) -> None:
        self.a, self.b = a, b
        self._open = 2
        self._lock = threading.Lock()

    def run(self) -> None:
        threading.Thread(target=self._pipe, args=(self.b, self.a), daemon=True).start()
        self._pipe(self.a, self.b)

    def _pipe(self, source: socket.socket, dest: socket.socket) -> None:
        try:
            while data := source.recv(_CHUNK):
                dest.sendall(data)
        except OSError:
            pass
        with contextlib.suppress(OSError):
            dest.shutdown(socket.SHUT_WR)  # pass the end of the stream on
        with self._lock:
            self._open -= 1
            last = self._open == 0
        if last:
            self.a.close()
            self.b.close()
