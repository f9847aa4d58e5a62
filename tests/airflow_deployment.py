"""A real Airflow 3 deployment for tests: API server, scheduler, triggerer and dag-processor.

No tests of its own. :class:`AirflowDeployment` starts each component as its own ``airflow``
process (LocalExecutor, SQLite, a private ``AIRFLOW_HOME``), each in its own process group, so a
test can kill or restart one component (the triggerer, the scheduler) and everything it spawned
(task workers are children of the scheduler) without touching the others. ``airflow standalone``
starts the same four, but as children of one supervisor that neither restarts one of them nor
stops them all on SIGTERM (shared/airflow-notes.md). :meth:`AirflowDeployment.stop` signals every
group, always; a deployment started as a context manager is stopped on any exit.

:class:`AirflowAPI` (tests/airflow_api.py) holds the REST calls the tests use, the ones the UI makes.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any, Self

import httpx
from airflow_api import ADMIN, AirflowAPI
from airflow_components import Component

from airflow_provider_bacalhau.devstack.procs import free_port

REPO = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
#: Start order: the API server first (everything else talks to it), the dag-processor next.
COMPONENTS = ("api-server", "dag-processor", "scheduler", "triggerer")


class AirflowDeployment:
    """Airflow's four components under ``home``, on a free API port bound to 127.0.0.1.

    :param home: a fresh directory for ``AIRFLOW_HOME`` (DB, logs, the DAGs folder copy).
    :param dag_sources: DAG files and folders copied into the DAGs folder.
    :param env: extra environment (connections, ``AIRFLOW__...`` settings) for every component.
    :param parallelism: ``[core] parallelism``: task workers at once (each is ~150 MB).
    """

    def __init__(
        self,
        home: Path,
        dag_sources: Iterable[Path],
        env: Mapping[str, str] | None = None,
        parallelism: int = 4,
    ) -> None:
        self.home = home
        self.dags_folder = home / "dags"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.password = secrets.token_urlsafe(12)
        self._dag_sources = list(dag_sources)
        self.env = self._environment(dict(env or {}), parallelism)
        self.components: dict[str, Component] = {}
        self.started_in: float | None = None
        self.peak_rss_mb = 0.0
        self._sampling = False

    def _environment(self, extra: dict[str, str], parallelism: int) -> dict[str, str]:
        passwords = self.home / "passwords.json"
        env = {
            key: value
            for key, value in os.environ.items()
            if not key.startswith(("AIRFLOW__", "AIRFLOW_CONN_", "AIRFLOW_VAR_", "PYTEST_"))
        }
        env.update(
            {
                "AIRFLOW_HOME": str(self.home),
                # Components spawn `airflow` (task workers, the log server) through PATH.
                "PATH": f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}",
                "PYTHONPATH": os.pathsep.join(p for p in (str(REPO), env.get("PYTHONPATH", "")) if p),
                "AIRFLOW__CORE__DAGS_FOLDER": str(self.dags_folder),
                "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
                "AIRFLOW__CORE__EXECUTOR": "LocalExecutor",
                "AIRFLOW__CORE__PARALLELISM": str(parallelism),
                "AIRFLOW__CORE__DAGS_ARE_PAUSED_AT_CREATION": "True",
                "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{self.home / 'airflow.db'}",
                "AIRFLOW__API__HOST": "127.0.0.1",
                "AIRFLOW__API__PORT": str(self.port),
                "AIRFLOW__API__BASE_URL": self.url,
                "AIRFLOW__API__WORKERS": "1",
                # Task workers reach the execution API here; the default is port 8080.
                "AIRFLOW__CORE__EXECUTION_API_SERVER_URL": f"{self.url}/execution/",
                # The default 5 s is too short for one API worker on SQLite on a loaded 2-core machine.
                "AIRFLOW__WORKERS__EXECUTION_API_TIMEOUT": "60",
                # One secret for all: the scheduler signs workers' tokens that the API server checks.
                "AIRFLOW__API_AUTH__JWT_SECRET": secrets.token_urlsafe(32),
                # Airflow 3.0 signs tokens with ``iss`` None unless this is set, and PyJWT 2.15
                # refuses to encode that: every /auth/token and every worker token fails (500).
                "AIRFLOW__API_AUTH__JWT_ISSUER": "airflow-provider-bacalhau-tests",
                # Airflow 3.0 answers 400 to ``xcomEntries?deserialize=true`` without this (3.3 needs
                # no setting); AirflowAPI.xcom reads values that way.
                "AIRFLOW__API__ENABLE_XCOM_DESERIALIZE_SUPPORT": "True",
                "AIRFLOW__API__SECRET_KEY": secrets.token_urlsafe(32),
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_USERS": f"{ADMIN}:admin",
                "AIRFLOW__CORE__SIMPLE_AUTH_MANAGER_PASSWORDS_FILE": str(passwords),
                # Log servers of workers and triggerer: free ports (8793/8794 may be taken).
                "AIRFLOW__LOGGING__WORKER_LOG_SERVER_PORT": str(free_port()),
                "AIRFLOW__LOGGING__TRIGGER_LOG_SERVER_PORT": str(free_port()),
                # New DAG files and runs are picked up in seconds, not minutes.
                "AIRFLOW__DAG_PROCESSOR__REFRESH_INTERVAL": "5",
                "AIRFLOW__DAG_PROCESSOR__MIN_FILE_PROCESS_INTERVAL": "30",
                "AIRFLOW__SCHEDULER__SCHEDULER_IDLE_SLEEP_TIME": "0.5",
                "AIRFLOW__TRIGGERER__CAPACITY": "50",
                "PYTHONWARNINGS": "ignore::DeprecationWarning",
            }
        )
        env.update(extra)
        return env

    # -- life cycle ---------------------------------------------------------------------------

    def start(self, timeout: float = 300.0) -> Self:
        self.home.mkdir(parents=True, exist_ok=True)
        self.dags_folder.mkdir(exist_ok=True)
        for source in self._dag_sources:
            target = self.dags_folder / source.name
            if source.is_dir():
                shutil.copytree(
                    source, target, dirs_exist_ok=True, ignore=shutil.ignore_patterns("__pycache__")
                )
            else:
                shutil.copy2(source, target)
        (self.home / "passwords.json").write_text(json.dumps({ADMIN: self.password}))
        (self.home / "logs").mkdir(exist_ok=True)
        migrate = subprocess.run(
            [str(VENV_BIN / "airflow"), "db", "migrate"],
            check=False,
            env=self.env,
            capture_output=True,
            text=True,
            timeout=180,
        )
        if migrate.returncode != 0:
            raise RuntimeError(
                f"airflow db migrate failed:\n{migrate.stdout[-3000:]}{migrate.stderr[-3000:]}"
            )
        try:
            for name in COMPONENTS:
                self.start_component(name)
            self._start_sampling()
            self.wait_healthy(timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def start_component(self, name: str) -> Component:
        argv = [str(VENV_BIN / "airflow"), name]
        if name == "api-server":
            argv += ["--host", "127.0.0.1", "--port", str(self.port)]
        component = self.components.get(name) or Component(
            name, argv, self.env, self.home / "logs" / f"{name}.out"
        )
        component.start()
        self.components[name] = component
        return component

    def restart_component(self, name: str, *, crash: bool = False) -> Component:
        """Stop (SIGTERM, or SIGKILL with ``crash``) one component and start it again."""
        component = self.components[name]
        component.kill() if crash else component.stop()
        return self.start_component(name)

    def stop(self, timeout: float = 20.0) -> None:
        """SIGTERM to every group at once, SIGKILL to whatever is left after ``timeout``."""
        self._sampling = False
        components = list(self.components.values())
        for component in components:
            component.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        for component in components:
            component.stop(timeout=max(0.0, deadline - time.monotonic()))

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def wait_healthy(self, timeout: float = 300.0) -> dict:
        """Until ``/api/v2/monitor/health`` reports the scheduler, triggerer and dag-processor."""
        deadline = time.monotonic() + timeout
        last: Any = None
        while time.monotonic() < deadline:
            for component in self.components.values():
                if not component.running:
                    raise RuntimeError(f"airflow {component.name} exited:\n{component.log_text()[-4000:]}")
            try:
                last = httpx.get(f"{self.url}/api/v2/monitor/health", timeout=5).json()
                statuses = [
                    last.get(part, {}).get("status")
                    for part in ("metadatabase", "scheduler", "triggerer", "dag_processor")
                ]
                if all(status == "healthy" for status in statuses):
                    return last
            except (httpx.HTTPError, ValueError):
                pass
            time.sleep(1)
        raise TimeoutError(f"Airflow not healthy after {timeout}s: {last}")

    def _start_sampling(self, interval: float = 2.0) -> None:
        """Track :attr:`peak_rss_mb` in a daemon thread until :meth:`stop`."""
        import threading

        self._sampling = True

        def sample() -> None:
            while self._sampling:
                self.peak_rss_mb = max(self.peak_rss_mb, self.rss_mb())
                time.sleep(interval)

        threading.Thread(target=sample, name="airflow-deployment-rss", daemon=True).start()

    def _group_stats(self, names: Iterable[str] | None) -> list[list[str]]:
        """The /proc stat fields (after the command) of every process in the named components'
        process groups (all components when None)."""
        wanted = set(self.components) if names is None else set(names)
        groups = {c.proc.pid for n, c in self.components.items() if n in wanted and c.proc is not None}
        found = []
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
                if int(fields[2]) in groups:
                    found.append(fields)
            except (OSError, IndexError, ValueError):
                continue
        return found

    def rss_mb(self, names: Iterable[str] | None = None) -> float:
        """Resident memory of the named components' processes (default: all), in MB."""
        return sum(int(f[21]) for f in self._group_stats(names)) * os.sysconf("SC_PAGE_SIZE") / 1e6

    def cpu_seconds(self, names: Iterable[str] | None = None) -> float:
        """CPU time (user + system) the named components' live processes have used so far."""
        ticks = sum(int(f[11]) + int(f[12]) for f in self._group_stats(names))
        return ticks / os.sysconf("SC_CLK_TCK")

    def state_mismatches(self) -> int:
        """How often the scheduler failed a task over an executor event it did not expect."""
        return self.components["scheduler"].log_text().count("but the task instance's state attribute is")

    def logs(self) -> str:
        """Every component's output, for failure messages."""
        return "\n".join(f"===== {c.name} =====\n{c.log_text()[-3000:]}" for c in self.components.values())


