"""The held-jobs devstack of ``benchmarks/triggers.py``: an API-only devstack (no Docker) whose
``noop`` executions stay Running until ``POST /benchmark/release {"at", "spread"}``; the k-th
execution to start then ends at ``at + spread * k / concurrency``. Run by the benchmark, in a
process of its own::

    python benchmarks/triggers_devstack.py --port PORT --data-dir DIR --concurrency N [--faults JSON]

``benchmarks/deployment_load.py`` runs it too, with ``--faults`` (devstack/faults.py). Both give it
a :func:`scratch_data_dir`.
"""

from __future__ import annotations

import argparse
import contextlib
import heapq
import itertools
import json
import math
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

RELEASE_PATH = "/benchmark/release"
JOBS_PATH = "/api/v1/orchestrator/jobs"
TMPFS = Path("/dev/shm")


def server_argv(port: int, data_dir: Path, concurrency: int, faults: str = "") -> list[str]:
    """The command that starts this server (the benchmarks run it as a child process)."""
    argv = [sys.executable, str(Path(__file__).resolve()), "--port", str(port), "--data-dir", str(data_dir)]
    return argv + ["--concurrency", str(concurrency), *(["--faults", faults] if faults else [])]


def submit_held_jobs(base_url: str, jobs: int, name_prefix: str) -> list[str]:
    """Submit ``jobs`` noop jobs labelled as the operators label theirs (8 at a time) and wait
    until every one is Running (held); returns their IDs."""
    from concurrent.futures import ThreadPoolExecutor

    from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
    from airflow_provider_bacalhau.spec import Job, NoopEngine, Task
    from airflow_provider_bacalhau.waiting.list_scan import WATCH_LABEL, WATCH_LABEL_VALUE, WATCH_SELECTOR

    labels = {WATCH_LABEL: WATCH_LABEL_VALUE}
    with BacalhauClient(ClientConfig(base_url=base_url)) as client:

        def submit(index: int) -> str:
            job = Job(Task(NoopEngine()), name=f"{name_prefix}-{index}", labels=labels)
            return str(client.submit_job(job)["JobID"])

        with ThreadPoolExecutor(8) as pool:
            job_ids = list(pool.map(submit, range(jobs)))
        while True:
            listed = client.list_jobs(labels=WATCH_SELECTOR)["Items"]
            if sum(j["State"]["StateType"] == "Running" for j in listed) == jobs:
                return job_ids
            time.sleep(1)


@contextlib.contextmanager
def scratch_data_dir() -> Iterator[Path]:
    """A data directory for the held-jobs devstack, on tmpfs where there is one, removed after.

    Each execution makes and removes a directory under it. On this machine's disk (ext4 mounted
    with ``discard``), 100 of those removals a second in one directory of 10,000 stalled the whole
    server: 201 threads waited in ``do_rmdir``, load average 1,549, list requests past 30 s
    (``triggers_devstack_probe.py --disk`` shows it). The benchmarks measure the watching, not the
    disk.
    """
    path = Path(tempfile.mkdtemp(prefix="held-devstack-", dir=TMPFS if TMPFS.is_dir() else None))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


class Ender(threading.Thread):
    """Ends the held executions from this one thread. Each held execution's thread waits on an
    event of its own, set here at its end time or once its job is cancelled: with one event for
    all, 10,000 threads woke at the release and fought over the GIL (load average 1,900 on two
    cores; an earlier run ended 149 of 10,000 jobs in 300 s)."""

    CANCEL_SCAN_SECONDS = 0.5

    def __init__(self, concurrency: int) -> None:
        super().__init__(name="held-executions-ender", daemon=True)
        self.concurrency = concurrency
        self._cond = threading.Condition()
        self._held: list[tuple[float, int, threading.Event, threading.Event]] = []  # a heap by end
        self._schedule: tuple[float, float] | None = None

    def _end_of(self, index: int) -> float:
        if self._schedule is None:
            return math.inf
        at, spread = self._schedule
        return at + spread * (index % self.concurrency) / self.concurrency

    def hold(self, index: int, cancel: threading.Event) -> threading.Event:
        """The event the ``index``-th execution to start waits on."""
        wake = threading.Event()
        with self._cond:
            heapq.heappush(self._held, (self._end_of(index), index, wake, cancel))
            self._cond.notify()
        return wake

    def release(self, at: float, spread: float) -> None:
        with self._cond:
            self._schedule = (at, spread)
            self._held = [(self._end_of(index), index, wake, cancel) for _, index, wake, cancel in self._held]
            heapq.heapify(self._held)
            self._cond.notify()

    def run(self) -> None:
        scanned = time.monotonic()
        with self._cond:
            while True:
                now = time.time()
                while self._held and self._held[0][0] <= now:
                    heapq.heappop(self._held)[2].set()
                if time.monotonic() - scanned >= self.CANCEL_SCAN_SECONDS:
                    scanned = time.monotonic()
                    cancelled = [held for held in self._held if held[3].is_set()]
                    if cancelled:
                        for held in cancelled:
                            held[2].set()
                        self._held = [held for held in self._held if not held[3].is_set()]
                        heapq.heapify(self._held)
                next_end = self._held[0][0] if self._held else math.inf
                self._cond.wait(min(self.CANCEL_SCAN_SECONDS, max(0.0, next_end - now)))


def serve_devstack(args: argparse.Namespace) -> int:
    """The devstack API server, in this process, with noop executions held Running."""
    import uvicorn

    from airflow_provider_bacalhau.devstack import compute, server

    ender = Ender(args.concurrency)
    ender.start()
    started = itertools.count()

    def held_noop(self: Any, request: Any) -> tuple[int, str | None]:
        index = next(started)
        request.on_event(compute.EVENT_RUN, "Running execution")
        request.on_running()
        ender.hold(index, request.cancel).wait()
        if request.cancel.is_set():
            return -1, compute.CANCELLED
        return 0, None

    compute.ComputeNode._run_noop = held_noop  # type: ignore[method-assign]
    # The store in memory: writing store.json of 10,000 jobs after every burst of changes would
    # measure the disk, and the submissions, not the watching.
    memory_store = server.Store
    server.Store = lambda _data_dir: memory_store(None)  # type: ignore[assignment,misc]
    settings = server.ServerSettings(
        data_dir=Path(args.data_dir),
        public_url=f"http://127.0.0.1:{args.port}",
        s3_endpoint="http://127.0.0.1:9",
        concurrency=args.concurrency,
        faults=json.loads(args.faults) if args.faults else None,
    )  # noop jobs never touch S3
    app = server.create_app(settings)

    async def release(body: dict) -> dict:
        ender.release(float(body["at"]), float(body["spread"]))
        return {}

    fastapi_app = app
    while not hasattr(fastapi_app, "add_api_route"):  # the FastAPI app inside the devstack's ASGI wrappers
        fastapi_app = fastapi_app.app
    fastapi_app.add_api_route(RELEASE_PATH, release, methods=["POST"])
    uvicorn.run(
        app,
        host="127.0.0.1",
        port=args.port,
        log_level="warning",
        timeout_keep_alive=server.KEEP_ALIVE_SECONDS,
    )
    return 0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data-dir", required=True)
    parser.add_argument("--concurrency", type=int, required=True)
    parser.add_argument("--faults", default="", help="fault configuration JSON (devstack/faults.py)")
    return serve_devstack(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
