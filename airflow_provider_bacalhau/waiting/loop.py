"""The one waiting loop, without I/O (:func:`watch_job`), and its blocking driver for the worker.

The trigger drives the same loop with the async client (``triggers/job.py``). Transient errors
are judged, and backed off, by the client's own policy (:func:`client.retrying.is_transient`,
:func:`client.retrying.backoff_delay`), so a lasting HTTP 500 ends a wait at once in every path.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Generator
from typing import Any

from airflow_provider_bacalhau.client.retrying import Sleep, backoff_delay, is_transient
from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.waiting.events import event_from_response, make_event

__all__ = ["FIRST_RETRY_DELAY", "POLL", "Sleep", "is_transient", "retry_delay", "wait_in_worker", "watch_job"]

#: First pause after a transient API error; doubled per consecutive error, capped by poll_interval.
FIRST_RETRY_DELAY = 1.0
#: A step of :func:`watch_job`: read the job now, then send the answer (or the exception).
POLL = "poll"


def retry_delay(errors_in_a_row: int, poll_interval: float) -> float:
    """The pause after the ``errors_in_a_row``-th transient error: the client's backoff, jittered."""
    return backoff_delay(errors_in_a_row - 1, FIRST_RETRY_DELAY, poll_interval)


def watch_job(
    job_id: str, poll_interval: float, deadline: float, log: logging.Logger, namespace: str | None = None
) -> Generator[str | Sleep, Any, dict[str, Any]]:
    """The one waiting loop, without I/O: the worker and the trigger only drive it.

    It yields :data:`POLL` (send back the ``GET /jobs/{id}?include=executions`` answer, or the
    exception the read raised) or a :class:`Sleep`, and returns the completion event: the job's
    outcome once terminal, ``timeout`` at ``deadline`` (unix time), ``error`` for an API error that
    will not pass. Transient errors are retried with backoff; state changes are logged once.
    ``namespace`` (where the job is read) travels in the event.
    """
    from airflow_provider_bacalhau.spec import JobStatus

    last_state: str | None = None
    last_response: dict[str, Any] | None = None
    errors_in_a_row = 0
    while True:
        answer = yield POLL
        if isinstance(answer, BaseException):
            if not is_transient(answer):
                return make_event(
                    "error", job_id, f"cannot read Bacalhau job {job_id}: {answer}", last_response, namespace
                )
            errors_in_a_row += 1
            delay = retry_delay(errors_in_a_row, poll_interval)
            log.warning(
                "Bacalhau job %s: transient API error (%s); retry %d in %.1fs",
                job_id,
                answer,
                errors_in_a_row,
                delay,
            )
        else:
            errors_in_a_row = 0
            last_response = answer
            status = JobStatus.from_api(answer)
            if status.is_terminal:
                log.info("Bacalhau job %s is terminal: %s", job_id, status.state.value)
                return event_from_response(answer, namespace)
            if status.state.value != last_state:
                last_state = status.state.value
                log.info(
                    "Bacalhau job %s is %s%s",
                    job_id,
                    last_state,
                    f" ({status.message})" if status.message else "",
                )
            delay = poll_interval
        remaining = deadline - time.time()
        if remaining <= 0 or (errors_in_a_row and delay >= remaining):
            where = f"still {last_state}" if last_state else "not observed"
            return make_event(
                "timeout",
                job_id,
                f"Bacalhau job {job_id} {where} at the wait's deadline",
                last_response,
                namespace,
            )
        yield Sleep(min(delay, remaining))


def wait_in_worker(
    client: Any,
    job_id: str,
    poll_interval: float,
    deadline: float,
    log: logging.Logger,
    namespace: str | None = None,
    stream_logs: bool = False,
) -> dict[str, Any]:
    """Drive :func:`watch_job` from the worker (blocking) and return its event.

    :param client: a :class:`~airflow_provider_bacalhau.client.BacalhauClient` asking in
        ``namespace``.
    :param stream_logs: log the running executions' output as it comes (a follower thread beside
        this loop, see :mod:`.log_follower`); the event then says what was streamed.
    """
    follower = _worker_follower(client, job_id, poll_interval, log, namespace) if stream_logs else None
    sleep = follower.sleep if follower is not None else time.sleep
    watch = watch_job(job_id, poll_interval, deadline, log, namespace)
    step = next(watch)
    try:
        while True:
            if isinstance(step, Sleep):
                sleep(step.seconds)
                step = watch.send(None)
                continue
            try:
                answer: Any = client.get_job(job_id)
            except BacalhauApiError as exc:
                answer = exc
            if follower is not None:
                follower.observe(answer)
            step = watch.send(answer)
    except StopIteration as done:
        event: dict[str, Any] = done.value
        if follower is not None:
            event["streamed"] = follower.close()
            follower = None
        return event
    finally:
        if follower is not None:  # the wait itself broke (or the task was killed): no drain
            follower.close(drain=0)


def _worker_follower(
    client: Any, job_id: str, poll_interval: float, log: logging.Logger, namespace: str | None
) -> Any:
    from airflow_provider_bacalhau.waiting.live_logs import LiveLogs
    from airflow_provider_bacalhau.waiting.log_follower import ThreadedLogFollower, stream_opener

    return ThreadedLogFollower(
        LiveLogs(poll_interval),
        stream_opener(client.config, job_id, namespace),
        lambda failures: retry_delay(failures, poll_interval),
        log,
    )
