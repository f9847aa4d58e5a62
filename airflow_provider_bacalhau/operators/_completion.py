"""The one way a Bacalhau wait ends: events, their validation, the task log and the outcome.

The operators and the sensor finish through :meth:`JobCompletionMixin.execute_complete`, whether
the job was already finished when first checked, was polled in the worker, or was watched by
:class:`~airflow_provider_bacalhau.triggers.job.BacalhauJobTrigger`. All of them build the same
event (:func:`make_event` / :func:`event_from_response`), so there is one completion path and the
outcome is decided in one place: :class:`~airflow_provider_bacalhau.spec.JobStatus`.
"""

from __future__ import annotations

import logging
import time
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowException

from airflow_provider_bacalhau.errors import BacalhauApiError

#: First pause after a transient API error; doubled per consecutive error, capped by poll_interval.
FIRST_RETRY_DELAY = 1.0

#: The ``status`` values a wait can end with.
EVENT_STATUSES = ("success", "failed", "timeout", "error")
#: How much of each stream the task log shows per execution (Bacalhau keeps the first 2 KiB).
OUTPUT_LOG_LIMIT = 2048


def make_event(status: str, job_id: str, message: str, job: dict | None = None) -> dict[str, Any]:
    """The JSON payload every wait ends with.

    :param status: one of :data:`EVENT_STATUSES`.
    :param job_id: the Bacalhau job ID.
    :param message: a human summary.
    :param job: the ``GET /jobs/{id}?include=executions`` answer (for ``success``/``failed``, and
        for ``timeout`` when known), so completion needs no further request.
    """
    return {"status": status, "job_id": job_id, "message": message, "job": slim_response(job)}


def slim_response(response: dict | None) -> dict | None:
    """Drop each execution's copy of the job spec: events are stored, and JobStatus never reads it."""
    if not isinstance(response, dict):
        return response
    executions = response.get("Executions")
    if not isinstance(executions, dict) or not isinstance(executions.get("Items"), list):
        return response
    items = [{k: v for k, v in item.items() if k != "Job"} if isinstance(item, dict) else item
             for item in executions["Items"]]
    return {**response, "Executions": {**executions, "Items": items}}


def event_from_response(response: dict) -> dict[str, Any]:
    """Turn a terminal ``GET /jobs/{id}?include=executions`` answer into a completion event."""
    from airflow_provider_bacalhau.spec import JobStatus

    status = JobStatus.from_api(response)
    outcome = "success" if status.succeeded else "failed"
    message = f"Bacalhau job {status.job_id} ended {_state_name(status)}"
    if status.message:
        message += f": {status.message}"
    return make_event(outcome, status.job_id, message, response)


