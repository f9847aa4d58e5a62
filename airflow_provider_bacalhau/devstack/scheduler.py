"""Evaluations, executions on a bounded thread pool, retries, queueing, timeouts and stop.

Single-node simplification of Bacalhau's batch scheduler (reference §9.4, §9.5): a failed
execution is re-run once on the same node; a second failure (or an unsupported engine, source or
publisher) leaves no suitable node, so the job is Queued until QueueTimeout passes, then Failed.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from airflow_provider_bacalhau.devstack import store as st
from airflow_provider_bacalhau.devstack.jobspec import go_duration

log = logging.getLogger(__name__)

RERUN_LIMIT_REASON = "job already executed on this node more than once"
LOST_MESSAGE = (
    "execution lost: the devstack server stopped or restarted while it ran (handled like a lost compute node)"
)


#: How long a node keeps an execution's log files after it ends (``executionRootCleanupDelay``,
#: pkg/compute/executor.go ``Run``); the logs endpoint reads those files, not RunOutput.
LOG_RETENTION = 3600.0
#: How long the node's log reader waits for a log file that does not exist (yet) before it answers
#: "timeout while waiting for execution logs" (``executionLogFileMaxWaitTime``,
#: pkg/compute/logstream/execution_log_reader.go ``logFileWait``).
LOG_FILE_WAIT = 60.0
#: How often total timeouts are checked (see ``_timer_loop``).
HOUSEKEEPING_SECONDS = 1.0


class LogBuffer:
    """Output chunks of one execution, for the WebSocket logs endpoint: the node's log file.

    ``started`` is when the file exists: the Docker executor creates it once the container has
    started (pkg/executor/docker/handler.go ``captureContainerLogs``), so an execution that failed
    before that has no log file at all. ``ended_at`` (unix time) starts the retention clock.
    """

    def __init__(self) -> None:
        self.chunks: list[tuple[int, str]] = []
        self.started = False
        self.done = False
        self.ended_at: float | None = None

    def append(self, stream: int, chunk: str) -> None:
        self.started = True
        self.chunks.append((stream, chunk))

    def finish(self) -> None:
        self.done = True
        if self.ended_at is None:
            self.ended_at = time.time()


class Scheduler:
    """Runs jobs of a :class:`store.Store` on a compute node.

    :param store: the job store.
    :param compute: object with ``unsupported_reason(job)`` and ``run(request)`` (ComputeNode).
    :param node_id: this node's ID.
    :param concurrency: executions that may run at once (thread pool size).
    :param presign_managed_put: (job_id, execution_id) -> presigned PUT URL, for s3managed.
    :param queue_backoff: seconds between evaluations of a Queued job.
    """

    def __init__(
        self,
        store: st.Store,
        compute: Any,
        node_id: str,
        concurrency: int = 2,
        presign_managed_put: Callable[[str, str], str] | None = None,
        queue_backoff: float = 1.0,
    ) -> None:
        self.store = store
        self.compute = compute
        self.node_id = node_id
        self.presign_managed_put = presign_managed_put
        self.queue_backoff = queue_backoff
        self.pool = ThreadPoolExecutor(max_workers=max(1, concurrency), thread_name_prefix="execution")
        self.cancels: dict[str, threading.Event] = {}
        self.logs: dict[str, LogBuffer] = {}
        self.log_retention = LOG_RETENTION
        self.log_file_wait = LOG_FILE_WAIT
        self._evals: queue.Queue[str | None] = queue.Queue()
        self._wakeups: dict[str, float] = {}
        self._stopping = threading.Event()
        self._threads = [
            threading.Thread(target=self._eval_loop, name="scheduler", daemon=True),
            threading.Thread(target=self._timer_loop, name="scheduler-timers", daemon=True),
        ]

    def start(self) -> None:
        self._recover()
        for thread in self._threads:
            thread.start()

    def shutdown(self) -> None:
        self._stopping.set()
        self._evals.put(None)
        for cancel in list(self.cancels.values()):
            cancel.set()
        # Give running executions a moment to kill their containers before the process exits.
        waiter = threading.Thread(
            target=self.pool.shutdown, kwargs={"wait": True, "cancel_futures": True}, daemon=True
        )
        waiter.start()
        waiter.join(10)

    def _recover(self) -> None:
        """After a restart: executions that were in flight are lost; their jobs are re-evaluated."""
        with self.store.lock:
            for execution in self.store.executions.values():
                if execution["ComputeState"]["StateType"] not in st.TERMINAL_EXEC_STATES:
                    self.store.update_execution(
                        execution["ID"],
                        compute=st.EXEC_FAILED,
                        message=LOST_MESSAGE,
                        desired=st.DESIRED_STOPPED,
                        desired_message=LOST_MESSAGE,
                    )
                    self.store.add_event(
                        execution["JobID"],
                        "Execution",
                        LOST_MESSAGE,
                        execution["ID"],
                        {"IsError": "true", "FailsExecution": "true"},
                        version=execution["JobVersion"],
                    )
            for job_id, job in self.store.jobs.items():
                if job["State"]["StateType"] not in st.TERMINAL_JOB_STATES:
                    self.enqueue(job_id)

    # evaluations -------------------------------------------------------------------------
    def enqueue(self, job_id: str) -> str:
        self._evals.put(job_id)
        return str(uuid.uuid4())

    def _eval_loop(self) -> None:
        while not self._stopping.is_set():
            job_id = self._evals.get()
            if job_id is None:
                return
            try:
                self.evaluate(job_id)
            except Exception:  # one bad job must not stop the scheduler
                log.exception("evaluation of %s failed", job_id)

    def _timer_loop(self) -> None:
        housekept = 0.0
        while not self._stopping.wait(0.2):
            now = time.time()
            with self.store.lock:
                for job_id, when in list(self._wakeups.items()):
                    if when <= now:
                        del self._wakeups[job_id]
                        self.enqueue(job_id)
                # Total timeouts are found by housekeeping (pkg/orchestrator/housekeeping.go), every
                # HousekeepingInterval: 1 s in v1.9.3's test config (pkg/config/defaults.go,
                # testOverrides). A scan of 10,000 jobs every 0.2 s cost the held-jobs benchmark.
                if now - housekept >= HOUSEKEEPING_SECONDS:
                    housekept = now
                    for job in self.store.jobs.values():
                        self._check_total_timeout(job, now)
            self.expire_logs(now)

    def expire_logs(self, now: float | None = None) -> None:
        """Forget the logs of executions that ended more than ``log_retention`` seconds ago."""
        now = time.time() if now is None else now
        for execution_id, buffer in list(self.logs.items()):
            if buffer.ended_at is not None and now - buffer.ended_at >= self.log_retention:
                self.logs.pop(execution_id, None)

    def _check_total_timeout(self, job: dict, now: float) -> None:
        total = job["Tasks"][0]["Timeouts"].get("TotalTimeout", 0) if job["Tasks"] else 0
        if not total or job["State"]["StateType"] in st.TERMINAL_JOB_STATES:
            return
        if now - self._version_start(job) > total:
            message = f"Job timed out. Job took longer than {go_duration(total)}"
            self.store.add_event(job["ID"], "Job Timeout", message, details={"IsError": "true"})
            self._fail_job(job["ID"], message)

    def _version_start(self, job: dict) -> float:
        versions = self.store.versions.get(job["ID"]) or [job]
        return versions[job["Version"] - 1]["ModifyTime"] / 1e9

    def evaluate(self, job_id: str) -> None:
        with self.store.lock:
            job = self.store.jobs.get(job_id)
            if job is None or job["State"]["StateType"] in st.TERMINAL_JOB_STATES:
                return
            executions = self.store.executions_of(job_id, job["Version"])
            wanted = job["Count"] if job["Type"] in ("batch", "service") else 1
            blocked: list[str] = []
            live = completed = 0
            for partition in range(wanted):
                mine = [e for e in executions if e.get("PartitionIndex", 0) == partition]
                states = [e["ComputeState"]["StateType"] for e in mine]
                if st.EXEC_COMPLETED in states:
                    completed += 1
                    continue
                if any(s not in st.TERMINAL_EXEC_STATES for s in states):
                    live += 1
                    continue
                failures = [e for e in mine if e["ComputeState"]["StateType"] == st.EXEC_FAILED]
                reason = self.compute.unsupported_reason(job) or (
                    RERUN_LIMIT_REASON if len(failures) >= 2 else None
                )
                if reason:
                    blocked.append(reason)
                    continue
                previous = max(failures, key=lambda e: e["CreateTime"])["ID"] if failures else ""
                self._start_execution(job_id, partition, previous)
                live += 1
            if blocked:
                self._blocked(job, wanted, blocked, live)
            elif live:
                self.store.set_job_state(job_id, "Running")
            elif completed == wanted and job["Type"] in ("batch", "ops"):
                self.store.set_job_state(job_id, "Completed")

    def _blocked(self, job: dict, wanted: int, reasons: list[str], live: int) -> None:
        message = (
            f"not enough nodes to run job. requested: {wanted}, available: 1, suitable: 0.\n"
            f"• Node {self.node_id}: {reasons[0]}"
        )
        queue_timeout = job["Tasks"][0]["Timeouts"].get("QueueTimeout", 0)
        waited = time.time() - self._version_start(job)
        if queue_timeout > 0 and waited < queue_timeout:
            if job["State"]["StateType"] != "Queued":
                self.store.add_event(job["ID"], "Queueing", f"Job queued: {message}")
            if not live:
                self.store.set_job_state(job["ID"], "Queued", message)
            self._wakeups[job["ID"]] = time.time() + min(self.queue_backoff, queue_timeout - waited + 0.05)
            return
        self.store.add_event(job["ID"], "Scheduling", message, details={"IsError": "true"})
        self._fail_job(job["ID"], message)

    def _fail_job(self, job_id: str, message: str) -> None:
        with self.store.lock:
            if self.store.set_job_state(job_id, "Failed", message):
                self._stop_executions(job_id, message)

    # executions --------------------------------------------------------------------------
    def _start_execution(self, job_id: str, partition: int, previous: str) -> None:
        execution = self.store.new_execution(job_id, self.node_id, str(uuid.uuid4()), partition, previous)
        cancel = threading.Event()
        self.cancels[execution["ID"]] = cancel
        self.logs[execution["ID"]] = LogBuffer()
        self.pool.submit(self._run, execution["ID"], cancel)

    def _stop_executions(self, job_id: str, message: str) -> None:
        """Desired state Stopped for the job's live executions; those not started yet end at once."""
        with self.store.lock:
            for execution in self.store.executions_of(job_id):
                if execution["ComputeState"]["StateType"] in st.TERMINAL_EXEC_STATES:
                    continue
                self.store.update_execution(
                    execution["ID"], desired=st.DESIRED_STOPPED, desired_message=message
                )
                cancel = self.cancels.get(execution["ID"])
                if cancel is not None:
                    cancel.set()
                if execution["ComputeState"]["StateType"] == st.EXEC_BID_ACCEPTED:
                    self._finish_cancelled(execution["ID"])

    def _finish_cancelled(self, execution_id: str) -> None:
        execution = self.store.update_execution(
            execution_id, compute=st.EXEC_CANCELLED, message="execution cancelled"
        )
        self.store.add_event(
            execution["JobID"],
            "Execution",
            "execution cancelled",
            execution_id,
            version=execution["JobVersion"],
        )
        buffer = self.logs.get(execution_id)
        if buffer:
            buffer.finish()

    def stop_job(self, job_id: str, reason: str) -> str:
        """Stop a job (StopJob): returns the evaluation ID, empty when it was already Stopped."""
        with self.store.lock:
            state = self.store.jobs[job_id]["State"]["StateType"]
            if state == "Stopped":
                return ""
            if state == "Completed":
                raise st.ApiError(500, "cannot stop job in state Completed", "", "Orchestrator")
            if state == "Failed":
                raise st.ApiError(
                    500,
                    f"job {job_id} is in terminal state Failed and cannot transition to Stopped",
                    "ConflictJobState",
                    "JobStore",
                )
            self.store.add_event(
                job_id, "State Update", "Job requested to stop before completion", details={"Reason": reason}
            )
            self.store.set_job_state(job_id, "Stopped", reason)
            self._stop_executions(job_id, reason if reason else "job stopped by user")
            return str(uuid.uuid4())

    def stop_for_update(self, job_id: str) -> None:
        self._stop_executions(job_id, "Execution stopped for job update")

    def _run(self, execution_id: str, cancel: threading.Event) -> None:
        try:
            self._run_inner(execution_id, cancel)
        except Exception:
            log.exception("execution %s crashed", execution_id)

    def _run_inner(self, execution_id: str, cancel: threading.Event) -> None:
        with self.store.lock:
            execution = self.store.executions[execution_id]
            if execution["ComputeState"]["StateType"] in st.TERMINAL_EXEC_STATES:
                return
            job_id, version = execution["JobID"], execution["JobVersion"]
            partition = execution.get("PartitionIndex", 0)
            job = self.store.job_version(job_id, version)
        buffer = self.logs.setdefault(execution_id, LogBuffer())

        def on_event(topic: str, message: str) -> None:
            self.store.add_event(job_id, topic, message, execution_id, version=version)
            if topic == "Publishing Results":
                self._set_compute(execution_id, st.EXEC_PUBLISHING, "publishing results")

        from airflow_provider_bacalhau.devstack import compute as compute_module

        def on_running() -> None:
            buffer.started = True  # the container runs: its log file exists from now on
            self._set_compute(execution_id, st.EXEC_RUNNING, "running")

        request = compute_module.ExecutionRequest(
            job=job,
            job_id=job_id,
            execution_id=execution_id,
            presign_managed_put=self.presign_managed_put,
            on_log=buffer.append,
            on_event=on_event,
            on_running=on_running,
            cancel=cancel,
            partition_index=partition,
        )
        try:
            outcome = self.compute.run(request)
            error, run_output, published = outcome.error, outcome.run_output, outcome.published_result
        except Exception as exc:  # a compute bug becomes a failed execution, not a stuck one
            log.exception("compute failed on %s", execution_id)
            error, run_output, published = f"devstack compute error: {exc}", None, None
        # RunOutput reaches the orchestrator only with a completed run (RunResult, handled by
        # pkg/orchestrator/message_handler.go OnRunComplete), whatever its exit code. A failed run
        # sends a ComputeError: OnComputeFailure (and the compute node's executor.go handleFailure)
        # store only ComputeState.Message. Cancelled and lost executions are marked by the
        # scheduler's plan (scheduler/types.go markCancelled/markFailed via planner/state_updater.go),
        # which sets only the states. Their output stays on the logs endpoint while retained.
        with self.store.lock:
            if self._stopping.is_set():  # the server is going down: as lost as after a restart
                self.store.update_execution(
                    execution_id,
                    compute=st.EXEC_FAILED,
                    message=LOST_MESSAGE,
                    desired=st.DESIRED_STOPPED,
                    desired_message=LOST_MESSAGE,
                )
            elif (
                cancel.is_set()
                or self.store.executions[execution_id]["DesiredState"]["StateType"] == st.DESIRED_STOPPED
            ):
                self._finish_cancelled(execution_id)
            elif error:
                self.store.update_execution(
                    execution_id,
                    compute=st.EXEC_FAILED,
                    message=error,
                    desired=st.DESIRED_STOPPED,
                    desired_message="execution failed",
                )
                self.store.add_event(
                    job_id,
                    "Execution",
                    error,
                    execution_id,
                    {"IsError": "true", "FailsExecution": "true"},
                    version=version,
                )
            else:
                self.store.update_execution(
                    execution_id,
                    compute=st.EXEC_COMPLETED,
                    message="",
                    desired=st.DESIRED_STOPPED,
                    desired_message="execution completed",
                    RunOutput=run_output,
                    PublishedResult=published or {"Type": ""},
                )
                self.store.add_event(
                    job_id, "Execution", "Completed", execution_id, {"NewState": "Completed"}, version=version
                )
            buffer.finish()
        self.enqueue(job_id)

    def _set_compute(self, execution_id: str, state: int, message: str) -> None:
        with self.store.lock:
            execution = self.store.executions[execution_id]
            if execution["ComputeState"]["StateType"] in st.TERMINAL_EXEC_STATES:
                return
            self.store.update_execution(execution_id, compute=state, message=message)
            if state == st.EXEC_RUNNING:
                self.store.add_event(
                    execution["JobID"],
                    "Execution",
                    "Running",
                    execution_id,
                    {"NewState": "Running"},
                    version=execution["JobVersion"],
                )
