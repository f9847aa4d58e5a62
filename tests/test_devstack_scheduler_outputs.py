"""The devstack scheduler in-process with a stand-in compute node: what it stores for an
execution lost while it ran (the server going down), and when logs are forgotten."""

from __future__ import annotations

import threading
import time

from airflow_provider_bacalhau.devstack import store as st
from airflow_provider_bacalhau.devstack.compute import ExecutionOutcome
from airflow_provider_bacalhau.devstack.jobspec import apply_defaults, normalize_submission
from airflow_provider_bacalhau.devstack.scheduler import LOST_MESSAGE, Scheduler

OUTPUT = {
    "Stdout": "partial\n",
    "StdoutTruncated": False,
    "stderr": "",
    "StderrTruncated": False,
    "ExitCode": -1,
    "ErrorMsg": "execution cancelled",
}


class BlockingCompute:
    """Runs until cancelled, printing one line; reports what a killed container would."""

    def __init__(self) -> None:
        self.started = threading.Event()

    def unsupported_reason(self, job: dict) -> None:
        return None

    def run(self, request) -> ExecutionOutcome:
        request.on_running()
        request.on_log(1, "partial\n")
        self.started.set()
        request.cancel.wait(30)
        return ExecutionOutcome(dict(OUTPUT), None, "execution cancelled")


def submitted(store: st.Store) -> str:
    job, _ = normalize_submission(
        {"Type": "batch", "Count": 1, "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}]}
    )
    apply_defaults(job, "n-test")
    job["ID"], job["Name"] = "j-test", "j-test"
    store.create_job(job)
    return job["ID"]


def test_an_execution_lost_when_the_server_stops_keeps_no_run_output():
    store, compute = st.Store(None), BlockingCompute()
    scheduler = Scheduler(store, compute, "n-test")
    scheduler.start()
    job_id = submitted(store)
    scheduler.enqueue(job_id)
    assert compute.started.wait(10)
    scheduler.shutdown()
    (execution,) = store.executions_of(job_id)
    assert execution["ComputeState"] == {"StateType": st.EXEC_FAILED, "Message": LOST_MESSAGE}
    assert execution["RunOutput"] is None  # only OnRunComplete stores RunOutput in v1.9.3
    assert scheduler.logs[execution["ID"]].chunks == [(1, "partial\n")]  # the node's log file


def test_logs_are_forgotten_after_the_retention():
    scheduler = Scheduler(st.Store(None), BlockingCompute(), "n-test")
    scheduler.log_retention = 60
    from airflow_provider_bacalhau.devstack.scheduler import LogBuffer

    ended, running = LogBuffer(), LogBuffer()
    ended.finish()
    scheduler.logs.update({"e-ended": ended, "e-running": running})
    scheduler.expire_logs(time.time() + 59)
    assert set(scheduler.logs) == {"e-ended", "e-running"}
    scheduler.expire_logs(time.time() + 61)
    assert set(scheduler.logs) == {"e-running"}
