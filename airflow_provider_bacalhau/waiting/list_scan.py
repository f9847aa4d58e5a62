"""The sans-IO scan of the shared job list: which watched jobs changed since the last scan.

``GET /api/v1/orchestrator/jobs?labels=airflow-provider-bacalhau=true&order_by=modified_at&reverse=true``
is read newest change first, only back to the newest ``ModifyTime`` of the previous scan (the
watermark). v1.9.3 bumps a job's ``ModifyTime`` on every job state change (``updateJobState`` in
``pkg/jobstore/boltdb/store.go``) and sorts the whole labelled list by it before paging
(``getJobs``), so a change made after a scan is newer than anything that scan saw.
:mod:`.poller` drives :func:`scan_changes` with the async client.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass, field
from typing import Any

#: The label the operators put on every job they submit (a valid Kubernetes label key and value,
#: as the server's ``labels.ParseToRequirements`` needs), and the selector that lists those jobs.
WATCH_LABEL = "airflow-provider-bacalhau"
WATCH_LABEL_VALUE = "true"
WATCH_SELECTOR = f"{WATCH_LABEL}={WATCH_LABEL_VALUE}"
#: Page sizes of one scan: small while few jobs change, larger when many do.
MIN_PAGE, MAX_PAGE = 20, 1000
#: Pages one scan may read; past them the scan is incomplete and every trigger reads once.
MAX_PAGES = 50


class ListUnusable(Exception):
    """The list answer cannot be trusted to show every change (e.g. it is not ordered)."""


@dataclass
class Scan:
    """What one scan found: the newest ``ModifyTime`` listed per job ID, and how far it read."""

    listed: dict[str, int] = field(default_factory=dict)
    newest: int | None = None
    complete: bool = True
    requests: int = 0


def page_limit(last_listed: int) -> int:
    """About twice what changed at the last scan: one request per scan, as a rule."""
    return max(MIN_PAGE, min(MAX_PAGE, 2 * last_listed + 10))


def scan_changes(
    stop_at: int | None, limit: int, max_pages: int = MAX_PAGES
) -> Generator[dict[str, Any], dict[str, Any], Scan]:
    """Read the labelled jobs newest first, back to ``stop_at`` (unix ns, inclusive).

    Yields the query of each list request and takes its answer (``{"Items", "NextToken"}``).
    ``stop_at=None`` reads one page (it only sets a watermark). Raises :class:`ListUnusable` when
    the server does not order the list by ``ModifyTime``, newest first: stopping at a time is then
    unsafe.
    """
    query: dict[str, Any] = {
        "labels": WATCH_SELECTOR,
        "order_by": "modified_at",
        "reverse": "true",
        "limit": limit,
    }
    scan = Scan()
    while True:
        answer = yield query
        scan.requests += 1
        items = answer.get("Items") if isinstance(answer, dict) else None
        if not isinstance(items, list):
            raise ListUnusable(f"the job list answer has no Items list: {str(answer)[:200]}")
        # Ordered within a page. Across pages, jobs changed meanwhile moved to the front and
        # pushed the ones already read into the next page: those come again, newer than the
        # last one read, and are harmless.
        previous = None
        for item in items:
            stamp, job_id = (
                (item.get("ModifyTime"), item.get("ID")) if isinstance(item, dict) else (None, None)
            )
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
