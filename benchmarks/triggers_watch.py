"""One mode and one N of ``benchmarks/triggers.py``, in a process of its own: start the held-jobs
devstack (``triggers_devstack.py``), submit N labelled noop jobs, run N ``BacalhauJobTrigger`` on ONE
asyncio loop through startup, steady and completion, and print one JSON line of figures::

    python benchmarks/triggers_watch.py --one-mode new --jobs 1000 [--poll-interval 5] ...

With ``BENCH_PROFILE=FILE`` in the environment, the completion phase runs under cProfile (CPU time) and its
stats go to FILE (``python -m pstats FILE``).
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import contextlib
import json
import logging
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from triggers_devstack import JOBS_PATH, RELEASE_PATH, scratch_data_dir, server_argv, submit_held_jobs

SAMPLE_SECONDS = 0.25  # how often the event-loop lag is sampled
CONNECTION_SAMPLE_EVERY = 4  # lag samples per look at open TCP connections and the pool (costly)


class Probe:
    """Counts requests on the shared httpx pool and samples connections and event-loop lag."""

    def __init__(self, http: Any, api_port: int) -> None:
        import psutil

        self.http, self.api_port = http, api_port
        self.process = psutil.Process()
        self.gets = 0  # GET /jobs/{id}
        self.lists = 0  # GET /jobs (the shared list)
        self.responses: collections.Counter[int] = collections.Counter()
        self.local_ports: set[int] = set()
        self.max_open = 0
        self.max_pool = 0
        self.max_lag = 0.0
        self.lags: list[float] = []
        self.own_cpu = 0.0  # CPU of the sampling itself, subtracted from the trigger figures
        http.event_hooks = {"request": [self._on_request], "response": [self._on_response]}
        self.opened = 0  # TCP connections the pool opened (exact, unlike sampling)
        try:  # httpx private attributes: only figures for the report
            pool = http._transport._pool
            create = pool.create_connection

            def counted(origin: Any) -> Any:
                self.opened += 1
                return create(origin)

            pool.create_connection = counted
        except AttributeError:
            self.opened = -1

    async def _on_request(self, request: Any) -> None:
        if request.url.path == JOBS_PATH:
            self.lists += 1
        else:
            self.gets += 1

    async def _on_response(self, response: Any) -> None:
        self.responses[response.status_code] += 1

    def _pool_size(self) -> int:
        try:  # httpx private attributes: only a figure for the report
            return len(self.http._transport._pool.connections)
        except AttributeError:
            return -1

    async def sample(self) -> None:
        rounds = 0
        while True:
            rounds += 1
            started = time.perf_counter()
            await asyncio.sleep(SAMPLE_SECONDS)
            lag = time.perf_counter() - started - SAMPLE_SECONDS
            self.lags.append(lag)
            self.max_lag = max(self.max_lag, lag)
            if rounds % CONNECTION_SAMPLE_EVERY:
                continue
            cpu0 = time.thread_time()
            open_now = [
                c
                for c in self.process.net_connections(kind="tcp")
                if c.raddr and c.raddr.port == self.api_port and c.status == "ESTABLISHED"
            ]
            self.local_ports.update(c.laddr.port for c in open_now)
            self.max_open = max(self.max_open, len(open_now))
            self.max_pool = max(self.max_pool, self._pool_size())
            self.own_cpu += time.thread_time() - cpu0


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def server_cpu(pid: int) -> float:
    import psutil

    times = psutil.Process(pid).cpu_times()
    return times.user + times.system


def finished_at(event: dict) -> float | None:
    """Unix time of the job's last execution change (ModifyTime, ns), if the event carries it."""
    items = ((event.get("job") or {}).get("Executions") or {}).get("Items") or []
    stamps = [item.get("ModifyTime") for item in items if isinstance(item, dict)]
    stamps = [s for s in stamps if isinstance(s, (int, float))]
    return max(stamps) / 1e9 if stamps else None


def percentile(values: list[float], fraction: float) -> float | None:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] if ordered else None


