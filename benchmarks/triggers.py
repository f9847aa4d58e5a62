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

Each mode runs in ``triggers_watch.py`` (the trigger loop, one child per N and mode) against
``triggers_devstack.py`` (the held-jobs devstack, a child of that child).

The devstack is a Python server on the same machine: its CPU is reported separately, and when it
is saturated the wall time measures the server, not the trigger.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from triggers_watch import add_run_arguments

HERE = Path(__file__).resolve().parent

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
        "completion: job reads by triggers / by the poller",
        lambda f: "{gets} / {poller_reads}".format(**f["phases"]["completion"]),
    ),
    ("load average (1 min) at the end", lambda f: f["phases"]["all"].get("load_end", "-")),
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
                str(HERE / "triggers_watch.py"),
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
                "--readers",
                str(args.readers),
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
    add_run_arguments(parser)
    return run(parser.parse_args())


if __name__ == "__main__":
    sys.exit(main())
