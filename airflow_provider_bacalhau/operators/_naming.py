"""Deterministic Bacalhau job names, one per Airflow task instance.

Since Bacalhau v1.8 a job ``Name`` is an upsert key within a namespace, so a name derived from the
task instance (dag, task, run, map index) lets a retried or restarted task find the job its
earlier try submitted instead of submitting a duplicate.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

#: Names appear in URL paths; Bacalhau does not validate them, so keep to a safe alphabet.
_UNSAFE = re.compile(r"[^A-Za-z0-9-]+")
MAX_NAME_LENGTH = 100
_HASH_LENGTH = 10


def sanitize_job_name(raw: str, max_length: int = MAX_NAME_LENGTH) -> str:
    """Return ``raw`` reduced to ``[A-Za-z0-9-]`` and at most ``max_length`` characters.

    When characters had to be replaced or the text shortened, a hash of the *raw* text is appended,
    so two different inputs (``a.b`` and ``a_b``) never end up with the same name.
    """
    cleaned = _UNSAFE.sub("-", raw).strip("-")
    cleaned = re.sub(r"-{2,}", "-", cleaned)
    if cleaned == raw and len(cleaned) <= max_length:
        return cleaned
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()[:_HASH_LENGTH]
    head = cleaned[: max_length - _HASH_LENGTH - 1].rstrip("-")
    return f"{head}-{digest}"


def task_instance_job_name(dag_id: str, task_id: str, run_id: str, map_index: int | None) -> str:
    """``airflow-<dag_id>-<task_id>-<run_id>-<map_index>``, sanitised (see :func:`sanitize_job_name`)."""
    index = -1 if map_index is None else int(map_index)
    return sanitize_job_name(f"airflow-{dag_id}-{task_id}-{run_id}-{index}")


def job_name_for_context(context: Any) -> str:
    """The deterministic job name of the task instance running in ``context``."""
    ti = context["ti"]
    return task_instance_job_name(ti.dag_id, ti.task_id, ti.run_id, getattr(ti, "map_index", -1))


#: Job Meta key naming the task instance that submitted the job (``bacalhau.org/`` keys are the
#: server's, so an own prefix). A job found by name is reused only by the same task instance.
TASK_INSTANCE_META = "airflow-task-instance"


def task_instance_key(context: Any) -> str:
    """``<dag_id>/<task_id>/<run_id>/<map_index>`` of the task instance running in ``context``."""
    ti = context["ti"]
    index = getattr(ti, "map_index", -1)
    return f"{ti.dag_id}/{ti.task_id}/{ti.run_id}/{-1 if index is None else int(index)}"
