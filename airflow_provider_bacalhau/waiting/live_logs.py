"""Live container output in the task log, without I/O: which executions to follow, what was
already logged, the caps, and the one line format.

Drivers (:mod:`.log_follower`: a task on the triggerer's loop, a thread in the worker) open the
logs WebSocket (``follow=true``, ``execution_id`` given) and feed :class:`LiveLogs` the poll
answers and the chunks; it hands back finished lines, ready to log.

Why offsets: v1.9.3 keeps no position for a reader. A new connection without ``tail=true``
replays the execution's log file from its first frame (pkg/compute/logstream
``NewReaderForRequest`` sets ``since`` to the Unix epoch; ``TimestampedStdCopy`` re-reads the file),
and ``tail=true`` would skip everything written while disconnected. So every connection starts
from the beginning and the characters of each stream already taken are skipped.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from airflow_provider_bacalhau.client.logs import STDERR, STDOUT, LogChunk

#: Lines logged per interval (the poll interval) for one job; the rest are counted and noted.
MAX_LINES_PER_INTERVAL = 200
#: Bytes (UTF-8) of output logged per interval for one job.
MAX_BYTES_PER_INTERVAL = 64 * 1024
#: A longer line is logged in pieces of this many characters.
MAX_LINE_CHARS = 4096
#: Reconnects allowed to an execution already known to be over (a live one is retried until the
#: wait ends, with the waiting loop's backoff).
MAX_RECONNECTS_AFTER_END = 3
#: Executions worth following: accepted by a node (Bacalhau counts BidAccepted as running), running
#: or publishing. The node's reader waits for a log file that does not exist yet (60 s,
#: pkg/compute/logstream ``logFileWait``), so connecting at BidAccepted costs nothing and catches
#: the first lines as they are written.
_FOLLOWED_STATES = frozenset({"BID_ACCEPTED", "RUNNING", "PUBLISHING"})


def short_id(execution_id: str) -> str:
    """``e-78faf114`` for ``e-78faf114-6a45-...``, as Bacalhau shortens IDs (pkg/util/idgen
    ``ShortUUID``); any other form as it is."""
    prefix, dash, rest = execution_id.partition("-")
    if dash and len(prefix) == 1 and len(rest) == 36 and rest.count("-") == 4:
        return f"{prefix}-{rest[:8]}"
    return execution_id


def format_line(stream: str, text: str, execution_id: str | None = None) -> str:
    """The one format of a streamed line: ``stdout | hello``, or ``[e-1a2b3c4d] stderr | oops``
    when the job has more than one execution."""
    head = f"[{short_id(execution_id)}] " if execution_id else ""
    return f"{head}{stream} | {text}"


@dataclass
class _Followed:
    """What is known of one followed execution."""

    terminal: bool = False
    taken: dict[str, int] = field(default_factory=lambda: {STDOUT: 0, STDERR: 0})  # over all connections
    received: dict[str, int] = field(default_factory=lambda: {STDOUT: 0, STDERR: 0})  # on this one
    partial: dict[str, str] = field(default_factory=lambda: {STDOUT: "", STDERR: ""})
    closed_normally: bool = False  # a connection reached the log's end (v1.9.3 closes only there)
    connections: int = 0
    reconnects_after_end: int = 0
    lines: int = 0

    @property
    def complete(self) -> bool:
        """Everything was read: the execution ended and a connection reached the end of its log
        (a normal close comes after the end frame, pkg/compute/logstream ``TimestampedStdCopy``)."""
        return self.terminal and self.closed_normally


class LiveLogs:
    """The state of one job's live log, fed by a driver (see the module docstring).

    :param interval: seconds of one cap window (the poll interval).
    :param max_lines: lines logged per window; more are dropped, with a note.
    :param max_bytes: UTF-8 bytes logged per window.
    :param max_line: characters per logged line; longer lines are logged in pieces.
    :param clock: monotonic clock (for tests).
    """

    def __init__(
        self,
        interval: float,
        *,
        max_lines: int = MAX_LINES_PER_INTERVAL,
        max_bytes: int = MAX_BYTES_PER_INTERVAL,
        max_line: int = MAX_LINE_CHARS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if interval <= 0 or max_lines <= 0 or max_bytes <= 0 or max_line <= 0:
            raise ValueError("interval, max_lines, max_bytes and max_line: must be > 0")
        self.interval, self.max_lines, self.max_bytes, self.max_line = (
            interval,
            max_lines,
            max_bytes,
            max_line,
        )
        self.clock = clock
        self.executions: dict[str, _Followed] = {}
        self.multiple = False
        self._window_start = clock()
        self._window_lines = self._window_bytes = 0
        self._dropped_lines = self._dropped_bytes = 0

    # -- what the poll answers say ----------------------------------------------------------------
    def observe(self, response: Any) -> list[str]:
        """Learn from a ``GET /jobs/{id}?include=executions`` answer; return the IDs of executions
        to start following now (running, not followed yet). Anything else is ignored."""
        from airflow_provider_bacalhau.spec import JobStatus

        if not isinstance(response, dict):
            return []
        status = JobStatus.from_api(response)
        count = (response.get("Job") or {}).get("Count") if isinstance(response.get("Job"), dict) else None
        if len(status.executions) > 1 or (isinstance(count, int) and count > 1):
            self.multiple = True
        start = []
        for execution in status.executions:
            followed = self.executions.get(execution.id)
            if followed is not None:
                followed.terminal = followed.terminal or execution.compute_state.is_terminal
            elif execution.id and execution.compute_state.name in _FOLLOWED_STATES:
                self.executions[execution.id] = _Followed()
                start.append(execution.id)
        return start

    # -- what a stream sends ----------------------------------------------------------------------
    def connected(self, execution_id: str) -> None:
        """A new connection to the execution's log: it replays from the start."""
        followed = self.executions[execution_id]
        followed.connections += 1
        followed.received = {STDOUT: 0, STDERR: 0}

    def accept(self, execution_id: str, chunk: LogChunk) -> list[str]:
        """The lines to log for one chunk: a replayed part is skipped, an unfinished line waits."""
        followed = self.executions[execution_id]
        stream, text = chunk.stream, chunk.text
        start = followed.received.get(stream, 0)
        followed.received[stream] = start + len(text)
        already = followed.taken.get(stream, 0)
        if start + len(text) <= already:
            return []
        text = text[max(0, already - start) :]
        followed.taken[stream] = start + len(chunk.text)
        pieces = (followed.partial.get(stream, "") + text).split("\n")
        followed.partial[stream] = pieces.pop()
        while len(followed.partial[stream]) > self.max_line:
            pieces.append(followed.partial[stream][: self.max_line])
            followed.partial[stream] = followed.partial[stream][self.max_line :]
        return self._emit(execution_id, stream, pieces)

    def stream_ended(self, execution_id: str, how: str) -> bool:
        """Note how a connection ended (``closed``, ``timeout``, ``max_bytes``, ``error``); returns
        whether to connect again."""
        followed = self.executions[execution_id]
        followed.closed_normally = followed.closed_normally or how == "closed"
        if followed.terminal and how == "closed":
            return False
        if followed.terminal:
            followed.reconnects_after_end += 1
            return followed.reconnects_after_end <= MAX_RECONNECTS_AFTER_END
        return True

    # -- time and the end -------------------------------------------------------------------------
    def tick(self) -> list[str]:
        """The note about a finished window's dropped lines, if any (call on every poll)."""
        return self._roll()

    def finish(self) -> list[str]:
        """Unfinished last lines and the last drop note, when the wait ends."""
        lines: list[str] = []
        for execution_id, followed in self.executions.items():
            for stream in (STDOUT, STDERR):
                rest, followed.partial[stream] = followed.partial[stream].rstrip("\r"), ""
                if rest:
                    lines.extend(self._emit(execution_id, stream, [rest]))
        return lines + self._drop_note()

    def summary(self) -> dict[str, dict[str, Any]]:
        """What was taken per execution, for the completion step (it skips that part of the final
        output): ``{execution_id: {"stdout": chars, "stderr": chars, "complete": bool}}``."""
        return {
            eid: {STDOUT: f.taken[STDOUT], STDERR: f.taken[STDERR], "complete": f.complete}
            for eid, f in self.executions.items()
            if f.taken[STDOUT] or f.taken[STDERR] or f.complete
        }

    # -- caps -------------------------------------------------------------------------------------
    def _emit(self, execution_id: str, stream: str, texts: list[str]) -> list[str]:
        out = self._roll()
        followed = self.executions[execution_id]
        for text in texts:
            line = format_line(stream, text.rstrip("\r"), execution_id if self.multiple else None)
            size = len(line.encode("utf-8"))
            if self._window_lines >= self.max_lines or self._window_bytes + size > self.max_bytes:
                self._dropped_lines += 1
                self._dropped_bytes += size
                continue
            self._window_lines += 1
            self._window_bytes += size
            followed.lines += 1
            out.append(line)
        return out

    def _roll(self) -> list[str]:
        now = self.clock()
        if now - self._window_start < self.interval:
            return []
        note = self._drop_note()
        self._window_start = now
        self._window_lines = self._window_bytes = 0
        return note

    def _drop_note(self) -> list[str]:
        if not self._dropped_lines:
            return []
        note = (
            f"... {self._dropped_lines} line(s) ({self._dropped_bytes} bytes) of output not shown: "
            "the live log "
            f"keeps at most {self.max_lines} lines and {self.max_bytes} bytes per {self.interval:g} s; the "
            f"full output is in the job's published stdout/stderr"
        )
        self._dropped_lines = self._dropped_bytes = 0
        return [note]


def streamed_from_event(event: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The ``streamed`` part of a wait's event (see :meth:`LiveLogs.summary`); ``{}`` when absent
    or malformed (an event from a trigger that did not stream)."""
    raw = event.get("streamed")
    if not isinstance(raw, dict):
        return {}
    clean: dict[str, dict[str, Any]] = {}
    for execution_id, entry in raw.items():
        if isinstance(execution_id, str) and isinstance(entry, dict):
            clean[execution_id] = {
                STDOUT: entry.get(STDOUT) if isinstance(entry.get(STDOUT), int) else 0,
                STDERR: entry.get(STDERR) if isinstance(entry.get(STDERR), int) else 0,
                "complete": entry.get("complete") is True,
            }
    return clean
