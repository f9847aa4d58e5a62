"""One list request per poll for every job a triggerer watches, instead of one GET per job.

Every trigger on an event loop registers its job here (:func:`watch`). One :class:`SharedPoller`
per event loop and client configuration (server, credentials, namespace) asks
``GET /api/v1/orchestrator/jobs?labels=airflow-provider-bacalhau=true&order_by=modified_at&reverse=true``
once per poll interval and reads it newest first, only back to the newest ``ModifyTime`` of its
previous scan. The triggers whose jobs changed are woken and make their usual
``GET /jobs/{id}?include=executions`` through :func:`~airflow_provider_bacalhau.waiting.loop.watch_job`,
which stays the one state decision. The others sleep.

v1.9.3 bumps a job's ``ModifyTime`` on every job state change (``updateJobState`` in
``pkg/jobstore/boltdb/store.go``) and sorts the whole labelled list by it before paging
(``getJobs``), so a change made after a scan has a newer ``ModifyTime`` than anything that scan
saw. A job is watched through the list only once the list is known to cover it: its trigger read
it after the current watermark was set, or a complete scan reached back to the ``ModifyTime`` its
trigger read. Until then, and wherever the list cannot answer (a server without the order or the
label selector, an error, a job without the provider's label, a read error being retried), the
trigger polls on its own, as before: :meth:`JobWatch.wait` then is a plain sleep.

The scan itself is sans-IO (:func:`scan_changes`); :class:`SharedPoller` drives it with the
async client.
"""

from __future__ import annotations

import asyncio
import logging
import time
import weakref
from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

log = logging.getLogger(__name__)

#: The label the operators put on every job they submit (a valid Kubernetes label key and value,
#: as the server's ``labels.ParseToRequirements`` needs), and the selector that lists those jobs.
WATCH_LABEL = "airflow-provider-bacalhau"
WATCH_LABEL_VALUE = "true"
WATCH_SELECTOR = f"{WATCH_LABEL}={WATCH_LABEL_VALUE}"
#: Page sizes of one scan: small while few jobs change, large when reading back to a floor.
MIN_PAGE, MAX_PAGE = 20, 1000
#: Pages one scan may read; past them the scan is incomplete and every trigger reads once.
MAX_PAGES = 50
#: A trigger watched through the list still reads its job this often, in case the list misses it.
FULL_READ_SECONDS = 900.0
#: Longest pause between two list attempts while the server cannot answer them.
MAX_RETRY_SECONDS = 300.0
#: Transient list errors in a row that are only retried; one more and every trigger polls itself.
TRANSIENT_FAILURES_KEPT = 2
#: False: every trigger polls on its own (what ``benchmarks/triggers.py`` compares against).
ENABLED = True


class ListUnusable(Exception):
    """The list answer cannot be trusted to show every change (e.g. it is not ordered)."""


@dataclass
class Scan:
    """What one scan found: the newest ``ModifyTime`` listed per job ID, and how far it read."""

    listed: dict[str, int] = field(default_factory=dict)
    newest: int | None = None
    complete: bool = True
    requests: int = 0


def page_limit(floor_scan: bool, last_listed: int) -> int:
    """Large when reading back to a floor; else about twice what changed last time."""
    return MAX_PAGE if floor_scan else max(MIN_PAGE, min(MAX_PAGE, 2 * last_listed + 10))


