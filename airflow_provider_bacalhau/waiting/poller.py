"""One list request per poll for every job a triggerer watches, instead of one GET per job.

Every trigger on an event loop registers its job here (:func:`watch`). One :class:`SharedPoller`
per event loop and client configuration (server, credentials, namespace) scans the labelled job
list once per poll interval (:mod:`.list_scan`: newest change first, back to the watermark). It
then reads the jobs that changed itself (``GET /jobs/{id}?include=executions``, the read a trigger
would make), oldest change first and :data:`READERS` at a time, and hands each trigger its answer,
which :func:`~airflow_provider_bacalhau.waiting.loop.watch_job` judges as if the trigger had read
it: one state decision. The other triggers sleep. A few reads at a time, in the order the jobs
changed, rather than a burst of one read per changed trigger on the event loop at once: when
1,000 jobs end together, the first to end are seen first.

A job is watched through the list once its trigger has read it after the poller's current
watermark was set (:func:`watch` waits for the first one); every later change is then newer than
the watermark. Until then, and wherever the list cannot answer (a server without the order or the
label selector, an error, a job without the provider's label, a read error being retried), the
trigger polls on its own, as before: :meth:`JobWatch.wait` is then a plain sleep.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import heapq
import itertools
import logging
import time
import weakref
from typing import Any

from airflow_provider_bacalhau.waiting.list_scan import (
    MAX_PAGES,
    WATCH_LABEL,
    WATCH_LABEL_VALUE,
    Scan,
    page_limit,
    scan_changes,
)

log = logging.getLogger(__name__)

#: A trigger watched through the list still reads its job this often, in case the list misses it.
FULL_READ_SECONDS = 900.0
#: Longest pause between two list attempts while the server cannot answer them.
MAX_RETRY_SECONDS = 300.0
#: Retries of one list request (connection trouble, 429, 502-504), as the client judges them.
LIST_RETRIES = 2
#: How long after the last list answer transient list errors are only retried, the watermark kept
#: (the next scan that answers still finds every change); later, every trigger polls on its own.
#: Counted in time, not in errors: 10,000 triggers sent back after three list timeouts loaded a
#: server that was only slow with 2,000 reads a second (benchmarks/triggers.py, docs/triggers.rst).
LIST_OUTAGE_SECONDS = 60.0
#: Jobs the poller reads at once after a scan; the rest wait their turn, oldest change first.
READERS = 4
#: Longest wait of a trigger for the poller's first watermark (one list request), so that its first
#: read is covered by the list; under load that first request can take long.
FIRST_WATERMARK_SECONDS = 60.0
#: False: every trigger polls on its own (what ``benchmarks/triggers.py`` compares against).
ENABLED = True


class JobWatch:
    """One trigger's registration: :meth:`saw` after each read, :meth:`wait` instead of a sleep."""

    def __init__(self, poller: SharedPoller, poll_interval: float) -> None:
        self.poller = poller
        self.poll_interval = poll_interval
        self.job_id: str | None = None  # the real ID (a trigger may watch a job by name)
        self.seen: int | None = None  # ModifyTime of the last read
        self.listed: int | None = None  # newest ModifyTime the list showed
        self.labelled = False
        self.errored = False
        self.covered = False
        self.read_epoch = poller.epoch
        self.reads = 0  # the trigger's reads so far (saw() calls)
        self.queued = False  # in the poller's read queue
        self._answer: dict[str, Any] | None = None  # the poller's read, not yet taken
        self._changed = False
        self._wake = asyncio.Event()

    @property
    def batched(self) -> bool:
        """Watched through the shared list (else the trigger polls on its own)."""
        return self.covered and self.listable and self.poller.healthy

    @property
    def listable(self) -> bool:
        return ENABLED and self.labelled and not self.errored and self.seen is not None

    async def ready(self, timeout: float) -> None:
        """Wait (at most ``timeout`` s) for the poller's watermark, so the first read is covered."""
        if ENABLED and self.poller.watermark is None and self.poller.healthy:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.poller.established.wait(), timeout)
        self.read_epoch = self.poller.epoch

    def saw(self, answer: Any) -> None:
        """Record what the trigger's read returned: the job's answer, or the exception raised."""
        self.reads += 1
        self._answer = None
        if isinstance(answer, BaseException) or not isinstance(answer, dict):
            self.errored = True  # the waiting loop retries on its own schedule
            return
        job: dict[str, Any] = answer["Job"] if isinstance(answer.get("Job"), dict) else {}
        self.errored = False
        self.poller.identify(self, job.get("ID"))
        stamp = job.get("ModifyTime")
        self.seen = stamp if isinstance(stamp, int) else None
        labels = job.get("Labels")
        self.labelled = isinstance(labels, dict) and labels.get(WATCH_LABEL) == WATCH_LABEL_VALUE
        # Read after the watermark was set: every later change is newer than the watermark.
        self.covered = self.read_epoch == self.poller.epoch and self.poller.watermark is not None
        self._changed = self.listed is not None and self.seen is not None and self.listed > self.seen

    def take_answer(self) -> dict[str, Any] | None:
        """The poller's read of the changed job, once (None: the trigger reads it itself)."""
        answer, self._answer = self._answer, None
        return answer

    def deliver(self, answer: dict[str, Any] | None) -> None:
        """Called by the poller with its read of the changed job (None: it could not read it)."""
        if self.batched:  # else the trigger polls on its own: a held answer would only be stale
            self._answer = answer
        self.notify(changed=True)

    def notify(self, changed: bool) -> None:
        """Called by the poller: the job changed (read it), or the poller's state did."""
        self._changed = self._changed or changed
        self._wake.set()

    async def wait(self, seconds: float, deadline: float) -> None:
        """Sleep until the next read: ``seconds``, or while batched until the job changes."""
        if not self.batched:
            await asyncio.sleep(seconds)
        else:
            end = time.monotonic() + min(
                max(seconds, deadline - time.time()), max(seconds, FULL_READ_SECONDS)
            )
            while not self._changed and self.batched:
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except TimeoutError:
                    break
        self._changed = False
        self.read_epoch = self.poller.epoch

    def close(self) -> None:
        self.poller.unregister(self)