async def watch_all(
    job_ids: list[str], args: argparse.Namespace, api_port: int, server_pid: int
) -> dict[str, Any]:
    import httpx

    from airflow_provider_bacalhau.client.aio import (
        close_shared_http_clients,
        shared_http_client,
    )
    from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
    from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

    # The pool the triggers will get from the hook: same loop, same config.
    probe = Probe(shared_http_client(await BacalhauHook().async_client_config()), api_port)
    sampler = asyncio.create_task(probe.sample())
    lags: list[float] = []
    marks: dict[str, dict[str, float]] = {}

    def lists() -> int:  # the shared poller lists through a client of its own
        from airflow_provider_bacalhau.waiting import poller

        return probe.lists + sum(
            p.requests for p in poller._POLLERS.get(asyncio.get_running_loop(), {}).values()
        )

    def poller_reads() -> int:  # the job reads the shared poller made for the triggers
        from airflow_provider_bacalhau.waiting import poller

        return sum(p.reads for p in poller._POLLERS.get(asyncio.get_running_loop(), {}).values())

    def mark(name: str) -> None:
        marks[name] = {
            "t": time.perf_counter(),
            "cpu": cpu_seconds() - probe.own_cpu,
            "server": server_cpu(server_pid),
            "gets": probe.gets,
            "lists": lists(),
            "poller_reads": poller_reads(),
            "load": os.getloadavg()[0],
        }

    async def one(job_id: str) -> list[Any]:
        trigger = BacalhauJobTrigger(job_id, poll_interval=args.poll_interval, deadline=time.time() + 3600)
        events = [e async for e in trigger.run()]
        done = time.time()
        for event in events:
            end = finished_at(event.payload)
            if end is not None:
                lags.append(done - end)
        return events

    mark("start")
    tasks = [asyncio.create_task(one(job_id)) for job_id in job_ids]
    while probe.gets < len(job_ids):  # every trigger has asked once
        await asyncio.sleep(0.05)
    mark("started")
    await asyncio.sleep(args.poll_interval)  # the second round (old) or the list's cover (new)
    mark("steady")
    await asyncio.sleep(args.steady_seconds)
    mark("release")
    profiler = None
    if os.environ.get("BENCH_PROFILE"):  # cProfile of the completion phase, to that file
        import cProfile

        profiler = cProfile.Profile(time.process_time)  # CPU, not the waits
        profiler.enable()
    await asyncio.to_thread(
        httpx.post,
        f"http://127.0.0.1:{api_port}{RELEASE_PATH}",
        json={"at": time.time() + 1, "spread": args.spread},
        timeout=120,
    )  # a busy server
    _done, pending = await asyncio.wait(tasks, timeout=args.max_wall)  # a bound on a slow run
    mark("end")
    if profiler is not None:
        profiler.disable()
        profiler.dump_stats(os.environ["BENCH_PROFILE"])
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    results = [task.result() for task in tasks if task not in pending]
    sampler.cancel()
    await close_shared_http_clients()
    events = [e.payload for batch in results for e in batch]

    def phase(first: str, last: str) -> dict[str, float]:
        a, b = marks[first], marks[last]
        wall = b["t"] - a["t"]
        return {
            "wall_s": wall,
            "cpu_pct": 100 * (b["cpu"] - a["cpu"]) / wall,
            "cpu_s": b["cpu"] - a["cpu"],
            "server_cpu_pct": 100 * (b["server"] - a["server"]) / wall,
            "gets": b["gets"] - a["gets"],
            "lists": b["lists"] - a["lists"],
            "poller_reads": b["poller_reads"] - a["poller_reads"],
            "load_end": b["load"],
        }

    return {
        "phases": {
            "startup": phase("start", "started"),
            "steady": phase("steady", "release"),
            "completion": phase("release", "end"),
            "all": phase("start", "end"),
        },
        "unfinished_at_max_wall": len(pending),
        "events": len(events),
        "events_per_trigger_max": max((len(batch) for batch in results), default=0),
        "status": dict(collections.Counter(e["status"] for e in events)),
        "first_non_success": next((e["message"] for e in events if e["status"] != "success"), None),
        "probe_cpu_s": probe.own_cpu,
        "responses": {str(k): v for k, v in sorted(probe.responses.items())},
        "tcp_opened": probe.opened,
        "tcp_max_open": probe.max_open,
        "pool_max_connections": probe.max_pool,
        "loop_lag_max_s": probe.max_lag,
        "loop_lag_p95_s": percentile(probe.lags, 0.95),
        "detect_lag_p50_s": percentile(lags, 0.5),
        "detect_lag_p95_s": percentile(lags, 0.95),
        "detect_lag_max_s": max(lags) if lags else None,
    }


class CountWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count, self.first = 0, ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.first = self.first or record.getMessage()[:200]


def run_mode(args: argparse.Namespace) -> int:
    """One mode and one N, in this process; prints one JSON line of figures."""
    work = Path(tempfile.mkdtemp(prefix="bacalhau-trigger-bench-"))
    os.environ["AIRFLOW_HOME"] = str(work / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow_provider_bacalhau.devstack import procs
    from airflow_provider_bacalhau.waiting import poller

    poller.ENABLED = args.one_mode == "new"
    if args.readers:
        poller.READERS = args.readers
    port = procs.free_port()
    concurrency = max(args.jobs, 2)
    scratch = contextlib.ExitStack()
    argv = server_argv(port, scratch.enter_context(scratch_data_dir()), concurrency)
    server = procs.spawn(argv, work / "server.log", die_with_parent=True)
    try:
        procs.wait_http_ok(f"http://127.0.0.1:{port}/api/v1/agent/alive", timeout=60, proc=server)
        os.environ["AIRFLOW_CONN_BACALHAU_DEFAULT"] = json.dumps(
            {"conn_type": "bacalhau", "host": "127.0.0.1", "port": port}
        )
        from structlog.testing import capture_logs

        warnings = CountWarnings()  # stdlib loggers (httpx...); the trigger logs through structlog
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger().addHandler(warnings)

        load_average = os.getloadavg()[0]  # the machine is shared: other load slows every wall time
        submit0 = time.perf_counter()
        job_ids = submit_held_jobs(f"http://127.0.0.1:{port}", args.jobs, "trigger-bench")
        submit_s = time.perf_counter() - submit0

        # Import (and let Airflow set up logging) before measuring: a triggerer has done so already.
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook  # noqa: F401
        from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

        BacalhauJobTrigger("warm-up").log.debug("warm-up")
        rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        # The triggers' structlog lines are kept in memory, not printed (a real triggerer writes
        # them to per-trigger log files): the figures include making them, not writing them.
        with capture_logs() as trigger_logs:
            figures = asyncio.run(watch_all(job_ids, args, port, server.pid))
        rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    finally:
        procs.stop_pid(server.pid)
        scratch.close()
        shutil.rmtree(work, ignore_errors=True)

    problems = [entry for entry in trigger_logs if entry.get("log_level") not in ("debug", "info")]
    if os.environ.get("BENCH_DEBUG"):
        for entry in trigger_logs:
            if "list" in str(entry.get("event")):
                print(entry, file=sys.stderr)
    figures = {
        "mode": args.one_mode,
        "readers": poller.READERS,
        "jobs": args.jobs,
        "load_average": load_average,
        "poll_interval_s": args.poll_interval,
        "cores": os.cpu_count(),
        "submit_s": submit_s,
        **figures,
        "peak_rss_delta_mib": (rss1 - rss0) / 1024,
        "peak_rss_mib": rss1 / 1024,
        "trigger_log_lines": len(trigger_logs),
        "warnings": warnings.count + len(problems),
        "first_warning": (problems[0]["event"][:200] if problems else warnings.first) or None,
    }
    print(json.dumps(figures, default=str))
    return 0


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The arguments each mode's child takes too (``triggers_watch.py``)."""
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0, help="length of the steady window")
    parser.add_argument(
        "--spread", type=float, default=10.0, help="the released jobs end over this many seconds"
    )
    parser.add_argument(
        "--max-wall", type=float, default=240.0, help="stop waiting for events after this many seconds"
    )
    parser.add_argument("--readers", type=int, default=0, help="the poller's concurrent reads (0: its own)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--one-mode", choices=("old", "new"), required=True)
    parser.add_argument("--jobs", type=int, required=True)
    add_run_arguments(parser)
    return run_mode(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