def scan_changes(stop_at: int | None, limit: int, max_pages: int = MAX_PAGES) -> Generator[dict, dict, Scan]:
    """Read the labelled jobs newest first, back to ``stop_at`` (unix ns, inclusive).

    Yields the query of each list request and takes its answer (``{"Items", "NextToken"}``).
    ``stop_at=None`` reads one page (it only sets a watermark). Raises :class:`ListUnusable` when
    the server does not order the list by ``ModifyTime``, newest first: stopping at a time is then
    unsafe.
    """
    query: dict[str, Any] = {"labels": WATCH_SELECTOR, "order_by": "modified_at", "reverse": "true",
                             "limit": limit}
    scan, previous = Scan(), None
    while True:
        answer = yield query
        scan.requests += 1
        items = answer.get("Items") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ListUnusable(f"the job list answer has no Items list: {str(answer)[:200]}")
        for item in items:
            stamp, job_id = (item.get("ModifyTime"), item.get("ID")) if isinstance(item, dict) else (None, None)
            if not isinstance(stamp, int) or not isinstance(job_id, str):
                raise ListUnusable("a listed job has no ID or no integer ModifyTime")
            if previous is not None and stamp > previous:
                raise ListUnusable("the job list is not ordered by ModifyTime, newest first")
            previous = stamp
            if scan.newest is None:
                scan.newest = stamp
            if stop_at is not None and stamp < stop_at:
                return scan
            scan.listed[job_id] = max(scan.listed.get(job_id, 0), stamp)
        token = answer.get("NextToken")
        if stop_at is None or not token:
            return scan
        if scan.requests >= max_pages:
            scan.complete = False
            return scan
        # The token carries the order and the limit; the label selector is read from the query.
        query = {"labels": WATCH_SELECTOR, "next_token": token}


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
        self._changed = False
        self._wake = asyncio.Event()

    @property
    def batched(self) -> bool:
        """Watched through the shared list (else the trigger polls on its own)."""
        return self.covered and self.listable and self.poller.healthy

    @property
    def listable(self) -> bool:
        return ENABLED and self.labelled and not self.errored and self.seen is not None

    def saw(self, answer: Any) -> None:
        """Record what the trigger's read returned: the job's answer, or the exception raised."""
        if isinstance(answer, BaseException) or not isinstance(answer, dict):
            self.errored = True  # the waiting loop retries on its own schedule
            return
        job = answer.get("Job") if isinstance(answer.get("Job"), dict) else {}
        self.errored = False
        self.poller.identify(self, job.get("ID"))
        stamp = job.get("ModifyTime")
        self.seen = stamp if isinstance(stamp, int) else None
        self.labelled = (job.get("Labels") or {}).get(WATCH_LABEL) == WATCH_LABEL_VALUE
        if self.read_epoch == self.poller.epoch and self.poller.watermark is not None:
            self.covered = True  # read after the watermark was set: later changes are newer than it
        self._changed = self.listed is not None and self.seen is not None and self.listed > self.seen

    def notify(self, changed: bool = False) -> None:
        """Called by the poller: the job changed (read it), or look at the state again."""
        self._changed = self._changed or changed
        self._wake.set()

    async def wait(self, seconds: float, deadline: float) -> None:
        """Sleep until the next read: ``seconds``, or while batched until the job changes."""
        if not self.listable:
            await asyncio.sleep(seconds)
        else:
            start = time.monotonic()
            until_deadline = max(seconds, deadline - time.time())
            while not self._changed:
                if self.batched:
                    end = start + min(until_deadline, max(seconds, FULL_READ_SECONDS))
                else:  # not covered yet: the next scan covers it (and reports a change), so wait longer
                    end = start + min(until_deadline, 2 * seconds if self.poller.healthy else seconds)
                remaining = end - time.monotonic()
                if remaining <= 0:
                    break
                self._wake.clear()
                try:
                    await asyncio.wait_for(self._wake.wait(), remaining)
                except asyncio.TimeoutError:
                    break
        self._changed = False
        self.read_epoch = self.poller.epoch

    def close(self) -> None:
        self.poller.unregister(self)


