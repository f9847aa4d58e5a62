"""The drivers of :class:`~.live_logs.LiveLogs`: one asyncio follower, hosted by the trigger on the
triggerer's event loop, or by a thread with its own loop in the worker (:class:`ThreadedLogFollower`).

The follower runs beside the waiting loop and never decides anything about the wait: the loop
feeds it the poll answers, and closes it when the wait ends (streams still open then get a short
bound to finish, then are cancelled). A broken, stalled or absent stream is retried with the
loop's backoff while its execution runs; nothing it meets is raised.
"""

from __future__ import annotations

import asyncio
import logging
import queue
import threading
import time
from collections.abc import AsyncIterable, Callable
from typing import Any

from airflow_provider_bacalhau.client import logs
from airflow_provider_bacalhau.waiting.live_logs import LiveLogs

#: Seconds the open streams get, once the job has ended, to send their last output and close.
DRAIN_SECONDS = 2.0
#: Seconds a cancelled stream gets to close its connection.
CANCEL_SECONDS = 1.5
#: Seconds one follow connection lasts at most (a reconnect replays the log, deduplicated).
FOLLOW_READ_SECONDS = 3600.0
#: Seconds for the WebSocket handshake.
OPEN_SECONDS = 10.0
#: Output one follow connection may carry (replays included); the per-interval caps bound the log.
FOLLOW_MAX_BYTES = 1 << 40

Opener = Callable[[str], AsyncIterable[logs.LogChunk]]


def stream_opener(config: Any, job_id: str, namespace: str | None = None) -> Opener:
    """Open one execution's log with ``follow=true`` through the client's log reader."""

    def open_stream(execution_id: str) -> AsyncIterable[logs.LogChunk]:
        read = logs.open_read(
            config,
            job_id,
            execution_id,
            follow=True,
            namespace=namespace,
            max_bytes=FOLLOW_MAX_BYTES,
            timeout=FOLLOW_READ_SECONDS,
            open_timeout=OPEN_SECONDS,
        )
        return logs.AsyncLogStream(read)

    return open_stream


class LogFollower:
    """Follows every running execution of one job on the running event loop.

    :param live: the sans-IO state (which executions, offsets, caps, format).
    :param open_stream: opens one execution's log (see :func:`stream_opener`).
    :param emit: takes each line to log (``log.info`` in the triggerer; a queue in the worker).
    :param retry_delay: seconds before the n-th reconnect in a row.
    """

    def __init__(
        self,
        live: LiveLogs,
        open_stream: Opener,
        emit: Callable[[str], None],
        retry_delay: Callable[[int], float],
    ) -> None:
        self.live = live
        self.open_stream = open_stream
        self.emit = emit
        self.retry_delay = retry_delay
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._connected: set[str] = set()  # executions with a connection open now

    def observe(self, answer: Any) -> None:
        """Feed one poll answer (an exception is ignored): starts following new running executions."""
        for execution_id in self.live.observe(answer):
            self._tasks[execution_id] = asyncio.ensure_future(self._follow(execution_id))
        self._emit(self.live.tick())

    async def _follow(self, execution_id: str) -> None:
        failures = 0
        while True:
            self.live.connected(execution_id)
            stream = self.open_stream(execution_id)
            how, before = "closed", self.live.executions[execution_id].taken.copy()
            self._connected.add(execution_id)
            try:
                async for chunk in stream:
                    self._emit(self.live.accept(execution_id, chunk))
                how = getattr(stream, "ended", None) or "closed"
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001  (whatever breaks a stream never fails the task)
                how = "error"
                if failures == 0:  # once per run of failures: a flaky stream must not flood the log
                    self.emit(f"live log of execution {execution_id} broke ({exc}); reconnecting")
            finally:
                self._connected.discard(execution_id)
            if not self.live.stream_ended(execution_id, how):
                return
            progressed = self.live.executions[execution_id].taken != before
            failures = 1 if progressed else failures + 1
            await asyncio.sleep(self.retry_delay(failures))

    def _emit(self, lines: list[str]) -> None:
        for line in lines:
            self.emit(line)

    async def close(self, drain: float = DRAIN_SECONDS) -> dict[str, dict[str, Any]]:
        """End following: open streams get ``drain`` seconds to finish, then are cancelled.
        Logs the unfinished last lines and returns :meth:`LiveLogs.summary`."""
        # Only open streams may still bring output; one waiting to reconnect ends now.
        pending = [task for eid, task in self._tasks.items() if not task.done() and eid in self._connected]
        if pending and drain > 0:
            _, pending_set = await asyncio.wait(pending, timeout=drain)
            pending = list(pending_set)
        self.cancel()
        pending = [task for task in self._tasks.values() if not task.done()]
        if pending:
            await asyncio.wait(pending, timeout=CANCEL_SECONDS)
        self._emit(self.live.finish())
        return self.live.summary()

    def cancel(self) -> None:
        """Cancel every stream at once (the wait itself was cancelled); safe to call again."""
        for task in self._tasks.values():
            task.cancel()


class ThreadedLogFollower:
    """A :class:`LogFollower` on a private event loop in a daemon thread, for the blocking wait.

    Lines are queued, and logged by the waiting thread while it sleeps between polls
    (:meth:`sleep`), so every log call stays on the task's own thread.
    """

    def __init__(
        self, live: LiveLogs, open_stream: Opener, retry_delay: Callable[[int], float], log: logging.Logger
    ) -> None:
        self.log = log
        self.lines: queue.SimpleQueue[str] = queue.SimpleQueue()
        self.loop = asyncio.new_event_loop()
        self.follower = LogFollower(live, open_stream, self.lines.put, retry_delay)
        self._summary: dict[str, dict[str, Any]] = {}
        self._thread = threading.Thread(target=self.loop.run_forever, name="bacalhau-live-logs", daemon=True)
        self._thread.start()

    def observe(self, answer: Any) -> None:
        self.loop.call_soon_threadsafe(self.follower.observe, answer)

    def sleep(self, seconds: float) -> None:
        """Sleep ``seconds``, logging the lines that arrive meanwhile as they come."""
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            try:
                line = self.lines.get(timeout=left)
            except queue.Empty:
                return
            self.log.info("%s", line)
        self.flush()

    def flush(self) -> None:
        while True:
            try:
                self.log.info("%s", self.lines.get_nowait())
            except queue.Empty:
                return

    def close(self, drain: float = DRAIN_SECONDS) -> dict[str, dict[str, Any]]:
        """Close the follower within ``drain`` seconds and a little more; log what is left."""
        future = asyncio.run_coroutine_threadsafe(self.follower.close(drain), self.loop)
        try:
            self._summary = future.result(timeout=drain + CANCEL_SECONDS + 1.0)
        except Exception:  # a follower that cannot close in time is abandoned (a daemon thread)
            self.log.debug("the live log follower did not close in time", exc_info=True)
            self.loop.call_soon_threadsafe(self.follower.cancel)
            self._summary = self.follower.live.summary()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout=CANCEL_SECONDS)
        if not self._thread.is_alive():
            self.loop.close()
        self.flush()
        return self._summary
