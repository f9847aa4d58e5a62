"""The fault suite's chaos thread: kills at random points of a run (benchmarks/fault_suite.py).

Each kill is planned at a random point of the run's progress (the share of its task instances
that are done), drawn from the seed, and done when the run gets there:

- ``worker``: SIGKILL to one running task process (``airflow worker -- <ti id>``, a process of
  the scheduler's session in its own process group); the task's next try must re-attach;
- ``triggerer``: SIGKILL to the triggerer's whole session, then a new triggerer;
- ``scheduler``: SIGTERM to the scheduler process, then SIGKILL to whatever of its session is
  left after 15 s (task processes included, as a host restart would), then a new scheduler;
- ``devstack``: the devstack's API server restarts with its state kept (running executions are
  lost and run again); the fault counters it held are added up first;
- ``s3``: the S3 server stops and starts again on the same port and data, at the first look
  while a ``stage`` task runs, whatever the progress: staging can be over before the run reaches
  the point drawn for it (a CI run ended with its S3 restart undone), so that point only orders it.
"""

from __future__ import annotations

import contextlib
import os
import random
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

KINDS = ("worker", "triggerer", "scheduler", "devstack", "s3")


def session_processes(sid: int) -> dict[int, str]:
    """pid -> command line of every live process in session ``sid`` (from /proc)."""
    found = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
            if int(fields[3]) != sid or fields[0] == "Z":
                continue
            found[int(stat.parent.name)] = (
                (stat.parent / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            )
        except (OSError, IndexError, ValueError):
            continue
    return found


def kill_session(sid: int) -> int:
    """SIGKILL every process of session ``sid``; how many there were."""
    pids = session_processes(sid)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    return len(pids)


@dataclass
class Plan:
    """When each kill happens: a sorted list of (progress, kind)."""

    events: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def draw(cls, counts: dict[str, int], seed: int) -> Plan:
        rng = random.Random(f"chaos/{seed}")
        events = []
        for kind in KINDS:
            for _ in range(counts.get(kind, 0)):
                # S3 restarts while staging runs (early); the rest anywhere before the end.
                low, high = (0.0, 0.05) if kind == "s3" else (0.02, 0.9)
                events.append((rng.uniform(low, high), kind))
        return cls(sorted(events))


class Chaos(threading.Thread):
    """Does :class:`Plan` against a running suite.

    :param plan: the kills and when.
    :param progress: returns (share of task instances done, task ids currently running).
    :param deployment: the ``AirflowDeployment`` (tests/airflow_deployment.py).
    :param restart_devstack: restarts the devstack keeping its state.
    :param restart_s3: stops and starts the S3 server.
    :param log: a print-like function.
    :param seed: for the choice of the worker to kill.
    """

    def __init__(
        self,
        plan: Plan,
        progress: Callable[[], tuple[float, set[str]]],
        deployment: Any,
        restart_devstack: Callable[[], None],
        restart_s3: Callable[[], None],
        log: Callable[[str], None],
        seed: int = 0,
    ) -> None:
        super().__init__(name="fault-suite-chaos", daemon=True)
        self.plan = plan
        self.progress = progress
        self.deployment = deployment
        self.restart_devstack = restart_devstack
        self.restart_s3 = restart_s3
        self.log = log
        self.rng = random.Random(f"victims/{seed}")
        self.done: Counter = Counter()
        self.errors: list[str] = []
        self._halt = threading.Event()

    def stop(self) -> None:
        self._halt.set()
        self.join(timeout=120)

    def run(self) -> None:
        pending = list(self.plan.events)
        while pending and not self._halt.is_set():
            try:
                share, running = self.progress()
            except Exception as exc:  # the API server may be busy: look again
                self.log(f"chaos: progress unknown ({exc})")
                self._halt.wait(2)
                continue
            due = [event for event in pending if event[0] <= share or event[1] == "s3"]
            for event in due:
                kind = event[1]
                if kind == "s3" and "stage" not in running:
                    continue  # during staging only
                try:
                    if self._do(kind):
                        pending.remove(event)
                        self.done[kind] += 1
                except Exception as exc:  # a failed kill is reported, not retried forever
                    pending.remove(event)
                    self.errors.append(f"{kind}: {exc!r}")
                    self.log(f"chaos: {kind} failed: {exc!r}")
                break  # one kill per look: let the run react
            self._halt.wait(self.rng.uniform(0.5, 2.0))
        if pending:
            self.log(f"chaos: not done (the run ended first): {pending}")
        # Components this thread restarted get SIGTERM when their parent *thread* exits
        # (PR_SET_PDEATHSIG, tests/airflow_deployment.py): stay until the run is over.
        self._halt.wait()

    def _do(self, kind: str) -> bool:
        if kind == "worker":
            return self._kill_worker()
        if kind in ("triggerer", "scheduler"):
            self._restart_component(kind)
        elif kind == "devstack":
            self.restart_devstack()
        elif kind == "s3":
            self.restart_s3()
        self.log(f"chaos: {kind} restarted")
        return True

    def _kill_worker(self) -> bool:
        scheduler = self.deployment.components["scheduler"].proc
        # Task processes retitle themselves "airflow worker -- <ti id>"; their supervisors, the
        # LocalExecutor's pool processes, are "airflow worker -- LocalExecutor: ...".
        workers = [
            pid
            for pid, cmd in session_processes(scheduler.pid).items()
            if cmd.startswith("airflow worker -- ") and not cmd.startswith("airflow worker -- LocalExecutor")
        ]
        if not workers:
            return False  # nothing running now: try again at the next look
        victim = self.rng.choice(sorted(workers))
        with contextlib.suppress(ProcessLookupError):
            os.kill(victim, signal.SIGKILL)
        self.log(f"chaos: SIGKILL task process {victim} ({len(workers)} running)")
        return True

    def _restart_component(self, name: str) -> None:
        component = self.deployment.components[name]
        sid = component.proc.pid
        if name == "triggerer":
            component.signal(signal.SIGKILL)
        else:
            # SIGTERM to the scheduler alone (systemd's KillMode=mixed): its LocalExecutor lets
            # running tasks finish. SIGTERM to the whole group would reach every task process,
            # and each task's on_kill would stop its job, as a killed task must (reliability.rst).
            with contextlib.suppress(ProcessLookupError):
                os.kill(sid, signal.SIGTERM)
            with contextlib.suppress(Exception):
                component.proc.wait(timeout=15)
        time.sleep(0.5)
        leftover = kill_session(sid)
        if component.proc is not None:
            with contextlib.suppress(Exception):
                component.proc.wait(timeout=10)
        if leftover:
            self.log(f"chaos: {leftover} process(es) of the old {name} killed")
        self.deployment.start_component(name)