# -- pytest: one deployment per session, on the session devstack ---------------------------------

try:
    import pytest
except ImportError:  # imported outside pytest (a script using the harness)
    pytest = None  # type: ignore[assignment]

if pytest is not None:

    @pytest.fixture(scope="session")
    def airflow_deployment(devstack, request):
        """Airflow's four components with the examples and tests/deployment_dags as DAGs, the
        devstack's connections and a 1 s poll; deferrable by default, like a tuned deployment."""
        import e2e_helpers as e2e

        e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
        env = {
            **devstack.env(),
            "BACALHAU_EXAMPLES_POLL_INTERVAL": "1",
            "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
            # Airflow 3.3.2's scheduler fails a deferred task whose trigger fires before it has
            # processed the worker's exit from deferral ("state mismatch": apache/airflow#67287,
            # fixed after 3.3.2; the RUNNING variant #72716 is open), and under load it can start
            # one try twice (TaskAlreadyRunningError). Jobs here end in seconds, so both happen;
            # a retry re-attaches to the job by name (no second job) and completes the task.
            # AirflowDeployment.state_mismatches() counts them.
            "AIRFLOW__CORE__DEFAULT_TASK_RETRIES": "3",
            "AIRFLOW__CORE__DEFAULT_TASK_RETRY_DELAY": "1",
        }
        # Not under pytest's basetemp: parallel pytest sessions prune it. Kept when a test failed.
        home = Path(tempfile.mkdtemp(prefix="airflow-deployment-"))
        deployment = AirflowDeployment(
            home, [REPO / "example_dags", Path(__file__).parent / "deployment_dags"], env=env
        )
        started = time.monotonic()
        failed_before = request.session.testsfailed
        with deployment:
            deployment.started_in = time.monotonic() - started
            yield deployment
        mismatches = deployment.state_mismatches()
        if request.session.testsfailed == failed_before:
            shutil.rmtree(home, ignore_errors=True)
        else:
            print(f"\nAirflow deployment kept for inspection: {home}")
        print(
            f"\nAirflow deployment: healthy {deployment.started_in:.0f} s after start, "
            f"peak RSS {deployment.peak_rss_mb:.0f} MB, {mismatches} scheduler "
            "state mismatches (retried)"
        )

    @pytest.fixture(scope="session")
    def airflow_api(airflow_deployment):
        api = AirflowAPI(airflow_deployment)
        try:
            yield api
        finally:
            api.close()
