"""A job's container output from ``GET /api/v1/orchestrator/jobs/{id}/logs`` (WebSocket).

v1.9.3 sends one JSON text frame per output chunk, ``{"value": {"Type": 1|2, "Line": "..."}}``
(1 stdout, 2 stderr; a chunk may hold several lines or part of one), or one error frame
``{"value": {...}, "error": "..."}``, then a normal close (reference §2.11;
pkg/publicapi/endpoint/orchestrator/job.go ``logs``, pkg/lib/concurrency/async_result.go).
It is the only place a *failed* execution's output can be read: v1.9.3 stores no RunOutput for
it, and the node keeps the log files about an hour (pkg/compute/executor.go
``executionRootCleanupDelay``).

Like :mod:`~airflow_provider_bacalhau.client.core`, the logic is written once, without I/O:
:func:`build_log_request` (URL, auth header, TLS, namespace from the client's config),
:func:`parse_frame` and :class:`LogRead` (the byte and time bounds of one read, and what ends it).
:func:`iter_logs` and :func:`aiter_logs` only move frames (``websockets``' sync and asyncio
clients). :class:`LogTail` keeps the last lines of each stream.
"""

from __future__ import annotations

import asyncio
import json
import logging
import ssl
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from urllib.parse import quote, urlencode, urlsplit

from airflow_provider_bacalhau import __version__
from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.responses import redact
from airflow_provider_bacalhau.errors import BacalhauLogsError


class _HideAuthorization(logging.Filter):
    """websockets logs each handshake header at DEBUG (``"> %s: %s"``): keep the credential out."""

    def filter(self, record: logging.LogRecord) -> bool:
        args = record.args
        if isinstance(args, tuple) and len(args) == 2 and str(args[0]).lower() == "authorization":
            record.args = (args[0], "***")
        return True


#: The logger given to websockets' clients, in place of its own ``websockets.client``.
WEBSOCKET_LOG = logging.getLogger("airflow_provider_bacalhau.client.logs.websocket")
WEBSOCKET_LOG.addFilter(_HideAuthorization())

STDOUT, STDERR = "stdout", "stderr"
_STREAMS = {1: STDOUT, 2: STDERR}  # models.ExecutionLogType
JOBS = "/api/v1/orchestrator/jobs"
#: Bytes of output one read lets through by default.
DEFAULT_MAX_BYTES = 1 << 20
#: The largest frame accepted (a chunk is at most one Docker log frame, 32 KiB in practice).
MAX_FRAME = 1 << 20


@dataclass(frozen=True)
class LogChunk:
    """One piece of output: ``stream`` is ``"stdout"`` or ``"stderr"``; ``text`` may hold several
    lines, or part of one."""

    stream: str
    text: str


@dataclass(frozen=True)
class LogRequest:
    """Where and how to open one log stream; ``headers`` hold the credentials (never logged)."""

    url: str
    headers: dict[str, str] = field(repr=False)
    ssl: ssl.SSLContext | None
    secrets: tuple[str, ...] = field(repr=False, default=())

    @property
    def path(self) -> str:
        return urlsplit(self.url).path


