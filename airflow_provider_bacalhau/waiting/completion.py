"""The one way a Bacalhau wait ends: the task log, the verdict, and a typed failure or the results.

The operators and the sensor finish through :meth:`JobCompletionMixin.execute_complete`, whatever
path the wait took (see :mod:`airflow_provider_bacalhau.waiting`); the verdict comes from
:class:`~airflow_provider_bacalhau.spec.JobStatus` alone.
"""

from __future__ import annotations

import logging
from functools import cached_property
from typing import Any, ClassVar

from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.failures import (
    BacalhauJobError,
    BacalhauJobFailedError,
    BacalhauJobTimeoutError,
)
from airflow_provider_bacalhau.waiting import task_label
from airflow_provider_bacalhau.waiting.events import validate_event

#: How much of each stream the task log shows per execution (Bacalhau keeps the first 2 KiB).
OUTPUT_LOG_LIMIT = 2048


def job_accepted(status: Any, fail_on_nonzero_exit: bool) -> bool:
    """The task's verdict, from :class:`JobStatus` alone."""
    if status.succeeded:
        return True
    return not fail_on_nonzero_exit and status.state.value == "Completed"


def _clip(text: str | None, truncated: bool) -> tuple[str, bool]:
    text = text or ""
    if len(text) > OUTPUT_LOG_LIMIT:
        return text[:OUTPUT_LOG_LIMIT], True
    return text, bool(truncated)


def log_run_outputs(
    status: Any, log: logging.Logger, streamed: dict[str, dict[str, Any]] | None = None
) -> None:
    """Show each execution's state, exit code, stdout and stderr (first 2 KiB) in the task log.

    ``streamed`` (see :meth:`~airflow_provider_bacalhau.waiting.live_logs.LiveLogs.summary`) says
    how much of each stream the live log already showed: that part is not shown again.
    """
    streamed = streamed or {}
    for execution in status.executions:
        run = execution.run_output
        state = getattr(execution.compute_state, "label", execution.compute_state)
        exit_code = getattr(run, "exit_code", None) if run is not None else None
        log.info(
            "Execution %s on node %s: %s, exit code %s%s",
            execution.id,
            execution.node_id or "-",
            state,
            "-" if exit_code is None else exit_code,
            f" ({execution.compute_message})" if execution.compute_message else "",
        )
        if run is None:
            continue
        shown = streamed.get(execution.id, {})
        for stream in ("stdout", "stderr"):
            text, cut = _clip(getattr(run, stream, ""), getattr(run, f"{stream}_truncated", False))
            skip = shown.get(stream, 0)
            if skip and text:
                if skip >= len(text):
                    log.info("%s of %s: shown in the live log above", stream, execution.id)
                    continue
                text = text[skip:]
            if not text:
                continue
            note = (
                "first 2 KiB; truncated, the full stream is in the published results" if cut else "complete"
            )
            if skip:
                note += "; the part already shown in the live log is left out"
            log.info("%s of %s (%s):\n%s", stream, execution.id, note, text.rstrip("\n"))


