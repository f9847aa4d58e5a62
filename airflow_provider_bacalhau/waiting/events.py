"""The event every Bacalhau wait ends with: its schema, how it is built, and its validation.

Whether the job was already finished when first checked, was polled in the worker, or was watched
by the trigger, the wait ends in one JSON payload ``{"status", "job_id", "message", "job"}``, and
the outcome is decided in one place: :class:`~airflow_provider_bacalhau.spec.JobStatus`.
"""

from __future__ import annotations

from typing import Any

from airflow.providers.common.compat.sdk import AirflowException

#: The ``status`` values a wait can end with.
EVENT_STATUSES = ("success", "failed", "timeout", "error")
#: The job fields JobStatus reads; the rest (the spec, with its env values) stays out of events,
#: which Airflow stores in its database.
EVENT_JOB_FIELDS = ("ID", "Name", "Namespace", "Type", "Version", "State")


def make_event(
    status: str, job_id: str, message: str, job: dict[str, Any] | None = None, namespace: str | None = None
) -> dict[str, Any]:
    """The JSON payload every wait ends with.

    :param status: one of :data:`EVENT_STATUSES`.
    :param job_id: the Bacalhau job ID.
    :param message: a human summary.
    :param job: the ``GET /jobs/{id}?include=executions`` answer (for ``success``/``failed``, and
        for ``timeout`` when known), so completion needs no further request.
    :param namespace: the namespace the job was watched in (default: the job's own, when known);
        the completion step stops or reads the job there, as the waiting side did.
    """
    if not namespace and isinstance(job, dict) and isinstance(job.get("Job"), dict):
        namespace = job["Job"].get("Namespace") or None
    return {
        "status": status,
        "job_id": job_id,
        "message": message,
        "job": slim_response(job),
        "namespace": namespace or None,
    }


def slim_response(response: dict[str, Any] | None) -> dict[str, Any] | None:
    """Keep what JobStatus reads: no job spec (env values!) and no per-execution spec copies."""
    if not isinstance(response, dict):
        return response
    slim = dict(response)
    if isinstance(response.get("Job"), dict):
        slim["Job"] = {k: v for k, v in response["Job"].items() if k in EVENT_JOB_FIELDS}
    executions = response.get("Executions")
    if isinstance(executions, dict) and isinstance(executions.get("Items"), list):
        items = [
            {k: v for k, v in item.items() if k != "Job"} if isinstance(item, dict) else item
            for item in executions["Items"]
        ]
        slim["Executions"] = {**executions, "Items": items}
    return slim


def event_from_response(response: dict[str, Any], namespace: str | None = None) -> dict[str, Any]:
    """Turn a terminal ``GET /jobs/{id}?include=executions`` answer into a completion event."""
    from airflow_provider_bacalhau.spec import JobStatus

    status = JobStatus.from_api(response)
    outcome = "success" if status.succeeded else "failed"
    message = f"Bacalhau job {status.job_id} ended {status.state.value}"
    if status.message:
        message += f": {status.message}"
    return make_event(outcome, status.job_id, message, response, namespace)


def validate_event(event: Any) -> dict[str, Any]:
    """Check an event before acting on it; anything else is a bug, reported as such."""
    if not isinstance(event, dict):
        raise AirflowException(f"Bacalhau wait ended without a valid event: {event!r}")
    status = event.get("status")
    if status not in EVENT_STATUSES:
        raise AirflowException(f"Bacalhau wait ended with an unknown event status {status!r}")
    if not isinstance(event.get("job_id"), str) or not event["job_id"]:
        raise AirflowException("Bacalhau wait event carries no job_id")
    if event.get("namespace") is not None and not isinstance(event["namespace"], str):
        raise AirflowException(f"Bacalhau wait event carries a bad namespace {event['namespace']!r}")
    if status in ("success", "failed") and not isinstance(event.get("job"), dict):
        raise AirflowException(f"Bacalhau wait event {status!r} carries no job description")
    return event
