"""The fault and crash suite: a real Airflow deployment runs chains of Bacalhau jobs while the
devstack faults a share of all API calls and a chaos thread kills workers, the triggerer, the
scheduler, the devstack and the S3 server. Prints the tally (benchmarks/fault_tally.py); exits 1
when a goal fails (every task succeeds, no duplicate job, no lost result, no orphan). Run::

    PYTHONPATH=$PWD .venv/bin/python -m airflow_provider_bacalhau.devstack engine -- \\
        .venv/bin/python benchmarks/fault_suite.py --jobs 200 --own-engine

``--jobs`` Bacalhau jobs make ``--jobs / 2`` chains (stage -> job A -> job B; the DAG is
tests/fault_dags/fault_suite_dag.py), half of them deferred. Everything runs on its own: a
SeaweedFS S3 server, a devstack and an Airflow deployment (tests/airflow_deployment.py) under a
fresh home; with ``--own-engine`` also a private Docker Engine, so no other run on the machine
can stop the engine under this one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
FAULT_DAGS = REPO / "tests" / "fault_dags"
for _path in (REPO, REPO / "tests", FAULT_DAGS, HERE):  # the harness, the DAG's content, siblings
    if str(_path) not in sys.path:
        sys.path.insert(0, str(_path))

from fault_chaos import Chaos, Plan  # noqa: E402
from fault_tally import Tally, add_faults, tally_jobs, tally_tasks, task_instances, verify_results  # noqa: E402

DAG_ID = "fault_suite"
BUCKET = "fault-suite"
DONE_STATES = ("success", "failed", "upstream_failed", "skipped", "removed")


@dataclass
class Options:
    jobs: int = 200
    seed: int = 1
    fault_rate: float = 0.2
    stall: float = 2.0
    worker_kills: int = 20
    triggerer_kills: int = 3
    scheduler_restarts: int = 1
    devstack_restarts: int = 2
    s3_restarts: int = 1
    own_engine: bool = False
    parallelism: int = 4
    timeout: float = 3600.0
    home: Path | None = None
    keep: bool = False

    @property
    def chains(self) -> int:
        return max(1, self.jobs // 2)

    def kills(self) -> dict[str, int]:
        return {
            "worker": self.worker_kills,
            "triggerer": self.triggerer_kills,
            "scheduler": self.scheduler_restarts,
            "devstack": self.devstack_restarts,
            "s3": self.s3_restarts,
        }

    def fault_config(self) -> dict[str, Any]:
        return mixed_faults(self.fault_rate, self.stall, self.seed)


def mixed_faults(rate: float, stall: float, seed: int) -> dict[str, Any]:
    """One rule for every Bacalhau route: ``rate`` split evenly over the four kinds of fault."""
    share = rate / 4
    rule = {
        "error_rate": share,
        "status": 503,
        "drop_rate": share,
        "drop_after_rate": share,
        "stall_rate": share,
        "stall": stall,
    }
    return {"seed": seed, "routes": {"*": rule}}


def log(message: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {message}", flush=True)


@contextlib.contextmanager
def docker_engine(home: Path, own: bool) -> Iterator[Path | None]:
    """The engine home to pass to the devstack: a private dockerd under ``home`` with ``own``."""
    from airflow_provider_bacalhau.devstack import engine

    if not own:
        yield None
        return
    engine_home = home / "engine"
    saved = os.environ.pop("DOCKER_HOST", None)  # else ensure_engine would take the shared one
    try:
        engine.ensure_busybox_image(engine.ensure_engine(engine_home))
        yield engine_home
    finally:
        engine.stop_engine(engine_home)
        if saved is not None:
            os.environ["DOCKER_HOST"] = saved


def deployment_env(devstack_env: dict[str, str]) -> dict[str, str]:
    return {
        **devstack_env,
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": "True",
        "FAULT_SUITE_POLL_INTERVAL": "1",
        # A killed triggerer's triggers move to the new one within seconds, not 30 s.
        "AIRFLOW__TRIGGERER__JOB_HEARTBEAT_SEC": "2",
        "AIRFLOW__SCHEDULER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        "AIRFLOW__TRIGGERER__TRIGGERER_HEALTH_CHECK_THRESHOLD": "10",
        # Tasks of a killed scheduler are found dead after 60 s, not 300 s.
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT": "60",
        "AIRFLOW__SCHEDULER__TASK_INSTANCE_HEARTBEAT_TIMEOUT_DETECTION_INTERVAL": "5",
        "AIRFLOW__CORE__MAX_MAP_LENGTH": "10000",
    }


class Suite:
    """One run of the suite under ``home``; :meth:`run` returns its :class:`Tally`."""

    def __init__(self, options: Options, home: Path) -> None:
        self.options = options
        self.home = home
        self.fault_totals: Counter = Counter()
        self.s3: Any = None
        self.state: Any = None
        self.api: Any = None
        self.run_id = ""

    # -- the parts chaos restarts ------------------------------------------------------------
    def restart_devstack(self) -> None:
        from airflow_provider_bacalhau.devstack import stack

        add_faults(self.fault_totals, stack.admin_request(self.state, "GET", "/devstack/v1/faults"))
        stack.restart(self.state)

    def restart_s3(self) -> None:
        self.s3.stop()
        time.sleep(1)
        self.s3.start()

    def progress(self) -> tuple[float, set[str]]:
        tis = task_instances(self.api, DAG_ID, self.run_id)
        done = sum(1 for ti in tis if ti["state"] in DONE_STATES)
        running = {ti["task_id"] for ti in tis if ti["state"] == "running"}
        return done / (3 * self.options.chains + 4), running

    # -- the run -----------------------------------------------------------------------------
    def run(self) -> Tally:
        from airflow_api import AirflowAPI
        from airflow_deployment import AirflowDeployment

        from airflow_provider_bacalhau.devstack import procs, s3server, stack

        options = self.options
        with contextlib.ExitStack() as cleanup, docker_engine(self.home, options.own_engine) as engine_home:
            self.s3 = s3server.SeaweedServer(self.home / "s3", log_path=self.home / "s3.log").start()
            cleanup.callback(self.s3.stop)
            self.state = stack.up(
                self.home / "devstack",
                api_port=0,
                s3_endpoint=self.s3.endpoint,
                engine_home=engine_home,
                faults=json.dumps(options.fault_config()),
                concurrency=4,
            )
            cleanup.callback(stack.down, self.home / "devstack", stop_engine=False)
            procs.s3_client(self.s3.endpoint).create_bucket(Bucket=BUCKET)
            deployment = AirflowDeployment(
                self.home / "airflow",
                sorted(FAULT_DAGS.glob("*.py")),
                env=deployment_env(stack.env_vars(self.state)),
                parallelism=options.parallelism,
            )
            started = time.monotonic()
            deployment.start()
            cleanup.callback(deployment.stop)
            log(f"Airflow healthy in {time.monotonic() - started:.0f} s; home {self.home}")
            self.api = AirflowAPI(deployment)
            cleanup.callback(self.api.close)
            self.api.wait_for_dags([DAG_ID], timeout=300)
            self.api.unpause(DAG_ID)
            conf = {
                "chains": options.chains,
                "seed": options.seed,
                "bucket": BUCKET,
                "data_dir": str(self.home / "inputs"),
            }
            started = time.monotonic()
            self.run_id = self.api.trigger(DAG_ID, conf)["dag_run_id"]
            chaos = Chaos(
                Plan.draw(options.kills(), options.seed),
                self.progress,
                deployment,
                self.restart_devstack,
                self.restart_s3,
                log,
                options.seed,
            )
            chaos.start()
            log(f"run {self.run_id}: {options.chains} chains, {options.jobs} jobs; chaos {options.kills()}")
            try:
                run = self._wait(deployment, started)
            finally:
                chaos.stop()
            tally = self._tally(time.monotonic() - started, chaos)
            log(f"run ended {run['state']}; chaos errors: {chaos.errors or 'none'}")
            if tally.failed_goals():
                print(self.api.failure_report(DAG_ID, self.run_id)[-6000:])
            return tally

    def _wait(self, deployment: Any, started: float) -> dict:
        deadline = started + self.options.timeout
        last = ""
        while time.monotonic() < deadline:
            try:
                run = self.api.run(DAG_ID, self.run_id)
                if run["state"] in ("success", "failed"):
                    return run
                states = Counter(ti["state"] for ti in task_instances(self.api, DAG_ID, self.run_id))
                line = ", ".join(f"{k} {v}" for k, v in sorted(states.items(), key=lambda kv: str(kv[0])))
                if line != last:
                    log(f"tasks: {line}")
                    last = line
            except Exception as exc:  # the API server restarts with nothing; SQLite can be busy
                log(f"waiting: {exc!r}"[:300])
            time.sleep(5)
        raise TimeoutError(f"the run did not end within {self.options.timeout:.0f} s")

    def _tally(self, wall: float, chaos: Chaos) -> Tally:
        from airflow_provider_bacalhau.devstack import procs, stack

        tally = Tally(wall_seconds=wall, expected_tasks=3 * self.options.chains + 4)
        tally_tasks(tally, task_instances(self.api, DAG_ID, self.run_id))
        jobs = stack.admin_request(self.state, "GET", "/devstack/v1/jobs")["Items"]
        tally_jobs(tally, jobs, DAG_ID)
        add_faults(self.fault_totals, stack.admin_request(self.state, "GET", "/devstack/v1/faults"))
        tally.calls = self.fault_totals.pop("calls", 0)
        tally.faults = self.fault_totals
        s3 = procs.s3_client(self.s3.endpoint)
        verify_results(tally, self.api, s3, DAG_ID, self.run_id, self.options.seed, self.options.chains)
        tally.kills_planned = Counter(self.options.kills())
        tally.kills_done = chaos.done
        return tally


def run_suite(options: Options) -> Tally:
    home = options.home or Path(tempfile.mkdtemp(prefix="fault-suite-"))
    home.mkdir(parents=True, exist_ok=True)
    tally = Suite(options, home).run()
    if not options.keep and not tally.failed_goals():
        shutil.rmtree(home, ignore_errors=True)
    else:
        log(f"kept for inspection: {home}")
    return tally


def parse(argv: list[str] | None = None) -> Options:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = Options()
    p.add_argument("--jobs", type=int, default=defaults.jobs, help="Bacalhau jobs (two per chain)")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--fault-rate", type=float, default=defaults.fault_rate, help="share of API calls faulted")
    p.add_argument("--stall", type=float, default=defaults.stall, help="seconds a stalled call waits")
    p.add_argument("--worker-kills", type=int, default=defaults.worker_kills)
    p.add_argument("--triggerer-kills", type=int, default=defaults.triggerer_kills)
    p.add_argument("--scheduler-restarts", type=int, default=defaults.scheduler_restarts)
    p.add_argument("--devstack-restarts", type=int, default=defaults.devstack_restarts)
    p.add_argument("--s3-restarts", type=int, default=defaults.s3_restarts)
    p.add_argument("--own-engine", action="store_true", help="a private Docker Engine for this run")
    p.add_argument("--parallelism", type=int, default=defaults.parallelism, help="task workers at once")
    p.add_argument("--timeout", type=float, default=defaults.timeout, help="seconds the run may take")
    p.add_argument("--home", type=Path, default=None, help="work directory (default: a new temp dir)")
    p.add_argument("--keep", action="store_true", help="keep the work directory")
    args = p.parse_args(argv)
    return Options(**{k: v for k, v in vars(args).items()})


def main(argv: list[str] | None = None) -> int:
    options = parse(argv)
    tally = run_suite(options)
    print(tally.table())
    failed = tally.failed_goals()
    print("goals: " + ("all met" if not failed else "FAILED: " + "; ".join(failed)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