class JobCompletionMixin:
    """The hook and ``execute_complete`` of everything that waits on a Bacalhau job.

    The host class provides ``bacalhau_conn_id``, ``fail_on_nonzero_exit`` and ``log``, and may
    set ``bacalhau_namespace`` (the job's namespace, when it is not the connection's); it may
    override :meth:`stop_reason`.
    """

    #: Stop the job when the wait times out (an operator owns its job; a sensor does not).
    stop_job_on_timeout: ClassVar[bool] = True
    #: What a timed-out wait raises (the sensor's is also an AirflowSensorTimeout).
    timeout_error: ClassVar[type[BacalhauJobTimeoutError]] = BacalhauJobTimeoutError

    bacalhau_conn_id: str
    fail_on_nonzero_exit: bool
    log: logging.Logger
    bacalhau_namespace: str | None = None
    #: The job followed, and whether this task has seen it end (``on_kill`` leaves it alone then).
    bacalhau_job_id: str | None = None
    bacalhau_job_ended: bool = False

    @cached_property
    def hook(self) -> Any:
        """The task's one :class:`~airflow_provider_bacalhau.hooks.bacalhau.BacalhauHook`: the
        connection is read once per task instance (built on first use, after templating)."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        return BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id)

    def get_bacalhau_client(self, namespace: str | None = None) -> Any:
        """A new synchronous client asking in ``namespace`` (default: the job's, else the
        connection's). Use it as a context manager: it owns a connection pool."""
        return self.hook.get_client(namespace=namespace or self.bacalhau_namespace)

    def stop_reason(self, context: Any, why: str) -> str:
        try:
            return f"Airflow task {task_label(context)}: {why}"
        except Exception:  # a partial context must not hide the real outcome
            return f"Airflow: {why}"

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict[str, Any]]:
        """Finish the task from a wait's event: log, decide through ``JobStatus``, return results.

        Returns the published results (``PublishedResult.to_dict()``, one per completed execution).
        Raises :class:`~airflow_provider_bacalhau.failures.BacalhauJobFailedError` when the job did
        not succeed, :class:`~airflow_provider_bacalhau.failures.BacalhauJobTimeoutError` when the
        wait timed out, :class:`~airflow_provider_bacalhau.failures.BacalhauJobError` when the job
        could not be read.
        """
        from airflow_provider_bacalhau.spec import JobStatus

        event = validate_event(event)
        job_id = event["job_id"]
        self.bacalhau_job_id = job_id  # lets on_kill find the job after a resume
        # Seen ended (or stopped below after a timeout): a kill from here on must not stop it,
        # nor a later version of it that another try submitted under the same ID.
        self.bacalhau_job_ended = event["status"] != "error"
        if event.get("namespace"):  # the namespace the job was watched in, after a resume too
            self.bacalhau_namespace = event["namespace"]
        from airflow_provider_bacalhau.waiting.live_logs import streamed_from_event

        streamed = streamed_from_event(event)
        status_name = event["status"]
        if status_name == "error":
            raise BacalhauJobError(
                f"Waiting for Bacalhau job {job_id} failed: {event.get('message')}", job_id=job_id
            )
        if status_name == "timeout":
            if isinstance(event.get("job"), dict):
                log_run_outputs(JobStatus.from_api(event["job"]), self.log, streamed)
            self._stop_after_timeout(context, job_id)
            raise self.timeout_error(
                event.get("message") or f"Timed out waiting for Bacalhau job {job_id}", job_id=job_id
            )

        status = JobStatus.from_api(event["job"])
        log_run_outputs(status, self.log, streamed)
        if not job_accepted(status, self.fail_on_nonzero_exit):
            summary = status.failure_summary()
            output = self._failed_output(status)
            if output:
                summary += "\n" + output
            self.log.error("Bacalhau job %s did not succeed:\n%s", job_id, summary)
            raise BacalhauJobFailedError(
                f"Bacalhau job {job_id} ended {status.state.value} without success: {summary}",
                job_id=job_id,
                state=status.state.value,
            )
        if not status.succeeded:
            self.log.warning(
                "Bacalhau job %s completed with a non-zero exit code; accepted because "
                "fail_on_nonzero_exit is False",
                job_id,
            )
        results = [result.to_dict() for result in status.results]
        self.log.info("Bacalhau job %s completed: %d published result(s)", job_id, len(results))
        return results

    def _failed_output(self, status: Any) -> str:
        """Failed executions' output from the logs endpoint (v1.9.3 keeps no RunOutput for them);
        best effort, bounded in time, never an error. The failure message keeps this tail even
        when the live log showed it: it is the failure's explanation (callbacks, the UI)."""
        from airflow_provider_bacalhau.waiting.failed_output import failed_output, needs_logs

        if not any(needs_logs(e) for e in status.executions):
            return ""
        try:
            with self.get_bacalhau_client(status.namespace or None) as client:
                return failed_output(client, status, self.log)
        except Exception as exc:  # e.g. the connection cannot be read: the job's own messages stand
            self.log.warning(
                "Could not read the failed executions' logs of Bacalhau job %s: %s", status.job_id, exc
            )
            return ""

    def stop_killed_job(self, reason: str) -> None:
        """``on_kill``: stop the job this task follows, unless it has not started one yet or has
        already seen it end (a stop then hits nothing, or a newer version of the job)."""
        job_id = self.bacalhau_job_id
        if not job_id:
            return
        if self.bacalhau_job_ended:
            self.log.info("Bacalhau job %s already ended: nothing to stop", job_id)
            return
        try:
            with self.get_bacalhau_client() as client:
                client.stop_job(job_id, reason=reason)
            self.log.info("Stopped Bacalhau job %s: %s", job_id, reason)
        except Exception:
            self.log.warning("Could not stop Bacalhau job %s", job_id, exc_info=True)

    def _stop_after_timeout(self, context: Any, job_id: str) -> None:
        if not self.stop_job_on_timeout:
            self.log.info("Leaving Bacalhau job %s running (this task does not own it)", job_id)
            return
        reason = self.stop_reason(context, "the wait for the job timed out")
        try:
            with self.get_bacalhau_client() as client:
                client.stop_job(job_id, reason=reason)
            self.log.info("Stopped Bacalhau job %s after the wait timed out", job_id)
        except BacalhauApiError as exc:
            self.log.warning("Could not stop Bacalhau job %s after the timeout: %s", job_id, exc)