def build_log_request(
    config: ClientConfig,
    job_id_or_name: str,
    *,
    execution_id: str | None = None,
    follow: bool = False,
    tail: bool = False,
    job_version: int | None = None,
    namespace: str | None = None,
) -> LogRequest:
    """The WebSocket request for a job's logs, with the client's base URL, TLS and auth header.

    :param execution_id: the execution to read; needed for a failed or cancelled one (without it
        the server picks the latest execution that did not fail, and errors when there is none).
    :param follow: keep streaming until the execution's output ends.
    :param tail: v1.9.3's meaning: only output written from now on (not "the last lines").
    """
    if not job_id_or_name or not str(job_id_or_name).strip():
        raise ValueError("job_id_or_name: must not be empty")
    params: dict[str, str] = {}
    if execution_id:
        params["execution_id"] = execution_id
    if follow:
        params["follow"] = "true"
    if tail:
        params["tail"] = "true"
    if job_version:
        params["job_version"] = str(int(job_version))
    if namespace or config.namespace:
        params["namespace"] = namespace or config.namespace or ""
    base = config.base_url.replace("https://", "wss://", 1).replace("http://", "ws://", 1)
    url = f"{base}{JOBS}/{quote(str(job_id_or_name), safe='')}/logs"
    if params:
        url += "?" + urlencode(params)
    context = None
    if url.startswith("wss://"):
        verify = config.ssl_context()
        if verify is True:
            context = ssl.create_default_context()
        elif verify is False:
            context = ssl.create_default_context()
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        else:
            context = verify
    headers = {"User-Agent": f"airflow-provider-bacalhau/{__version__}", **config.auth_headers()}
    return LogRequest(url, headers, context, config.secrets)


def parse_frame(message: str | bytes) -> LogChunk | None:
    """One frame as a chunk; ``None`` for a frame without output. An error frame raises.

    Keys are matched case-insensitively, as Go decodes them.
    """
    try:
        frame = json.loads(message)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BacalhauLogsError(f"log stream sent a frame that is not JSON: {exc}") from None
    if not isinstance(frame, dict):
        raise BacalhauLogsError(f"log stream sent an unexpected frame: {str(frame)[:200]!r}")
    lowered = {str(k).lower(): v for k, v in frame.items()}
    if lowered.get("error"):
        raise BacalhauLogsError(str(lowered["error"]), server_error=True)
    value = lowered.get("value")
    if not isinstance(value, dict):
        return None
    value = {str(k).lower(): v for k, v in value.items()}
    stream, line = _STREAMS.get(value.get("type")), value.get("line")  # type: ignore[arg-type]
    if stream is None or not isinstance(line, str) or not line:
        return None
    return LogChunk(stream, line)


