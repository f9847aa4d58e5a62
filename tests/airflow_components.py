"""Processes of the real-deployment harness (tests/airflow_deployment.py): each Airflow component
is the leader of its own process group, so one can be signalled, killed or restarted with all it
spawned and nothing else."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path

from airflow_provider_bacalhau.devstack.procs import set_parent_death_signal


class Component:
    """One ``airflow <name>`` process, the leader of its own process group.

    :param name: the ``airflow`` sub-command (``scheduler``, ``triggerer``...).
    :param argv: the full command.
    :param env: its environment.
    :param log_path: where its stdout and stderr go (appended across restarts).
    """

    def __init__(self, name: str, argv: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.argv = argv
        self.env = dict(env)
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        with self.log_path.open("ab") as log:
            # Its own session (a group to signal); SIGTERM if the test process dies without cleaning up.
            self.proc = subprocess.Popen(
                self.argv,
                env=self.env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
                preexec_fn=set_parent_death_signal,
            )  # noqa: PLW1509 (prctl only)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def signal(self, sig: int) -> None:
        """Send ``sig`` to the whole group (the component and every process it spawned)."""
        if self.proc is None:
            return
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.proc.pid, sig)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to the group, SIGKILL to what is left after ``timeout``; reaps the leader."""
        if self.proc is None:
            return
        self.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and group_alive(self.proc.pid):
            self.proc.poll()
            time.sleep(0.2)
        self.signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(timeout=10)

    def kill(self) -> None:
        """A crash: SIGKILL to the group, no chance to clean up."""
        self.signal(signal.SIGKILL)
        if self.proc is not None:
            self.proc.wait(timeout=10)

    def log_text(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


def group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # A zombie leader keeps the group "alive" until reaped: look for any live member.
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[2]) == pgid and fields[0] != "Z":
            return True
    return False
