"""The held-jobs devstack alone, without triggers: is it fast enough for ``benchmarks/triggers.py``?

Submits N labelled ``noop`` jobs to ``triggers_devstack.py``, waits until all are Running, then
releases them to end over ``--spread`` seconds. Every second it prints the server's CPU, the time
of one shared-poller list (``limit=20`` and ``limit=1000``) and of one job read, how many of the
1,000 newest jobs have completed, and the server's threads that are not sleeping, by kernel wait
channel (``/proc/PID/task/*/wchan``: ``do_rmdir`` is its scratch directories on disk)::

    .venv/bin/python benchmarks/triggers_devstack_probe.py --jobs 10000 --spread 100 --seconds 60 [--disk]

``--disk`` puts the data dir on disk (a temporary directory) instead of tmpfs.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import os
import sys
import tempfile
import time
from pathlib import Path

from triggers_devstack import JOBS_PATH, RELEASE_PATH, scratch_data_dir, server_argv, submit_held_jobs


def busy_threads(pid: int) -> collections.Counter[str]:
    """The process's threads that are not sleeping (state R or D), by wait channel."""
    found: collections.Counter[str] = collections.Counter()
    for task in Path(f"/proc/{pid}/task").iterdir():
        with contextlib.suppress(OSError):
            stat = (task / "stat").read_text()
            state = stat[stat.rindex(")") + 2]
            if state in "RD":
                found[f"{state}:{(task / 'wchan').read_text() or '-'}"] += 1
    return found


def probe(args: argparse.Namespace, data_dir: Path) -> None:
    import httpx
    import psutil

    from airflow_provider_bacalhau.devstack import procs
    from airflow_provider_bacalhau.waiting.list_scan import WATCH_SELECTOR

    port = procs.free_port()
    base = f"http://127.0.0.1:{port}"
    server = procs.spawn(
        server_argv(port, data_dir, max(args.jobs, 2)), data_dir / "server.log", die_with_parent=True
    )
    try:
        procs.wait_http_ok(f"{base}/api/v1/agent/alive", timeout=60, proc=server)
        process = psutil.Process(server.pid)
        started = time.time()
        ids = submit_held_jobs(base, args.jobs, "probe")
        print(
            f"submitted and Running in {time.time() - started:.1f} s; {process.num_threads()} threads",
            flush=True,
        )
        with httpx.Client(base_url=base, timeout=600) as http:

            def timed(path: str, **params: object) -> tuple[float, httpx.Response]:
                begin = time.perf_counter()
                answer = http.get(path, params=params)
                return time.perf_counter() - begin, answer

            query = {"labels": WATCH_SELECTOR, "order_by": "modified_at", "reverse": "true"}
            http.post(RELEASE_PATH, json={"at": time.time() + 1, "spread": args.spread})
            end = time.time() + args.seconds
            while time.time() < end:
                cpu0, wall0 = sum(process.cpu_times()[:2]), time.time()
                small, _ = timed(JOBS_PATH, **query, limit=20)
                large, page = timed(JOBS_PATH, **query, limit=1000)
                read, _ = timed(f"{JOBS_PATH}/{ids[len(ids) // 2]}", include="executions")
                time.sleep(max(0.0, 1 - (time.time() - wall0)))
                cpu = 100 * (sum(process.cpu_times()[:2]) - cpu0) / (time.time() - wall0)
                ended = sum(j["State"]["StateType"] == "Completed" for j in page.json()["Items"])
                busy = dict(busy_threads(server.pid).most_common(3))
                print(
                    f"t={time.time() - started:6.1f} server CPU {cpu:4.0f}% | list20 {small * 1e3:6.0f} ms "
                    f"list1000 {large * 1e3:6.0f} ms read {read * 1e3:6.0f} ms | completed of newest 1000: "
                    f"{ended:4d} | load {os.getloadavg()[0]:5.0f} | busy threads {busy}",
                    flush=True,
                )
    finally:
        procs.stop_pid(server.pid)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--jobs", type=int, default=10000)
    parser.add_argument("--spread", type=float, default=100.0, help="the released jobs end over this many s")
    parser.add_argument("--seconds", type=float, default=60.0, help="how long to watch after the release")
    parser.add_argument("--disk", action="store_true", help="data dir on disk, not on tmpfs")
    args = parser.parse_args()
    with contextlib.ExitStack() as cleanup:
        if args.disk:
            data_dir = Path(cleanup.enter_context(tempfile.TemporaryDirectory(prefix="held-devstack-disk-")))
        else:
            data_dir = cleanup.enter_context(scratch_data_dir())
        probe(args, data_dir)
    return 0


if __name__ == "__main__":
    sys.exit(main())
