"""How many Bacalhau jobs one triggerer event loop can watch: N ``BacalhauJobTrigger`` on one loop.

An API-only devstack (no Docker) runs N ``noop`` jobs that stay Running for ``--job-seconds``
(the compute node's ``noop_delay``) with enough concurrency that all run at once. The script
submits them with ``BacalhauClient``, then runs N triggers gathered on ONE asyncio loop (they share
the hook's connection pool) and reports wall time, events by status, this process's CPU time,
HTTP requests, TCP connections, peak RSS, event-loop lag and the devstack server's CPU. Run::

    .venv/bin/python benchmarks/triggers.py [--jobs 1000] [--poll-interval 5] [--job-seconds 30]
        [--max-wall 240]

The devstack is a Python server on the same machine: its CPU is reported separately, and when it
is saturated the wall time measures the server, not the trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
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

SAMPLE_SECONDS = 0.25  # how often the event-loop lag is sampled
CONNECTION_SAMPLE_EVERY = 4  # lag samples per look at open TCP connections and the pool (costly)


def serve_devstack(args: argparse.Namespace) -> int:
    """The devstack API server with a ``noop_delay`` (not a CLI option of ``serve``), in this process."""
    import uvicorn

    from airflow_provider_bacalhau.devstack import server

    real_compute = server.Devstack._real_compute

    def compute_with_delay(self: Any) -> Any:
        node = real_compute(self)
        node.settings = dataclasses.replace(node.settings, noop_delay=args.noop_delay)
        return node

    server.Devstack._real_compute = compute_with_delay  # type: ignore[method-assign]
    settings = server.ServerSettings(
        data_dir=Path(args.data_dir), public_url=f"http://127.0.0.1:{args.port}",
        s3_endpoint="http://127.0.0.1:9", concurrency=args.concurrency)  # noop jobs never touch S3
    uvicorn.run(server.create_app(settings), host="127.0.0.1", port=args.port, log_level="warning")
    return 0


class Probe:
    """Counts requests on the shared httpx pool and samples connections and event-loop lag."""

    def __init__(self, http: Any, api_port: int) -> None:
        import psutil

        self.http, self.api_port = http, api_port
        self.process = psutil.Process()
        self.requests = 0
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

    async def _on_request(self, _request: Any) -> None:
        self.requests += 1

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
            open_now = [c for c in self.process.net_connections(kind="tcp")
                        if c.raddr and c.raddr.port == self.api_port and c.status == "ESTABLISHED"]
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


async def watch_all(job_ids: list[str], args: argparse.Namespace, api_port: int, server_pid: int) -> dict[str, Any]:
    from airflow_provider_bacalhau.client.aio import close_shared_http_clients, shared_http_client
    from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
    from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

    # The pool the triggers will get from the hook: same loop, same config.
    probe = Probe(shared_http_client(await BacalhauHook().async_client_config()), api_port)
    sampler = asyncio.create_task(probe.sample())
    lags: list[float] = []

    async def one(job_id: str) -> list[Any]:
        trigger = BacalhauJobTrigger(job_id, poll_interval=args.poll_interval, deadline=time.time() + 3600)
        events = [e async for e in trigger.run()]
        done = time.time()
        for event in events:
            end = finished_at(event.payload)
            if end is not None:
                lags.append(done - end)
        return events

    cpu0, srv0, wall0 = cpu_seconds(), server_cpu(server_pid), time.perf_counter()
    tasks = [asyncio.create_task(one(job_id)) for job_id in job_ids]
    _done, pending = await asyncio.wait(tasks, timeout=args.max_wall)  # a bound on a slow run
    wall, cpu, srv = time.perf_counter() - wall0, cpu_seconds() - cpu0, server_cpu(server_pid) - srv0
    for task in pending:
        task.cancel()
    await asyncio.gather(*pending, return_exceptions=True)
    results = [task.result() for task in tasks if task not in pending]
    sampler.cancel()
    cpu -= probe.own_cpu
    await close_shared_http_clients()
    events = [e.payload for batch in results for e in batch]
    lags.sort()
    return {
        "wall_s": wall, "unfinished_at_max_wall": len(pending), "cpu_s": cpu, "server_cpu_s": srv, "events": len(events),
        "events_per_trigger_max": max((len(batch) for batch in results), default=0),
        "status": dict(collections.Counter(e["status"] for e in events)),
        "first_non_success": next((e["message"] for e in events if e["status"] != "success"), None),
        "probe_cpu_s": probe.own_cpu, "requests": probe.requests, "responses": {str(k): v for k, v in sorted(probe.responses.items())},
        "tcp_opened": probe.opened, "tcp_distinct_local_ports_sampled": len(probe.local_ports), "tcp_max_open": probe.max_open,
        "pool_max_connections": probe.max_pool, "loop_lag_max_s": probe.max_lag,
        "loop_lag_p95_s": sorted(probe.lags)[int(len(probe.lags) * 0.95)] if probe.lags else None,
        "detect_lag_p50_s": lags[len(lags) // 2] if lags else None,
        "detect_lag_max_s": lags[-1] if lags else None,
    }


class CountWarnings(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.count, self.first = 0, ""

    def emit(self, record: logging.LogRecord) -> None:
        self.count += 1
        self.first = self.first or record.getMessage()[:200]


def run(args: argparse.Namespace) -> int:
    work = Path(tempfile.mkdtemp(prefix="bacalhau-trigger-bench-"))
    os.environ["AIRFLOW_HOME"] = str(work / "airflow")
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow_provider_bacalhau.devstack import procs

    port = procs.free_port()
    concurrency = max(args.jobs, 2)
    argv = [sys.executable, os.path.abspath(__file__), "--serve-devstack", "--port", str(port), "--data-dir",
            str(work / "data"), "--concurrency", str(concurrency), "--noop-delay", str(args.job_seconds)]
    server = procs.spawn(argv, work / "server.log", die_with_parent=True)
    try:
        procs.wait_http_ok(f"http://127.0.0.1:{port}/api/v1/agent/alive", timeout=60, proc=server)
        os.environ["AIRFLOW_CONN_BACALHAU_DEFAULT"] = json.dumps({"conn_type": "bacalhau", "host": "127.0.0.1", "port": port})
        from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
        from airflow_provider_bacalhau.spec import Job, NoopEngine, Task
        from structlog.testing import capture_logs

        warnings = CountWarnings()  # stdlib loggers (httpx...); the trigger logs through structlog
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger().addHandler(warnings)

        submit0 = time.perf_counter()
        with BacalhauClient(ClientConfig(base_url=f"http://127.0.0.1:{port}")) as client:
            job_ids = [client.submit_job(Job(Task(NoopEngine()), name=f"trigger-bench-{i}"))["JobID"]
                       for i in range(args.jobs)]
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
        shutil.rmtree(work, ignore_errors=True)

    problems = [entry for entry in trigger_logs if entry.get("log_level") not in ("debug", "info")]
    figures = {"jobs": args.jobs, "poll_interval_s": args.poll_interval, "job_seconds": args.job_seconds,
               "cores": os.cpu_count(), "submit_s": submit_s, **figures,
               "cpu_pct_of_wall": 100 * figures["cpu_s"] / figures["wall_s"],
               "server_cpu_pct_of_wall": 100 * figures["server_cpu_s"] / figures["wall_s"],
               "cpu_ms_per_request": 1000 * figures["cpu_s"] / max(1, figures["requests"]),
               "peak_rss_delta_mib": (rss1 - rss0) / 1024, "peak_rss_mib": rss1 / 1024,
               "trigger_log_lines": len(trigger_logs), "warnings": warnings.count + len(problems),
               "first_warning": (problems[0]["event"][:200] if problems else warnings.first) or None}
    print_table(figures)
    print(json.dumps({k: round(v, 4) if isinstance(v, float) else v for k, v in figures.items()}))
    ok = figures["status"] == {"success": args.jobs} and figures["events_per_trigger_max"] == 1
    return 0 if ok else 1


def print_table(f: dict[str, Any]) -> None:
    def fmt(value: Any) -> str:
        return f"{value:.3f}" if isinstance(value, float) else str(value)

    rows = [
        ("jobs watched (triggers on one loop)", f["jobs"]),
        ("poll interval s / job runs s", f"{f['poll_interval_s']} / {f['job_seconds']}"),
        ("submit all jobs s (sync client)", f["submit_s"]), ("wall until all events s", f["wall_s"]),
        ("events by status", f["status"]),
        ("triggers unfinished at --max-wall (cancelled)", f["unfinished_at_max_wall"]),
        ("trigger CPU s (user+sys, minus sampling)", f["cpu_s"]),
        ("sampling CPU s (psutil, excluded)", f["probe_cpu_s"]),
        ("trigger CPU % of wall (of 1 core)", f["cpu_pct_of_wall"]), ("HTTP requests / responses", f"{f['requests']} / {f['responses']}"),
        ("trigger CPU ms per request", f["cpu_ms_per_request"]),
        ("TCP conns opened by the shared pool", f["tcp_opened"]),
        ("TCP conns sampled: distinct / max open / pool max",
         f"{f['tcp_distinct_local_ports_sampled']} / {f['tcp_max_open']} / {f['pool_max_connections']}"),
        ("peak RSS delta MiB (peak MiB)", f"{f['peak_rss_delta_mib']:.1f} ({f['peak_rss_mib']:.1f})"),
        ("event-loop lag max / p95 s", f"{fmt(f['loop_lag_max_s'])} / {fmt(f['loop_lag_p95_s'])}"),
        ("job end -> event p50 / max s", f"{fmt(f['detect_lag_p50_s'])} / {fmt(f['detect_lag_max_s'])}"),
        ("devstack server CPU s (% of wall)", f"{f['server_cpu_s']:.2f} ({f['server_cpu_pct_of_wall']:.1f}%)"),
        ("trigger log lines (kept in memory)", f["trigger_log_lines"]),
        ("warnings/errors logged (first)", f"{f['warnings']} ({f['first_warning']})"),
    ]
    width = max(len(name) for name, _ in rows)
    for name, value in rows:
        print(f"{name.ljust(width)}  {fmt(value)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--job-seconds", type=float, default=30.0)
    parser.add_argument("--max-wall", type=float, default=240.0, help="stop waiting for events after this many seconds")
    parser.add_argument("--serve-devstack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--noop-delay", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args()
    return serve_devstack(args) if args.serve_devstack else run(args)


if __name__ == "__main__":
    sys.exit(main())
