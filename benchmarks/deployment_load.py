"""Deployment load: ONE real triggerer holds N deferred Bacalhau jobs at once while a share of all
Bacalhau API calls fault (issue 12 §4); plus the worker-slot time of a deferrable job (13 §3).

A real Airflow deployment (tests/airflow_deployment.py, LocalExecutor) runs the DAG in
benchmarks/deployment_load_dags/: N mapped deferrable ``noop`` jobs and a few empty Python tasks.
The devstack (benchmarks/triggers_devstack.py, API-only, faults on every Bacalhau route) holds each
job Running; once all N tasks are deferred the benchmark releases them, ending evenly over
``--spread`` seconds. It writes a JSON of the figures (benchmarks/deployment_load_report.py) and
exits 1 when a task did not succeed. Run::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/deployment_load.py --jobs 1000 \\
        --json /tmp/deployload-1000.json

Sources: a job's end is its ``ModifyTime`` on the devstack (ns); the trigger's event is the task
instance's ``scheduled_dttm``, which Airflow sets when it submits the event (µs); the worker runs
are the task logs' first and last event of each run. The triggerer's RSS and CPU are sampled
from /proc over its process group every second.
"""

from __future__ import annotations

import argparse
import compileall
import contextlib
import json
import re
import sqlite3
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DAGS = HERE / "deployment_load_dags"
for _path in (REPO, REPO / "tests", HERE):  # the harness, siblings
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from deployment_load_report import figures, job_state  # noqa: E402
from fault_suite import mixed_faults  # noqa: E402
from fault_tally import task_instances  # noqa: E402
from triggers_devstack import scratch_data_dir, server_argv  # noqa: E402

DAG_ID = "deployment_load"
RELEASE_RESERVE = 600.0  # seconds of --timeout kept for the completions: release by then at the latest


@dataclass
class Options:
    jobs: int = 50
    empties: int = 10
    poll_interval: float = 5.0
    fault_rate: float = 0.2
    stall: float = 2.0
    seed: int = 1
    spread: float = 0.0  # 0: jobs / 10 s, at least 30 s
    parallelism: int = 4
    timeout: float = 7200.0
    home: Path | None = None
    json_path: Path | None = None

    @property
    def release_spread(self) -> float:
        return self.spread or max(30.0, self.jobs / 10)


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


class Sampler(threading.Thread):
    """Peak RSS and CPU of the triggerer's process group, every ``interval`` s."""

    def __init__(self, deployment: Any, interval: float = 1.0) -> None:
        super().__init__(name="deployload-sampler", daemon=True)
        self.deployment = deployment
        self.interval = interval
        self.peak_rss_mb = 0.0
        self.cpu: list[tuple[float, float]] = []  # (wall, triggerer CPU s)
        self.stopping = threading.Event()

    def run(self) -> None:
        while not self.stopping.is_set():
            with contextlib.suppress(Exception):
                self.peak_rss_mb = max(self.peak_rss_mb, self.deployment.rss_mb(["triggerer"]))
                self.cpu.append((time.time(), self.deployment.cpu_seconds(["triggerer"])))
            self.stopping.wait(self.interval)


def start_devstack(home: Path, options: Options, data_dir: Path) -> tuple[Any, Any]:
    """The held-jobs devstack with the fault rule, and a StackState for its env vars."""
    from airflow_provider_bacalhau.devstack import procs, stack

    port = procs.free_port()
    faults = mixed_faults(options.fault_rate, options.stall, options.seed)
    argv = server_argv(port, data_dir, options.jobs + 10, faults=json.dumps(faults))  # all Running at once
    proc = procs.spawn(argv, home / "devstack.log", die_with_parent=True)
    state = stack.StackState(str(home), port, "http://127.0.0.1:9", proc.pid)
    procs.wait_http_ok(f"{state.api_url}/devstack/v1/jobs", timeout=60, proc=proc)
    return proc, state