def validate_event(event: Any) -> dict[str, Any]:
    """Check an event before acting on it; anything else is a bug, reported as such."""
    if not isinstance(event, dict):
        raise AirflowException(f"Bacalhau wait ended without a valid event: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AirflowException(f"Bacalhau wait ended with an unknown event status {status!r}")
    if not isinstance(event.get("job_id"), str) or not event["job_id"]:
        raise AirflowException("Bacalhau wait event carries no job_id")
    if status in ("success", "failed") and not isinstance(event.get("job"), dict):
        raise AirflowException(f"Bacalhau wait event {status!r} carries no job description")
    return event


def is_transient(exc: BaseException) -> bool:
    """Worth another try: no answer, rate limited, or a server-side error."""
    if isinstance(exc, BacalhauApiError):
        return exc.status is None or exc.status == 429 or exc.status >= 500
    return isinstance(exc, (TimeoutError, ConnectionError))


def retry_delay(errors_in_a_row: int, poll_interval: float) -> float:
    return min(poll_interval, FIRST_RETRY_DELAY * 2 ** (errors_in_a_row - 1))


def wait_in_worker(client: Any, job_id: str, poll_interval: float, deadline: float,
                   log: logging.Logger) -> dict[str, Any]:
    """Poll ``job_id`` from the worker until it is terminal or ``deadline`` (unix time) passes.

    Transient API errors are retried (like the trigger does) until the deadline.
    """
    from airflow_provider_bacalhau.spec import JobStatus

    last_state = None
    response = None
    errors_in_a_row = 0
    while True:
        try:
            response = client.get_job(job_id)
        except BacalhauApiError as exc:
            if not is_transient(exc):
                raise
            errors_in_a_row += 1
            delay = retry_delay(errors_in_a_row, poll_interval)
            log.warning("Bacalhau job %s: transient API error (%s); retry %d in %.1fs", job_id, exc,
                        errors_in_a_row, delay)
            if time.time() + delay >= deadline:
                return make_event("timeout", job_id, f"Bacalhau job {job_id} not observed at the wait's "
                                                     f"deadline (API errors)", response)
            time.sleep(delay)
            continue
        errors_in_a_row = 0
        status = JobStatus.from_api(response)
        if status.is_terminal:
            return event_from_response(response)
        state = _state_name(status)
        if state != last_state:
            log.info("Bacalhau job %s is %s", job_id, state)
            last_state = state
        remaining = deadline - time.time()
        if remaining <= 0:
            return make_event("timeout", job_id,
                              f"Bacalhau job {job_id} still {state} when the wait timed out", response)
        time.sleep(max(0.0, min(poll_interval, remaining)))


def _state_name(status: Any) -> str:
    state = status.state
    return str(getattr(state, "value", state))


def job_accepted(status: Any, fail_on_nonzero_exit: bool) -> bool:
    """The task's verdict, from :class:`JobStatus` alone."""
    if status.succeeded:
        return True
    return not fail_on_nonzero_exit and _state_name(status) == "Completed"


def _clip(text: str | None, truncated: bool) -> tuple[str, bool]:
    text = text or ""
    if len(text) > OUTPUT_LOG_LIMIT:
        return text[:OUTPUT_LOG_LIMIT], True
    return text, bool(truncated)


def log_run_outputs(status: Any, log: logging.Logger) -> None:
    """Show each execution's state, exit code, stdout and stderr (first 2 KiB) in the task log."""
    for execution in status.executions:
        run = execution.run_output
        state = getattr(execution.compute_state, "label", execution.compute_state)
        exit_code = getattr(run, "exit_code", None) if run is not None else None
        log.info("Execution %s on node %s: %s, exit code %s%s", execution.id, execution.node_id or "-",
                 state, "-" if exit_code is None else exit_code,
                 f" ({execution.compute_message})" if execution.compute_message else "")
        if run is None:
            continue
        for stream in ("stdout", "stderr"):
            text, cut = _clip(getattr(run, stream, ""), getattr(run, f"{stream}_truncated", False))
            if not text:
                continue
            note = "first 2 KiB; truncated, the full stream is in the published results" if cut else "complete"
            log.info("%s of %s (%s):\n%s", stream, execution.id, note, text.rstrip("\n"))


class JobCompletionMixin:
    """``execute_complete`` for everything that waits on a Bacalhau job.

    The host class provides ``bacalhau_conn_id``, ``fail_on_nonzero_exit`` and ``log``; it may
    override :meth:`get_bacalhau_client` and :meth:`stop_reason`.
    """

    #: Stop the job when the wait times out (an operator owns its job; a sensor does not).
    stop_job_on_timeout: ClassVar[bool] = True

    bacalhau_conn_id: str
    fail_on_nonzero_exit: bool
    log: logging.Logger

    def get_bacalhau_client(self) -> Any:
        """A new synchronous client (use it as a context manager: it owns a connection pool)."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        return BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id).get_client()

    def stop_reason(self, context: Any, why: str) -> str:
        from airflow_provider_bacalhau.operators._naming import task_label

        try:
            return f"Airflow task {task_label(context)}: {why}"
        except Exception:  # a partial context must not hide the real outcome
            return f"Airflow: {why}"

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict]:
        """Finish the task from a wait's event: log, decide through ``JobStatus``, return results.

        Returns the published results (``PublishedResult.to_dict()``, one per completed execution).
        """
        from airflow_provider_bacalhau.spec import JobStatus

        event = validate_event(event)
        job_id = event["job_id"]
        self.bacalhau_job_id = job_id  # lets on_kill find the job after a resume
        status_name = event["status"]
        if status_name == "error":
            raise AirflowException(f"Waiting for Bacalhau job {job_id} failed: {event.get('message')}")
        if status_name == "timeout":
            if isinstance(event.get("job"), dict):
                log_run_outputs(JobStatus.from_api(event["job"]), self.log)
            self._stop_after_timeout(context, job_id)
            raise AirflowException(event.get("message") or f"Timed out waiting for Bacalhau job {job_id}")

        status = JobStatus.from_api(event["job"])
        log_run_outputs(status, self.log)
        if not job_accepted(status, self.fail_on_nonzero_exit):
            summary = status.failure_summary()
            self.log.error("Bacalhau job %s did not succeed:\n%s", job_id, summary)
            raise AirflowException(
                f"Bacalhau job {job_id} ended {_state_name(status)} without success: {summary}"
            )
        if not status.succeeded:
            self.log.warning("Bacalhau job %s completed with a non-zero exit code; accepted because "
                             "fail_on_nonzero_exit is False", job_id)
        results = [result.to_dict() for result in status.results]
        self.log.info("Bacalhau job %s completed: %d published result(s)", job_id, len(results))
        return results

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
