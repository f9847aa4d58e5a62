"""How many Bacalhau jobs one triggerer event loop can watch: N ``BacalhauJobTrigger`` on one loop.

For each N and each mode, a child process starts an API-only devstack (no Docker) whose ``noop``
jobs stay Running until the benchmark releases them, submits N jobs labelled as the operators
label theirs, and runs N triggers gathered on ONE asyncio loop (they share the hook's connection
pool). The modes, side by side in one run:

- ``old``: every trigger reads its own job every poll (``waiting.poller.ENABLED = False``);
- ``new``: the triggers wait on one shared list request per poll (``waiting/poller.py``) and read
  only the jobs that changed.

Phases: *startup* (every trigger's first read), *steady* (``--steady-seconds`` with all N jobs
Running, after one more poll interval), *completion* (the jobs are released to complete at known
times spread over ``--spread`` seconds; job end -> event latency). Per phase: trigger-process CPU
(% of one core, the sampling's own CPU excluded), HTTP requests, devstack server CPU. Also peak
RSS and event-loop lag. Run::

    .venv/bin/python benchmarks/triggers.py [--jobs 1000 10000] [--modes old new] [--poll-interval 5]

The devstack is a Python server on the same machine: its CPU is reported separately, and when it
is saturated the wall time measures the server, not the trigger.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import itertools
import json
import logging
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

SAMPLE_SECONDS = 0.25  # how often the event-loop lag is sampled
CONNECTION_SAMPLE_EVERY = 4  # lag samples per look at open TCP connections and the pool (costly)
JOBS_PATH = "/api/v1/orchestrator/jobs"
RELEASE_PATH = "/benchmark/release"


def serve_devstack(args: argparse.Namespace) -> int:
    """The devstack API server, in this process, with noop executions held Running until
    ``POST /benchmark/release {"at", "spread"}``: the k-th execution to start then ends at
    ``at + spread * k / count``."""
    import uvicorn

    from airflow_provider_bacalhau.devstack import compute, server

    released = threading.Event()
    schedule: dict[str, float] = {}
    started = itertools.count()

    def held_noop(self: Any, request: Any) -> tuple[int, str | None]:
        index = next(started)
        request.on_event(compute.EVENT_RUN, "Running execution")
        request.on_running()
        released.wait()  # no timeout: 10,000 threads waking up to look would starve the server of the GIL
        end = schedule["at"] + schedule["spread"] * (index % args.concurrency) / args.concurrency
        if request.cancel.wait(max(0.0, end - time.time())):
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
    )  # noop jobs never touch S3
    app = server.create_app(settings)

    async def release(body: dict) -> dict:
        schedule.update(at=float(body["at"]), spread=float(body["spread"]))
        released.set()
        return {}

    fastapi_app = app
    while not hasattr(fastapi_app, "add_api_route"):  # the FastAPI app inside the devstack's ASGI wrappers
        fastapi_app = fastapi_app.app
    fastapi_app.add_api_route(RELEASE_PATH, release, methods=["POST"])
    uvicorn.run(app, host="127.0.0.1", port=args.port, log_level="warning")
    return 0


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

    def mark(name: str) -> None:
        marks[name] = {
            "t": time.perf_counter(),
            "cpu": cpu_seconds() - probe.own_cpu,
            "server": server_cpu(server_pid),
            "gets": probe.gets,
            "lists": lists(),
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
    await asyncio.to_thread(
        httpx.post,
        f"http://127.0.0.1:{api_port}{RELEASE_PATH}",
        json={"at": time.time() + 1, "spread": args.spread},
        timeout=120,
    )  # a busy server
    _done, pending = await asyncio.wait(tasks, timeout=args.max_wall)  # a bound on a slow run
    mark("end")
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
    from airflow_provider_bacalhau.waiting import list_scan, poller

    poller.ENABLED = args.one_mode == "new"
    port = procs.free_port()
    concurrency = max(args.jobs, 2)
    argv = [
        sys.executable,
        os.path.abspath(__file__),
        "--serve-devstack",
        "--port",
        str(port),
        "--data-dir",
        str(work / "data"),
        "--concurrency",
        str(concurrency),
    ]
    server = procs.spawn(argv, work / "server.log", die_with_parent=True)
    try:
        procs.wait_http_ok(f"http://127.0.0.1:{port}/api/v1/agent/alive", timeout=60, proc=server)
        os.environ["AIRFLOW_CONN_BACALHAU_DEFAULT"] = json.dumps(
            {"conn_type": "bacalhau", "host": "127.0.0.1", "port": port}
        )
        from structlog.testing import capture_logs

        from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
        from airflow_provider_bacalhau.spec import Job, NoopEngine, Task

        warnings = CountWarnings()  # stdlib loggers (httpx...); the trigger logs through structlog
        logging.basicConfig(level=logging.WARNING)
        logging.getLogger().addHandler(warnings)

        load_average = os.getloadavg()[0]  # the machine is shared: other load slows every wall time
        submit0 = time.perf_counter()
        labels = {list_scan.WATCH_LABEL: list_scan.WATCH_LABEL_VALUE}  # as the operators label their jobs
        with BacalhauClient(ClientConfig(base_url=f"http://127.0.0.1:{port}")) as client:

            def submit(i: int) -> str:
                return client.submit_job(Job(Task(NoopEngine()), name=f"trigger-bench-{i}", labels=labels))[
                    "JobID"
                ]

            with ThreadPoolExecutor(8) as pool:
                job_ids = list(pool.map(submit, range(args.jobs)))
            while True:  # all of them Running (held) before any trigger starts
                listed = client.list_jobs(labels=list_scan.WATCH_SELECTOR)["Items"]
                if sum(j["State"]["StateType"] == "Running" for j in listed) == args.jobs:
                    break
                time.sleep(1)
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
    if os.environ.get("BENCH_DEBUG"):
        for entry in trigger_logs:
            if "list" in str(entry.get("event")):
                print(entry, file=sys.stderr)
    figures = {
        "mode": args.one_mode,
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


ROWS = [  # (label, how to read it from one mode's figures)
    ("load average (1 min) at the start", lambda f: f["load_average"]),
    ("submit + all Running s", lambda f: f["submit_s"]),
    ("startup: wall s (every trigger's first read)", lambda f: f["phases"]["startup"]["wall_s"]),
    ("startup: trigger CPU % of one core", lambda f: f["phases"]["startup"]["cpu_pct"]),
    ("steady: trigger CPU % of one core", lambda f: f["phases"]["steady"]["cpu_pct"]),
    (
        "steady: trigger CPU ms per poll interval",
        lambda f: (
            1000 * f["phases"]["steady"]["cpu_s"] / (f["phases"]["steady"]["wall_s"] / f["poll_interval_s"])
        ),
    ),
    (
        "steady: trigger CPU ms per job read",
        lambda f: (
            1000 * f["phases"]["steady"]["cpu_s"] / f["phases"]["steady"]["gets"]
            if f["phases"]["steady"]["gets"]
            else "-"
        ),
    ),
    (
        "steady: job reads (GET /jobs/{id}) per s",
        lambda f: f["phases"]["steady"]["gets"] / f["phases"]["steady"]["wall_s"],
    ),
    (
        "steady: list requests per s",
        lambda f: f["phases"]["steady"]["lists"] / f["phases"]["steady"]["wall_s"],
    ),
    ("steady: devstack server CPU %", lambda f: f["phases"]["steady"]["server_cpu_pct"]),
    (
        "completion: wall s / trigger CPU %",
        lambda f: f"{f['phases']['completion']['wall_s']:.1f} / {f['phases']['completion']['cpu_pct']:.1f}",
    ),
    ("completion: devstack server CPU %", lambda f: f["phases"]["completion"]["server_cpu_pct"]),
    (
        "job end -> event p50 / p95 / max s",
        lambda f: " / ".join(
            "-" if f[k] is None else f"{f[k]:.2f}"
            for k in ("detect_lag_p50_s", "detect_lag_p95_s", "detect_lag_max_s")
        ),
    ),
    ("events by status", lambda f: f["status"]),
    ("triggers unfinished at --max-wall", lambda f: f["unfinished_at_max_wall"]),
    (
        "peak RSS MiB (delta while watching)",
        lambda f: f"{f['peak_rss_mib']:.0f} ({f['peak_rss_delta_mib']:.0f})",
    ),
    ("event-loop lag p95 / max s", lambda f: f"{f['loop_lag_p95_s'] or 0:.3f} / {f['loop_lag_max_s']:.3f}"),
    ("TCP conns opened / max open", lambda f: f"{f['tcp_opened']} / {f['tcp_max_open']}"),
    ("warnings/errors logged", lambda f: f"{f['warnings']} ({f['first_warning']})" if f["warnings"] else 0),
]


def print_table(results: list[dict[str, Any]]) -> None:
    def fmt(value: Any) -> str:
        return f"{value:.1f}" if isinstance(value, float) else str(value)

    heads = [f"N={f['jobs']} {f['mode']}" for f in results]
    cells = [[fmt(read(f)) for f in results] for _, read in ROWS]
    width = max(len(label) for label, _ in ROWS)
    widths = [max(len(h), *(len(row[i]) for row in cells)) for i, h in enumerate(heads)]
    print(" | ".join([" " * width, *(h.rjust(w) for h, w in zip(heads, widths, strict=True))]))
    for (label, _), row in zip(ROWS, cells, strict=True):
        print(" | ".join([label.ljust(width), *(c.rjust(w) for c, w in zip(row, widths, strict=True))]))


def run(args: argparse.Namespace) -> int:
    """Each N and mode in its own child process (own RSS, own poller setting), one table."""
    results, ok = [], True
    for jobs in args.jobs:
        for mode in args.modes:
            argv = [
                sys.executable,
                os.path.abspath(__file__),
                "--one-mode",
                mode,
                "--jobs",
                str(jobs),
                "--poll-interval",
                str(args.poll_interval),
                "--steady-seconds",
                str(args.steady_seconds),
                "--spread",
                str(args.spread),
                "--max-wall",
                str(args.max_wall),
            ]
            print(f"==> N={jobs} {mode}", file=sys.stderr, flush=True)
            done = subprocess.run(argv, stdout=subprocess.PIPE, text=True, check=False)
            if done.returncode != 0 or not done.stdout.strip():
                print(f"N={jobs} {mode}: child failed with {done.returncode}", file=sys.stderr)
                ok = False
                continue
            figures = json.loads(done.stdout.strip().splitlines()[-1])
            print(json.dumps(figures), file=sys.stderr, flush=True)
            ok = ok and figures["status"] == {"success": jobs} and figures["events_per_trigger_max"] == 1
            results.append(figures)
    print_table(results)
    return 0 if ok else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, nargs="+", default=[1000])
    parser.add_argument("--modes", nargs="+", choices=("old", "new"), default=["old", "new"])
    parser.add_argument("--poll-interval", type=float, default=5.0)
    parser.add_argument("--steady-seconds", type=float, default=20.0, help="length of the steady window")
    parser.add_argument(
        "--spread", type=float, default=10.0, help="the released jobs end over this many seconds"
    )
    parser.add_argument(
        "--max-wall", type=float, default=240.0, help="stop waiting for events after this many seconds"
    )
    parser.add_argument("--one-mode", choices=("old", "new"), help=argparse.SUPPRESS)
    parser.add_argument("--serve-devstack", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--port", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--data-dir", help=argparse.SUPPRESS)
    parser.add_argument("--concurrency", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.serve_devstack:
        return serve_devstack(args)
    if args.one_mode:
        args.jobs = args.jobs[0]
        return run_mode(args)
    return run(args)


if __name__ == "__main__":
    sys.exit(main())