def deployment_env(state: Any, options: Options) -> dict[str, str]:
    from airflow_provider_bacalhau.devstack import stack

    many = str(options.jobs + options.empties + 100)
    return {
        **stack.env_vars(state),
        "DEPLOYLOAD_JOBS": str(options.jobs),
        "DEPLOYLOAD_EMPTIES": str(options.empties),
        "DEPLOYLOAD_POLL_INTERVAL": str(options.poll_interval),
        "AIRFLOW__TRIGGERER__CAPACITY": many,  # one triggerer takes every trigger
        "AIRFLOW__CORE__MAX_MAP_LENGTH": many,
        "AIRFLOW__CORE__MAX_ACTIVE_TASKS_PER_DAG": many,
        "AIRFLOW__CORE__DEFAULT_POOL_TASK_SLOT_COUNT": many,
        "AIRFLOW__SCHEDULER__MAX_TIS_PER_QUERY": "64",
    }


def _get(url: str) -> Any:
    import httpx

    resp = httpx.get(url, timeout=60)
    resp.raise_for_status()
    return resp.json()


def _post(url: str, body: dict) -> None:
    import httpx

    httpx.post(url, json=body, timeout=60).raise_for_status()


class Load:
    def __init__(self, options: Options, home: Path) -> None:
        self.options = options
        self.home = home
        self.marks: dict[str, float] = {}

    def run(self) -> dict:
        from airflow_api import AirflowAPI
        from airflow_deployment import AirflowDeployment

        from airflow_provider_bacalhau.devstack import procs

        options = self.options
        with contextlib.ExitStack() as cleanup:
            proc, state = start_devstack(self.home, options, cleanup.enter_context(scratch_data_dir()))
            cleanup.callback(procs.stop_pid, proc.pid)
            deployment = AirflowDeployment(
                self.home / "airflow",
                [DAGS / "deployment_load_dag.py"],
                env=deployment_env(state, options),
                parallelism=options.parallelism,
            )
            deployment.start()
            cleanup.callback(deployment.stop)
            sampler = Sampler(deployment)
            sampler.start()
            cleanup.callback(sampler.stopping.set)
            api = AirflowAPI(deployment)
            cleanup.callback(api.close)
            api.wait_for_dags([DAG_ID], timeout=300)
            api.unpause(DAG_ID)
            self.marks["triggered"] = time.time()
            run_id = api.trigger(DAG_ID)["dag_run_id"]
            log(f"run {run_id}: {options.jobs} jobs, {options.empties} empty tasks; home {self.home}")
            self._wait_all_deferred(api, run_id, state.api_url)
            at = time.time() + 2
            _post(f"{state.api_url}/benchmark/release", {"at": at, "spread": options.release_spread})
            self.marks.update(released=at, release_spread=options.release_spread)
            log(f"released: ends over {options.release_spread:.0f} s from {at:.1f}")
            run = self._wait_run(api, run_id)
            self.marks["run_ended"] = time.time()
            jobs = _get(f"{state.api_url}/devstack/v1/jobs")["Items"]
            faults = _get(f"{state.api_url}/devstack/v1/faults")
            db = self._task_rows(deployment.home / "airflow.db")
            # The devstack keeps its jobs in memory: keep them, so the report can be read again.
            (self.home / "raw.json").write_text(json.dumps({"run": run, "jobs": jobs, "faults": faults}))
            tries = (deployment.home / "logs").glob(f"dag_id={DAG_ID}/**/attempt=*.log")
            logs, trigger_logs = [], []
            for path in tries:
                (logs if re.fullmatch(r"attempt=\d+\.log", path.name) else trigger_logs).append(str(path))
            result = figures(options, self.marks, run, db, jobs, faults, sampler, logs, trigger_logs)
            if run["state"] != "success":
                result["failure_report"] = api.failure_report(DAG_ID, run_id)[-6000:]
            return result

    def _wait_all_deferred(self, api: Any, run_id: str, devstack_url: str) -> None:
        """Until every job task is deferred and every job Running (the peak: all N at once)."""
        deadline = self.marks["triggered"] + self.options.timeout - RELEASE_RESERVE
        last = ""
        while time.time() < deadline:
            with contextlib.suppress(Exception):
                tis = task_instances(api, DAG_ID, run_id)
                deferred = sum(1 for ti in tis if ti["task_id"] == "job" and ti["state"] == "deferred")
                jobs = _get(f"{devstack_url}/devstack/v1/jobs")["Items"]
                running = sum(1 for job in jobs if job_state(job) == "Running")
                line = f"deferred {deferred}/{self.options.jobs}, jobs Running {running}"
                if line != last:
                    log(line)
                    last = line
                if deferred == running == self.options.jobs:
                    self.marks["all_deferred"] = time.time()
                    return
            time.sleep(5)
        log("the jobs were not all deferred in time: released as they are")
        self.marks["all_deferred"] = time.time()

    def _wait_run(self, api: Any, run_id: str) -> dict:
        deadline = self.marks["triggered"] + self.options.timeout
        last = ""
        while time.time() < deadline:
            with contextlib.suppress(Exception):
                run = api.run(DAG_ID, run_id)
                if run["state"] in ("success", "failed"):
                    return run
                states: dict[str, int] = {}
                for ti in task_instances(api, DAG_ID, run_id):
                    states[str(ti["state"])] = states.get(str(ti["state"]), 0) + 1
                line = ", ".join(f"{k} {v}" for k, v in sorted(states.items()))
                if line != last:
                    log(f"tasks: {line}")
                    last = line
            time.sleep(5)
        log(f"the run did not end within {self.options.timeout:.0f} s: figures so far")
        return {"dag_run_id": run_id, "state": "timeout"}

    @staticmethod
    def _task_rows(db_path: Path) -> list[dict]:
        with contextlib.closing(sqlite3.connect(db_path)) as db:
            db.row_factory = sqlite3.Row
            rows = db.execute(
                "SELECT task_id, map_index, state, try_number, scheduled_dttm, queued_dttm, "
                "start_date, end_date FROM task_instance WHERE dag_id = ?",
                (DAG_ID,),
            ).fetchall()
        return [dict(row) for row in rows]


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    d = Options()
    p.add_argument("--jobs", type=int, default=d.jobs, help="deferred Bacalhau jobs at once")
    p.add_argument("--empties", type=int, default=d.empties, help="empty tasks (Airflow's own run cost)")
    p.add_argument("--poll-interval", type=float, default=d.poll_interval)
    p.add_argument("--fault-rate", type=float, default=d.fault_rate, help="share of API calls faulted")
    p.add_argument("--stall", type=float, default=d.stall, help="seconds a stalled call waits")
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--spread", type=float, default=d.spread, help="seconds the ends spread over")
    p.add_argument("--parallelism", type=int, default=d.parallelism, help="task workers at once")
    p.add_argument("--timeout", type=float, default=d.timeout, help="seconds; then the figures so far")
    p.add_argument("--home", type=Path, default=None, help="work directory (default: a new temp dir)")
    p.add_argument("--json", dest="json_path", type=Path, default=None, help="write the figures here")
    return Options(**vars(p.parse_args(argv)))


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    home = options.home or Path(tempfile.mkdtemp(prefix="deployload-"))
    home.mkdir(parents=True, exist_ok=True)
    # As an installed wheel: a source checkout on a PYTHONDONTWRITEBYTECODE machine would compile
    # the provider again in every worker run and count it as the provider's time.
    compileall.compile_dir(str(REPO / "airflow_provider_bacalhau"), quiet=1)
    result = Load(options, home).run()
    result["options"] = {k: str(v) for k, v in asdict(options).items()}
    result["home"] = str(home)
    text = json.dumps(result, indent=2, default=str)
    if options.json_path:
        options.json_path.write_text(text)
    print(text)
    return 0 if result["succeeded"] == options.jobs + options.empties else 1


if __name__ == "__main__":
    sys.exit(main())
