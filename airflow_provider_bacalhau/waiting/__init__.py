"""Where a Bacalhau job waits: the one waiting path of the operators, the sensor and the trigger.

- :mod:`.events`: the event every wait ends with, its schema and validation;
- :mod:`.loop`: :func:`watch_job`, the sans-IO polling loop, and :func:`wait_in_worker`, which
  drives it in the worker (the trigger drives it in the triggerer);
- :mod:`.completion`: :class:`JobCompletionMixin`, the completion step (task log, verdict,
  typed failures, stop after a timeout), with :mod:`.failed_output` (a failed execution's log
  tail);
- :mod:`.live_logs`: the container output streamed into the task log while the job runs
  (sans-IO: executions, replay offsets, caps, the line format), driven by :mod:`.log_follower`
  (a task on the triggerer's loop, a thread in the worker) beside the waiting loop.

This package sits above ``hooks`` and below operators, sensors and triggers: it imports none of
them. The transient-error policy and the sleep type are the client's
(:func:`~airflow_provider_bacalhau.client.retrying.is_transient`,
:class:`~airflow_provider_bacalhau.client.retrying.Sleep`).
"""

from __future__ import annotations

from typing import Any

#: Default wall-clock limit of a wait; the trigger always needs a deadline.
DEFAULT_TIMEOUT_SECONDS = 24 * 3600.0
#: ``timeout=None`` ("no limit") still gives the trigger a deadline, a year away.
UNLIMITED_WAIT_SECONDS = 365 * 24 * 3600.0
#: The defer timeout is padded past the trigger's own deadline, so the trigger's ``timeout``
#: event (which stops the job) arrives before Airflow's backstop fails the task.
DEFER_TIMEOUT_PADDING_SECONDS = 60.0
#: Key of the job ID in XCom and in the task state store.
JOB_ID_KEY = "bacalhau_job_id"


def default_deferrable() -> bool:
    """The ``[operators] default_deferrable`` setting (False when unset)."""
    from airflow.providers.common.compat.sdk import conf

    deferrable: bool = conf.getboolean("operators", "default_deferrable", fallback=False)
    return deferrable


def task_label(context: Any) -> str:
    """A short human description of the task instance, for stop reasons and log lines."""
    ti = context["ti"]
    index = getattr(ti, "map_index", -1)
    mapped = f"[{index}]" if index is not None and index >= 0 else ""
    return f"{ti.dag_id}.{ti.task_id}{mapped} (run {ti.run_id})"


# The names users and the other layers use, importable from the package.
from airflow_provider_bacalhau.waiting.events import (  # noqa: E402
    EVENT_STATUSES,
    event_from_response,
    make_event,
    slim_response,
    validate_event,
)
from airflow_provider_bacalhau.waiting.loop import (  # noqa: E402
    POLL,
    Sleep,
    is_transient,
    retry_delay,
    wait_in_worker,
    watch_job,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFER_TIMEOUT_PADDING_SECONDS",
    "EVENT_STATUSES",
    "JOB_ID_KEY",
    "POLL",
    "UNLIMITED_WAIT_SECONDS",
    "Sleep",
    "default_deferrable",
    "event_from_response",
    "is_transient",
    "make_event",
    "retry_delay",
    "slim_response",
    "task_label",
    "validate_event",
    "wait_in_worker",
    "watch_job",
]