class SharedPoller:
    """The one list request per poll interval of every :class:`JobWatch` of one client config."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self.watches: set[JobWatch] = set()
        self.by_id: dict[str, set[JobWatch]] = {}
        self.watermark: int | None = None
        self.epoch = 0
        self.healthy = True
        self.failures = 0
        self.last_listed = 0
        self.requests = 0  # list requests made, for tests and the benchmark
        self._task: asyncio.Task | None = None

    def register(self, poll_interval: float) -> JobWatch:
        watch = JobWatch(self, poll_interval)
        self.watches.add(watch)
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run(), name="bacalhau-shared-poller")
        return watch

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
        if not self.watches and self._task is not None:
            self._task.cancel()
            self._task = None

    def _interval(self) -> float:
        interval = min((w.poll_interval for w in self.watches), default=5.0)
        if self.healthy:
            return interval
        return min(MAX_RETRY_SECONDS, interval * 2 ** min(self.failures, 10))

    async def _run(self) -> None:
        while self.watches:
            await asyncio.sleep(self._interval())
            if any(w.listable for w in self.watches):
                await self.poll_once()

    async def poll_once(self) -> None:
        """One scan; wakes the watches whose jobs changed. Never raises (but on cancel)."""
        pending = [w for w in self.watches if w.listable and not w.covered]
        floors = [w.seen for w in pending if w.seen is not None]
        stops = floors + ([self.watermark] if self.watermark is not None else [])
        stop_at = min(stops) if stops else None
        scan = scan_changes(stop_at, page_limit(bool(floors), self.last_listed))
        try:
            query = next(scan)
            while True:
                self.requests += 1
                query = scan.send(await self.client.list_jobs(**query))
        except StopIteration as done:
            found: Scan = done.value
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            self._failed(exc)
            return
        self._take(found, pending)

    def _take(self, found: Scan, pending: list[JobWatch]) -> None:
        if not self.healthy:
            log.info("The shared Bacalhau job list answers again: triggers wait on it")
        self.healthy, self.failures, self.last_listed = True, 0, len(found.listed)
        for job_id, stamp in found.listed.items():
            for watch in self.by_id.get(job_id, ()):
                if watch.seen is None or stamp > watch.seen:
                    watch.listed = max(stamp, watch.listed or 0)
                    watch.notify(changed=True)
        if not found.complete:  # changes may hide past the pages read: every trigger reads once
            log.warning("The shared Bacalhau job list had more than %d pages of changes; every "
                        "watched job is read once", MAX_PAGES)
            self._reset(wake=True)
            self.watermark, self.epoch = found.newest, self.epoch + 1
            return
        if self.watermark is None:
            self.epoch += 1  # a new watermark: reads from now on are covered by it
        self.watermark = max(self.watermark or 0, found.newest or 0)
        for watch in pending:
            if not watch.covered:
                watch.covered = True
                watch.notify()  # it may now sleep until its job changes

    def _failed(self, exc: Exception) -> None:
        """A transient error keeps the watermark (the next scan reads back to it); a lasting one,
        or an answer that cannot be trusted, sends every trigger back to its own polling."""
        from airflow_provider_bacalhau.client.core import is_transient

        self.failures += 1
        if self.healthy and self.failures <= TRANSIENT_FAILURES_KEPT and is_transient(exc):
            log.info("The shared Bacalhau job list failed (%s); retrying at the next poll", exc)
            return
        if self.healthy:
            log.warning("The shared Bacalhau job list cannot be used (%s); each trigger polls its own "
                        "job until it can", exc)
        self.healthy = False
        self._reset(wake=True)

    def _reset(self, wake: bool) -> None:
        self.watermark = None
        for watch in self.watches:
            was_batched = watch.covered
            watch.covered = False
            if wake:  # a covered one reads now; the others look at their plain schedule again
                watch.notify(changed=was_batched)


_POLLERS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[Any, SharedPoller]] = (
    weakref.WeakKeyDictionary()
)


def shared_poller(client: Any) -> SharedPoller:
    """The poller of ``client``'s configuration (server, credentials, namespace) on this loop."""
    pollers = _POLLERS.setdefault(asyncio.get_running_loop(), {})
    poller = pollers.get(client.config)
    if poller is None:
        poller = pollers[client.config] = SharedPoller(client)
    return poller


def watch(client: Any, poll_interval: float) -> JobWatch:
    """Register one trigger's job with the shared poller; ``close()`` the result when done.

    :param client: the trigger's :class:`~airflow_provider_bacalhau.client.aio.AsyncBacalhauClient`
        (its configuration picks the poller; the poller lists through the first one).
    :param poll_interval: the trigger's; the poller lists at the shortest of its triggers'.
    """
    return shared_poller(client).register(poll_interval)
