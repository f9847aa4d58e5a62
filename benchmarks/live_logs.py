"""Delay from a line printed in a container to the same line in the task log, in deferrable mode.

Starts a devstack (real Docker, SeaweedFS), submits ``--jobs`` busybox jobs that each print
``--lines`` lines, one every ``--pause`` seconds, each stamped with ``/proc/uptime`` (the host
kernel's clock, 10 ms steps), and watches them with ``BacalhauJobTrigger(stream_logs=True)``
gathered on one asyncio loop, as the triggerer runs them. Every streamed line is timed when the
trigger logs it. Reported: median, p95 and max over all lines, and over the lines printed after
the job's stream opened (the first lines of a job can only appear once a poll has seen its execution
accepted, so they wait up to one poll interval). Run (a Docker Engine is needed)::

    .venv/bin/python -m airflow_provider_bacalhau.devstack engine -- \\
        .venv/bin/python benchmarks/live_logs.py [--jobs 3] [--lines 30] [--pause 0.5] [--poll-interval 5]
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

LINE = re.compile(r"(?:\[(e-\w+)\] )?stdout \| line (\d+) of (j\d+) ([\d.]+)")


def uptime() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


class Timed(logging.Handler):
    """Times every provider log line, whether it goes through stdlib logging or through structlog
    (Airflow 3 triggers log through structlog)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.lines: list[tuple[float, str]] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append((uptime(), record.getMessage()))

    def __call__(self, _logger: object, _method: str, event_dict: dict) -> dict:
        event, args = str(event_dict.get("event", "")), event_dict.get("positional_args")
        self.lines.append((uptime(), event % args if args else event))
        return event_dict

    def install(self) -> None:
        import structlog

        processors = structlog.get_config()["processors"]
        processors.insert(0, self)
        structlog.configure(processors=processors)
        logger = logging.getLogger("airflow_provider_bacalhau")
        logger.addHandler(self)
        logger.setLevel(logging.INFO)


def job(tag: str, lines: int, pause: float) -> dict:
    script = (
        f'for i in $(seq 1 {lines}); do echo "line $i of {tag} $(cut -d" " -f1 /proc/uptime)"; '
        f"sleep {pause}; done"
    )
    return {
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {"Image": "busybox:1.36", "Entrypoint": ["sh", "-c"], "Parameters": [script]},
                },
            }
        ],
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(share * (len(ordered) - 1)))]


def describe(name: str, values: list[float]) -> str:
    if not values:
        return f"{name}: no lines"
    return (
        f"{name}: n={len(values)} median {statistics.median(values):.3f} s, "
        f"p95 {percentile(values, 0.95):.3f} s, "
        f"max {max(values):.3f} s"
    )


async def watch_all(job_ids: list[str], poll_interval: float) -> list[dict]:
    from airflow_provider_bacalhau.client.aio import close_shared_http_clients
    from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

    async def one(job_id: str) -> dict:
        trigger = BacalhauJobTrigger(
            job_id, poll_interval=poll_interval, deadline=time.time() + 600, stream_logs=True
        )
        return [event.payload async for event in trigger.run()][0]

    try:
        return await asyncio.gather(*(one(j) for j in job_ids))
    finally:
        await close_shared_http_clients()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=3)
    parser.add_argument("--lines", type=int, default=30)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--poll-interval", type=float, default=5.0)
    args = parser.parse_args()

    home = Path(tempfile.mkdtemp(prefix="bench-live-logs-"))
    os.environ.setdefault("AIRFLOW_HOME", str(home / "airflow"))
    os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
    from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
    from airflow_provider_bacalhau.devstack import stack
    from airflow_provider_bacalhau.triggers import job as _trigger  # noqa: F401  (Airflow sets up logging)

    state = stack.up(
        home / "stack", api_port=0, s3_port=0, concurrency=max(2, args.jobs), die_with_parent=True
    )
    try:
        os.environ.update(stack.env_vars(state))
        handler = Timed()
        handler.install()
        with BacalhauClient(ClientConfig(base_url=state.api_url)) as client:
            tags = {
                client.submit_job(job(f"j{n}", args.lines, args.pause))["JobID"]: f"j{n}"
                for n in range(args.jobs)
            }
        started = time.monotonic()
        events = asyncio.run(watch_all(list(tags), args.poll_interval))
        wall = time.monotonic() - started
    finally:
        stack.down(home / "stack", stop_engine=False)
        shutil.rmtree(home, ignore_errors=True)

    statuses = [e["status"] for e in events]
    seen: dict[tuple[str, int], tuple[float, float]] = {}  # (job, line) -> (printed, logged)
    for logged, message in handler.lines:
        match = LINE.fullmatch(message)
        if match:
            key = (match[3], int(match[2]))
            if key in seen:
                print(f"DUPLICATE line {key}", file=sys.stderr)
            seen[key] = (float(match[4]), logged)
    all_delays = [logged - printed for printed, logged in seen.values()]
    # A job's stream opens when its first line is logged (a replay brings the earlier lines at
    # once); the lines printed after that show the streaming delay itself.
    opened = {tag: min(logged for (t, _), (_, logged) in seen.items() if t == tag) for tag, _ in seen}
    live = [logged - printed for (tag, _), (printed, logged) in seen.items() if printed > opened[tag]]
    expected = args.jobs * args.lines
    print(
        f"{args.jobs} jobs x {args.lines} lines every {args.pause} s, poll_interval {args.poll_interval} s: "
        f"events {statuses}, {len(seen)}/{expected} lines streamed, wall {wall:.1f} s"
    )
    print(describe("all lines", all_delays))
    print(describe("lines after the stream opened", live))
    return 0 if len(seen) == expected and set(statuses) == {"success"} else 1


if __name__ == "__main__":
    sys.exit(main())