class SharedPoller:
    """The one list request per poll interval of every :class:`JobWatch` of one client config.

    It lists and reads through a client of its own (same configuration, its own connections), so a
    scan never queues behind the triggers' own reads.
    """

    def __init__(self, config: Any, client: Any = None) -> None:
        self.config = config
        self.client: Any = client  # None: made (and closed) by the scanning task
        self.watches: set[JobWatch] = set()
        self.by_id: dict[str, set[JobWatch]] = {}
        self.watermark: int | None = None  # newest ModifyTime listed so far (unix ns)
        self.established = asyncio.Event()  # set while there is a watermark
        self.epoch = 0  # +1 each time a watermark is set afresh
        self.healthy = True
        self.failures = 0
        self.answered_at = time.monotonic()  # of the last list answer (or of the start)
        self.last_listed = 0
        self.requests = 0  # list requests made, for tests and the benchmark
        self.reads = 0  # job reads made for the triggers
        self._queue: list[tuple[int, int, JobWatch]] = []  # heap: (listed ModifyTime, order, watch)
        self._order = itertools.count()
        self._readers: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None

    def register(self, poll_interval: float) -> JobWatch:
        watch = JobWatch(self, poll_interval)
        self.watches.add(watch)
        return watch

    def start(self) -> None:
        """Run the scans (one per interval) while any watch is registered."""
        if ENABLED and self.watches and (self._task is None or self._task.done()):
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bacalhau-shared-poller")

    def identify(self, watch: JobWatch, job_id: Any) -> None:
        if not isinstance(job_id, str) or not job_id or watch.job_id == job_id:
            return
        if watch.job_id is not None:
            self.by_id.get(watch.job_id, set()).discard(watch)
        watch.job_id = job_id
        self.by_id.setdefault(job_id, set()).add(watch)

    def unregister(self, watch: JobWatch) -> None:
        self.watches.discard(watch)
        if watch.job_id is not None:
            same = self.by_id.get(watch.job_id)
            if same is not None:
                same.discard(watch)
                if not same:
                    del self.by_id[watch.job_id]
        if not self.watches:
            self._stop_readers()
            if self._task is not None:
                self._task.cancel()
                self._task = None

    def _interval(self) -> float:
        interval = min((w.poll_interval for w in self.watches), default=5.0)
        if self.healthy:
            return interval
        backed_off: float = min(MAX_RETRY_SECONDS, interval * 2 ** min(self.failures, 10))
        return backed_off

    async def _run(self) -> None:
        from airflow_provider_bacalhau.client.aio import AsyncBacalhauClient

        loop = asyncio.get_running_loop()
        own = self.client is None
        if own:  # a read retried on connection trouble (e.g. a keep-alive connection the server closed)
            self.client = AsyncBacalhauClient(dataclasses.replace(self.config, max_retries=LIST_RETRIES))
        self.answered_at = time.monotonic()  # an outage is counted from here at the earliest
        try:
            next_scan = loop.time()  # the first scan at once: it sets the watermark
            while self.watches:
                await asyncio.sleep(max(0.0, next_scan - loop.time()))
                next_scan = loop.time() + self._interval()  # one scan per interval, however long it takes
                await self.poll_once()
        finally:
            readers = self._stop_readers()
            await asyncio.gather(*readers, return_exceptions=True)
            self._reset(wake=False)
            if own:
                await self.client.close()
                self.client = None

    async def poll_once(self) -> None:
        """One scan back to the watermark; wakes the watches whose jobs changed. Never raises
        (but when cancelled)."""
        scan = scan_changes(self.watermark, page_limit(self.last_listed))
        started = time.monotonic()
        try:
            query = next(scan)
            while True:
                self.requests += 1
                query = scan.send(await self.client.list_jobs(**query))
        except StopIteration as done:
            found: Scan = done.value
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # noqa: BLE001 - whatever went wrong, the triggers fall back to reads
            self._failed(exc)
            return
        log.debug(
            "Shared job list: %d request(s) in %.3fs, %d job(s) changed, %d watched",
            found.requests,
            time.monotonic() - started,
            len(found.listed),
            len(self.watches),
        )
        self._take(found)

    def _take(self, found: Scan) -> None:
        if not self.healthy:
            log.info("The shared Bacalhau job list answers again: triggers wait on it")
        fresh = self.watermark is None
        self.healthy, self.failures, self.answered_at = True, 0, time.monotonic()
        if not fresh:  # a first page says nothing about how many jobs change per poll
            self.last_listed = len(found.listed)
        for job_id, stamp in found.listed.items():
            for watch in self.by_id.get(job_id, ()):
                if watch.seen is not None and stamp > watch.seen:
                    watch.listed = max(stamp, watch.listed or 0)
                    if watch.batched:
                        self._enqueue(watch)
                    else:  # it polls on its own; the next covered wait returns at once
                        watch.notify(changed=True)
        if not found.complete:  # changes may hide past the pages read: every trigger reads once
            log.warning(
                "The shared Bacalhau job list had more than %d pages of changes; every "
                "watched job is read once",
                MAX_PAGES,
            )
            self._reset(wake=True)
            fresh = True
        if fresh:  # reads from now on are covered by this watermark
            self.epoch += 1
            self.established.set()
        self.watermark = max(self.watermark or 0, found.newest or 0)

    def _enqueue(self, watch: JobWatch) -> None:
        if not watch.queued:
            watch.queued = True
            heapq.heappush(self._queue, (watch.listed or 0, next(self._order), watch))
        loop = asyncio.get_running_loop()
        while len(self._readers) < min(READERS, len(self._queue)):
            reader = loop.create_task(self._read_changed(), name="bacalhau-shared-poller-read")
            self._readers.add(reader)
            reader.add_done_callback(self._readers.discard)

    async def _read_changed(self) -> None:
        """One of the :data:`READERS`: read the queued jobs, oldest change first, for their triggers."""
        while self._queue:
            _, _, watch = heapq.heappop(self._queue)
            watch.queued = False
            if watch not in self.watches or not watch.batched or watch.job_id is None:
                continue  # gone, or it reads on its own now
            reads = watch.reads
            self.reads += 1
            try:
                answer: dict[str, Any] | None = await self.client.get_job(watch.job_id)
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # noqa: BLE001 - the trigger reads it itself and judges the error
                log.debug(
                    "Shared read of Bacalhau job %s failed (%s); its trigger reads it", watch.job_id, exc
                )
                answer = None
            if watch.reads == reads:  # else the trigger read it meanwhile, and that read is newer
                watch.deliver(answer)

    def _stop_readers(self) -> list[asyncio.Task[None]]:
        readers = list(self._readers)
        for reader in readers:
            reader.cancel()
        return readers

    def _failed(self, exc: Exception) -> None:
        """A transient error keeps the watermark (the next scan reads back to it); a lasting one,
        or an answer that cannot be trusted, sends every trigger back to its own polling."""
        from airflow_provider_bacalhau.client.retrying import is_transient

        self.failures += 1
        outage = time.monotonic() - self.answered_at
        if self.healthy and outage < LIST_OUTAGE_SECONDS and is_transient(exc):
            log.info("The shared Bacalhau job list failed (%s); retrying at the next poll", exc)
            return
        if self.healthy:
            log.warning(
                "The shared Bacalhau job list cannot be used (%s); each trigger polls its own "
                "job until it can",
                exc,
            )
        self.healthy = False
        self._reset(wake=True)
        self.established.set()  # nobody waits for a watermark that is not coming

    def _reset(self, wake: bool) -> None:
        self.watermark = None
        self.established.clear()
        for _, _, queued in self._queue:  # not batched any more: each reads on its own
            queued.queued = False
        self._queue.clear()
        for watch in self.watches:
            was_batched = watch.covered
            watch.covered = False
            if wake and was_batched:  # it reads now, then polls on its own
                watch.notify(changed=True)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def shared_poller(config: Any) -> SharedPoller:
    """The poller of one client configuration (server, credentials, namespace) on this loop."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(config)
    if poller is None:
        poller = pollers[config] = SharedPoller(config)
    return poller


async def watch(client: Any, poll_interval: float, deadline: float | None = None) -> JobWatch:
    """Register one trigger's job with the shared poller; ``close()`` the result when done.

    Returns once the poller has a watermark (at most :data:`FIRST_WATERMARK_SECONDS`, and not past
    ``deadline``, unix time), so that the trigger's first read is already covered by the list.

    :param client: the trigger's :class:`~airflow_provider_bacalhau.client.aio.AsyncBacalhauClient`
        (its configuration picks the poller).
    :param poll_interval: the trigger's; the poller lists at the shortest of its triggers'.
    """
    shared = shared_poller(client.config)
    registered = shared.register(poll_interval)
    shared.start()
    timeout = FIRST_WATERMARK_SECONDS
    if deadline is not None:
        timeout = max(0.0, min(timeout, deadline - time.time()))
    await registered.ready(timeout)
    return registered