class LogRead:
    """The bounds of one read, without I/O: at most ``max_bytes`` of output (UTF-8) and
    ``timeout`` seconds from the start, the handshake included.

    ``ended`` says why the read ended: ``"closed"`` (the server finished), ``"max_bytes"`` or
    ``"timeout"`` (a bound stopped it; more output may exist).

    :param request: see :func:`build_log_request`.
    :param max_bytes: output to let through; the chunk that crosses it is cut.
    :param timeout: seconds for the whole read.
    :param open_timeout: seconds for the handshake alone (default: the whole read's), so a long
        follow still gives up soon on a server that never answers the upgrade.
    :param clock: monotonic clock (for tests).
    """

    def __init__(
        self,
        request: LogRequest,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        timeout: float = 30.0,
        open_timeout: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if max_bytes <= 0:
            raise ValueError(f"max_bytes: must be > 0, got {max_bytes!r}")
        if not timeout or timeout <= 0:
            raise ValueError(f"timeout: must be > 0, got {timeout!r}")
        self.request = request
        self.max_bytes = max_bytes
        self.clock = clock
        self.deadline = clock() + timeout
        self.open_timeout = open_timeout
        self.received = 0
        self.ended: str | None = None

    def remaining(self) -> float:
        """Seconds left; at least a sliver, so a driver's own timeouts stay valid."""
        return max(0.001, self.deadline - self.clock())

    def handshake_timeout(self) -> float:
        """Seconds the handshake may take: the read's remaining time, or less when asked."""
        remaining = self.remaining()
        return remaining if self.open_timeout is None else min(remaining, self.open_timeout)

    @property
    def expired(self) -> bool:
        return self.clock() >= self.deadline

    def accept(self, message: str | bytes) -> LogChunk | None:
        """Account for one frame; returns its output (cut at the byte bound) or ``None``."""
        chunk = parse_frame(message)
        if chunk is None:
            return None
        data = chunk.text.encode("utf-8")
        room = self.max_bytes - self.received
        if len(data) >= room:
            self.ended = "max_bytes"
            data = data[:room]
            chunk = LogChunk(chunk.stream, data.decode("utf-8", errors="ignore"))
        self.received += len(data)
        return chunk if chunk.text else None

    def failure(self, exc: BaseException) -> BacalhauLogsError:
        """A transport problem as an error naming the endpoint, without credentials."""
        if isinstance(exc, BacalhauLogsError):
            return exc
        text = redact(f"{type(exc).__name__}: {exc}", self.request.secrets)
        # A refused handshake (websockets' InvalidStatus) keeps its HTTP status for callers.
        response = getattr(exc, "response", None)
        status = getattr(response, "status_code", None)
        return BacalhauLogsError(
            f"cannot read logs at {self.request.path}: {text}",
            status=status if isinstance(status, int) else None,
        )


def iter_logs(read: LogRead) -> Iterator[LogChunk]:
    """Drive ``read`` with the blocking ``websockets`` client; raises :class:`BacalhauLogsError`."""
    from websockets.exceptions import ConnectionClosedOK, WebSocketException
    from websockets.sync.client import connect

    request = read.request
    try:
        with connect(
            request.url,
            additional_headers=request.headers,
            ssl=request.ssl,
            open_timeout=read.handshake_timeout(),
            close_timeout=1,
            max_size=MAX_FRAME,
            logger=WEBSOCKET_LOG,
        ) as ws:
            while read.ended is None:
                if read.expired:
                    read.ended = "timeout"
                    break
                try:
                    message = ws.recv(timeout=read.remaining())
                except TimeoutError:
                    read.ended = "timeout"
                    break
                except ConnectionClosedOK:
                    read.ended = "closed"
                    break
                chunk = read.accept(message)
                if chunk is not None:
                    yield chunk
    except (OSError, WebSocketException) as exc:  # TimeoutError (handshake) is an OSError
        raise read.failure(exc) from None


async def aiter_logs(read: LogRead) -> AsyncIterator[LogChunk]:
    """Drive ``read`` with the asyncio ``websockets`` client; raises :class:`BacalhauLogsError`."""
    from websockets.asyncio.client import connect
    from websockets.exceptions import ConnectionClosedOK, WebSocketException

    request = read.request
    try:
        async with connect(
            request.url,
            additional_headers=request.headers,
            ssl=request.ssl,
            open_timeout=read.handshake_timeout(),
            close_timeout=1,
            max_size=MAX_FRAME,
            logger=WEBSOCKET_LOG,
        ) as ws:
            while read.ended is None:
                if read.expired:
                    read.ended = "timeout"
                    break
                try:
                    message = await asyncio.wait_for(ws.recv(), read.remaining())
                except TimeoutError:
                    read.ended = "timeout"
                    break
                except ConnectionClosedOK:
                    read.ended = "closed"
                    break
                chunk = read.accept(message)
                if chunk is not None:
                    yield chunk
    except (OSError, WebSocketException) as exc:
        raise read.failure(exc) from None


class LogTail:
    """The last ``lines`` lines of each stream, each stream cut to its last ``max_bytes`` (UTF-8).

    Feed it chunks with :meth:`add`; ``cut`` tells whether earlier output was dropped, ``ended``
    (set by the caller) why the read stopped, and ``error`` what broke a stream that had already
    sent some output.

    :param lines: lines kept per stream.
    :param max_bytes: bytes kept per stream.
    """

    def __init__(self, lines: int = 20, max_bytes: int = 2048) -> None:
        if lines <= 0 or max_bytes <= 0:
            raise ValueError("lines and max_bytes: must be > 0")
        self.lines = lines
        self.max_bytes = max_bytes
        self._lines: dict[str, deque[str]] = {
            STDOUT: deque(maxlen=lines + 1),
            STDERR: deque(maxlen=lines + 1),
        }
        self._seen: dict[str, int] = {STDOUT: 0, STDERR: 0}
        self.ended: str | None = None
        self.error: str | None = None

    def add(self, chunk: LogChunk) -> None:
        kept = self._lines.setdefault(chunk.stream, deque(maxlen=self.lines + 1))
        pieces = chunk.text.split("\n")
        if kept and not kept[-1].endswith("\n"):
            kept[-1] += pieces.pop(0) + ("\n" if pieces else "")  # finish the partial line
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            if last and not piece:
                break
            kept.append(piece if last else piece + "\n")
        if kept and len(kept[-1].encode("utf-8")) > self.max_bytes:
            # One huge line must not grow without bound, and must still show: cut it in bytes.
            kept[-1] = kept[-1].encode("utf-8")[-self.max_bytes :].decode("utf-8", errors="ignore")
        self._seen[chunk.stream] = self._seen.get(chunk.stream, 0) + len(chunk.text)

    def text(self, stream: str) -> str:
        """The kept tail of ``"stdout"`` or ``"stderr"``."""
        out: list[str] = []
        size = 0
        for line in reversed(list(self._lines.get(stream, ()))[-self.lines :]):
            size += len(line.encode("utf-8"))
            if size > self.max_bytes:
                break
            out.append(line)
        return "".join(reversed(out))

    @property
    def stdout(self) -> str:
        return self.text(STDOUT)

    @property
    def stderr(self) -> str:
        return self.text(STDERR)

    @property
    def cut(self) -> bool:
        """Earlier output was dropped from the tail (or the read stopped at a bound)."""
        shown = len(self.stdout) + len(self.stderr)
        return shown < sum(self._seen.values()) or self.ended in ("max_bytes", "timeout")

    def __bool__(self) -> bool:
        return bool(self.stdout or self.stderr)


class _Stream:
    def __init__(self, read: LogRead) -> None:
        self.read = read

    @property
    def ended(self) -> str | None:
        """Why the read stopped (see :class:`LogRead`), once it has."""
        return self.read.ended


class LogStream(_Stream):
    """One log read for the blocking client: iterate it once for :class:`LogChunk` objects."""

    def __iter__(self) -> Iterator[LogChunk]:
        return iter_logs(self.read)


class AsyncLogStream(_Stream):
    """One log read for the asyncio client: ``async for`` only, so it cannot block the loop."""

    def __aiter__(self) -> AsyncIterator[LogChunk]:
        return aiter_logs(self.read)


def open_read(
    config: ClientConfig,
    job_id_or_name: str,
    execution_id: str | None = None,
    *,
    follow: bool = False,
    tail: bool = False,
    job_version: int | None = None,
    namespace: str | None = None,
    max_bytes: int = DEFAULT_MAX_BYTES,
    timeout: float | None = None,
    open_timeout: float | None = None,
) -> LogRead:
    """The :class:`LogRead` behind both clients' ``job_logs`` (``timeout`` defaults to the
    client's request timeout; ``open_timeout`` bounds the handshake alone)."""
    request = build_log_request(
        config,
        job_id_or_name,
        execution_id=execution_id,
        follow=follow,
        tail=tail,
        job_version=job_version,
        namespace=namespace,
    )
    return LogRead(request, max_bytes=max_bytes, timeout=timeout or config.timeout, open_timeout=open_timeout)


def keep_partial(kept: LogTail, read: LogRead, error: BacalhauLogsError | None) -> LogTail:
    """End a tail read: a broken stream still gives what it sent before; with nothing, it raises."""
    kept.ended = "error" if error is not None else read.ended
    kept.error = None if error is None else str(error)
    if error is not None and not kept:
        raise error
    return kept


def tail(chunks: Iterable[LogChunk], lines: int = 20, max_bytes: int = 2048) -> LogTail:
    """The last lines of each stream of ``chunks`` (e.g. ``client.job_logs(...)``)."""
    kept = LogTail(lines, max_bytes)
    for chunk in chunks:
        kept.add(chunk)
    return kept
