"""Typed task failures: a Bacalhau job failed, timed out, or its inputs were not usable.

They subclass Airflow's ``AirflowException`` so Airflow treats them as ordinary task failures
(retries apply unless said otherwise), and they carry the job, so an ``on_failure_callback`` can
``isinstance``-check ``context["exception"]`` and read ``job_id``. They live here, in the Airflow
layer, because ``errors.py`` is imported by ``spec`` and ``client``, which must not import
Airflow; ``errors.py`` still names them and hands them out lazily
(``from airflow_provider_bacalhau.errors import BacalhauJobFailedError`` works).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, AirflowSensorTimeout

__all__ = [
    "BacalhauInputError",
    "BacalhauInvalidArgumentError",
    "BacalhauInvalidInputError",
    "BacalhauJobError",
    "BacalhauJobFailedError",
    "BacalhauJobTimeoutError",
    "BacalhauSensorTimeoutError",
    "TemplateErrorsFailMixin",
    "invalid_arguments_fail",
]


class BacalhauJobError(AirflowException):
    """A task failed over its Bacalhau job; also raised when a wait could not read the job.

    :param message: the failure text shown in the task log.
    :param job_id: the Bacalhau job ID (``None`` before a job exists).
    """

    def __init__(self, message: str, *, job_id: str | None = None) -> None:
        super().__init__(message)
        self.job_id = job_id


class BacalhauJobFailedError(BacalhauJobError):
    """The job ended without success: Failed, Stopped, or an execution's exit code was not 0.

    :param message: the failure text (ErrorMsg, compute messages, the stderr tail).
    :param job_id: the Bacalhau job ID.
    :param state: the job's final state (``"Failed"``, ``"Stopped"``, ``"Completed"``...).
    """

    def __init__(self, message: str, *, job_id: str, state: str) -> None:
        super().__init__(message, job_id=job_id)
        self.state = state


class BacalhauJobTimeoutError(BacalhauJobError):
    """The wait reached its ``timeout`` before the job ended (an operator then stops its job)."""


class BacalhauSensorTimeoutError(BacalhauJobTimeoutError, AirflowSensorTimeout):
    """A sensor's wait timed out: also an ``AirflowSensorTimeout``, which ``soft_fail`` and the
    sensors' no-retry-on-timeout rule act on."""


class BacalhauInputError(AirflowException):
    """The job's ``inputs`` could not be resolved or staged (S3 or Bacalhau I/O; a retry may work).

    :param message: what went wrong, naming the input.
    :param job_name: the name of the job the inputs were for (no job ID exists yet).
    """

    def __init__(self, message: str, *, job_name: str | None = None) -> None:
        super().__init__(message)
        self.job_name = job_name
        self.job_id: str | None = None


class BacalhauInvalidInputError(BacalhauInputError, AirflowFailException):
    """The ``inputs`` are misconfigured (e.g. no ``staging_bucket``): failed without retries."""


class BacalhauInvalidArgumentError(AirflowFailException, ValueError):
    """An operator argument, a job spec or a connection field is invalid: the task fails at once,
    without retries (a retry would meet the same value), and nothing has been submitted.

    Also a ``ValueError``, the project's type for bad arguments; the message names the field.
    """


@contextmanager
def invalid_arguments_fail(what: str) -> Iterator[None]:
    """Turn a ``ValueError`` (a ``SpecError`` included) raised inside into a
    :class:`BacalhauInvalidArgumentError` (no retries), its message prefixed with ``what``.
    Use it around checks of arguments and settings only, not around I/O."""
    try:
        yield
    except BacalhauInvalidArgumentError:
        raise
    except ValueError as exc:
        raise BacalhauInvalidArgumentError(f"{what}: {exc}") from exc


class TemplateErrorsFailMixin:
    """For operators and sensors: a Jinja error while Airflow renders the templated fields (an
    undefined param, a broken ``{{ }}``) fails the task without retries; it would fail again."""

    def template_error_location(self) -> str:
        """Where the templates are, for the message."""
        return f"the templated fields of task {getattr(self, 'task_id', '?')!r}"

    def render_template_fields(self, context: Any, jinja_env: Any = None) -> None:
        import jinja2

        try:
            super().render_template_fields(context, jinja_env)  # type: ignore[misc]
        except jinja2.TemplateError as exc:
            line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
            raise BacalhauInvalidArgumentError(
                f"Jinja template error in {self.template_error_location()}{line}: "
                f"{exc.__class__.__name__}: {exc}"
            ) from exc
