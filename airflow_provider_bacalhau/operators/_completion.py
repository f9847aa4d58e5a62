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
from collections.abc import Generator
from dataclasses import dataclass
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


#: The job fields JobStatus reads; the rest (the spec, with its env values) stays out of events,
#: which Airflow stores in its database.
EVENT_JOB_FIELDS = ("ID", "Name", "Namespace", "Type", "Version", "State")


def slim_response(response: dict | None) -> dict | None:
    """Keep what JobStatus reads: no job spec (env values!) and no per-execution spec copies."""
    if not isinstance(response, dict):
        return response
    slim = dict(response)
    if isinstance(response.get("Job"), dict):
        slim["Job"] = {k: v for k, v in response["Job"].items() if k in EVENT_JOB_FIELDS}
    executions = response.get("Executions")
    if isinstance(executions, dict) and isinstance(executions.get("Items"), list):
        items = [{k: v for k, v in item.items() if k != "Job"} if isinstance(item, dict) else item
                 for item in executions["Items"]]
        slim["Executions"] = {**executions, "Items": items}
    return slim


def event_from_response(response: dict) -> dict[str, Any]:
    """Turn a terminal ``GET /jobs/{id}?include=executions`` answer into a completion event."""
    from airflow_provider_bacalhau.spec import JobStatus

    status = JobStatus.from_api(response)
    outcome = "success" if status.succeeded else "failed"
    message = f"Bacalhau job {status.job_id} ended {status.state.value}"
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


@dataclass(frozen=True)
class Pause:
    """A step of :func:`watch_job`: sleep this long, then send ``None``."""

    seconds: float


#: A step of :func:`watch_job`: read the job now, then send the answer (or the exception).
POLL = "poll"


def watch_job(job_id: str, poll_interval: float, deadline: float,
              log: logging.Logger) -> Generator[str | Pause, Any, dict[str, Any]]:
    """The one waiting loop, without I/O: the worker and the trigger only drive it.

    It yields :data:`POLL` (send back the ``GET /jobs/{id}?include=executions`` answer, or the
    exception the read raised) or a :class:`Pause`, and returns the completion event: the job's
    outcome once terminal, ``timeout`` at ``deadline`` (unix time), ``error`` for an API error that
    will not pass. Transient errors are retried with backoff; state changes are logged once.
    """
    from airflow_provider_bacalhau.spec import JobStatus

    last_state: str | None = None
    last_response: dict | None = None
    errors_in_a_row = 0
    while True:
        answer = yield POLL
        if isinstance(answer, BaseException):
            if not is_transient(answer):
                return make_event("error", job_id, f"cannot read Bacalhau job {job_id}: {answer}",
                                  last_response)
            errors_in_a_row += 1
            delay = retry_delay(errors_in_a_row, poll_interval)
            log.warning("Bacalhau job %s: transient API error (%s); retry %d in %.1fs", job_id,
                        answer, errors_in_a_row, delay)
        else:
            errors_in_a_row = 0
            last_response = answer
            status = JobStatus.from_api(answer)
            if status.is_terminal:
                log.info("Bacalhau job %s is terminal: %s", job_id, status.state.value)
                return event_from_response(answer)
            if status.state.value != last_state:
                last_state = status.state.value
                log.info("Bacalhau job %s is %s%s", job_id, last_state,
                         f" ({status.message})" if status.message else "")
            delay = poll_interval
        remaining = deadline - time.time()
        if remaining <= 0 or (errors_in_a_row and delay >= remaining):
            where = f"still {last_state}" if last_state else "not observed"
            return make_event("timeout", job_id, f"Bacalhau job {job_id} {where} at the wait's deadline",
                              last_response)
        yield Pause(min(delay, remaining))


def wait_in_worker(client: Any, job_id: str, poll_interval: float, deadline: float,
                   log: logging.Logger) -> dict[str, Any]:
    """Drive :func:`watch_job` from the worker (blocking) and return its event."""
    watch = watch_job(job_id, poll_interval, deadline, log)
    step = next(watch)
    try:
        while True:
            if isinstance(step, Pause):
                time.sleep(step.seconds)
                step = watch.send(None)
                continue
            try:
                answer: Any = client.get_job(job_id)
            except BacalhauApiError as exc:
                answer = exc
            step = watch.send(answer)
    except StopIteration as done:
        return done.value


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
            output = self._failed_output(status)
            if output:
                summary += "\n" + output
            self.log.error("Bacalhau job %s did not succeed:\n%s", job_id, summary)
            raise AirflowException(
                f"Bacalhau job {job_id} ended {status.state.value} without success: {summary}"
            )
        if not status.succeeded:
            self.log.warning("Bacalhau job %s completed with a non-zero exit code; accepted because "
                             "fail_on_nonzero_exit is False", job_id)
        results = [result.to_dict() for result in status.results]
        self.log.info("Bacalhau job %s completed: %d published result(s)", job_id, len(results))
        return results

    def _failed_output(self, status: Any) -> str:
        """Failed executions' output from the logs endpoint (v1.9.3 keeps no RunOutput for them);
        best effort, bounded in time, never an error."""
        from airflow_provider_bacalhau.operators._failed_output import failed_output, needs_logs

        if not any(needs_logs(e) for e in status.executions):
            return ""
        try:
            with self.get_bacalhau_client() as client:
                return failed_output(client, status, self.log)
        except Exception as exc:  # e.g. the connection cannot be read: the job's own messages stand
            self.log.warning("Could not read the failed executions' logs of Bacalhau job %s: %s", status.job_id, exc)
            return ""

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
