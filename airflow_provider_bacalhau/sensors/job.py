"""``BacalhauJobSensor``: wait for an existing Bacalhau job to end, and return its results."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import BaseSensorOperator, PokeReturnValue

from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.failures import (
    BacalhauJobError,
    BacalhauSensorTimeoutError,
    TemplateErrorsFailMixin,
    invalid_arguments_fail,
)
from airflow_provider_bacalhau.links.job import BacalhauJobLink
from airflow_provider_bacalhau.spec._common import check_text
from airflow_provider_bacalhau.waiting import (
    DEFER_TIMEOUT_PADDING_SECONDS,
    JOB_ID_KEY,
    default_deferrable,
    event_from_response,
    is_transient,
)
from airflow_provider_bacalhau.waiting.completion import JobCompletionMixin


def _check_seconds(value: Any, name: str) -> None:
    """``poke_interval`` and ``timeout``: None (Airflow's default), a timedelta or seconds >= 0."""
    if value is None or isinstance(value, timedelta):
        return
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise ValueError(f"{name} must be a timedelta or a non-negative number of seconds, got {value!r}")


class BacalhauJobSensor(TemplateErrorsFailMixin, JobCompletionMixin, BaseSensorOperator):
    """Wait until a Bacalhau job is terminal; fail like the operators; return its published results.

    Works in poke/reschedule mode and deferrable mode (the same trigger and the same completion
    as :class:`~airflow_provider_bacalhau.operators.job.BacalhauJobOperator`). The sensor does not
    own the job: a timeout or a kill leaves it running. A timeout raises
    :class:`~airflow_provider_bacalhau.failures.BacalhauSensorTimeoutError`, an
    ``AirflowSensorTimeout`` (what ``soft_fail`` and the no-retry-on-timeout rule act on), in
    deferrable mode as in poke mode.

    :param job_id: job ID or name (templated).
    :param bacalhau_conn_id: Airflow connection to the Bacalhau API.
    :param namespace: the job's Bacalhau namespace (templated); default: the connection's.
    :param fail_on_nonzero_exit: fail when an execution exits non-zero.
    :param deferrable: wait in the triggerer (``poke_interval`` is the trigger's poll interval,
        ``timeout`` its deadline); default: the ``[operators] default_deferrable`` setting.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("job_id", "bacalhau_conn_id", "namespace")
    operator_extra_links = (BacalhauJobLink(),)
    ui_color = "#cfe8ff"
    stop_job_on_timeout: ClassVar[bool] = False
    timeout_error = BacalhauSensorTimeoutError

    def __init__(
        self,
        *,
        job_id: str,
        bacalhau_conn_id: str = "bacalhau_default",
        namespace: str | None = None,
        fail_on_nonzero_exit: bool = True,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        # Before Airflow's own check: Airflow 2.11 and 3.0 raise a plain AirflowException (which
        # is retried and does not say which sensor), 3.3 a ValueError; one message everywhere.
        with invalid_arguments_fail("BacalhauJobSensor"):
            for name in ("poke_interval", "timeout"):
                _check_seconds(kwargs.get(name), name)
        super().__init__(**kwargs)
        self.job_id = job_id
        self.bacalhau_conn_id = bacalhau_conn_id
        self.namespace = namespace
        self.fail_on_nonzero_exit = fail_on_nonzero_exit
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.bacalhau_job_id: str | None = None
        self.bacalhau_namespace: str | None = None

    def _read(self) -> dict | None:
        """The job's ``GET`` answer; None after a transient API error (try again later).

        Transient means the client's one policy (connection trouble, 429, 502/503/504): any other
        error, a lasting 500 included, fails the task now instead of polling until the timeout.
        """
        self.bacalhau_namespace = self.bacalhau_namespace or self.namespace or None
        try:
            with self.get_bacalhau_client() as client:
                return client.get_job(self.job_id)
        except BacalhauApiError as exc:
            if is_transient(exc):
                self.log.warning(
                    "Bacalhau job %s: transient API error, will look again: %s", self.job_id, exc
                )
                return None
            raise BacalhauJobError(
                f"Cannot read Bacalhau job {self.job_id!r}: {exc}", job_id=self.bacalhau_job_id
            ) from exc

    def _remember(self, context: Any, job_id: str) -> None:
        if self.bacalhau_job_id == job_id:
            return
        self.bacalhau_job_id = job_id
        context["ti"].xcom_push(key=JOB_ID_KEY, value=job_id)
        try:
            url = self.hook.job_url(job_id)
        except Exception:
            url = None
        BacalhauJobLink.persist(context, job_id, url)

    def poke(self, context: Any) -> bool | PokeReturnValue:
        from airflow_provider_bacalhau.spec import JobStatus

        response = self._read()
        if response is None:
            return False
        status = JobStatus.from_api(response)
        self._remember(context, status.job_id)
        if not status.is_terminal:
            self.log.info("Bacalhau job %s is %s", status.job_id, status.state.value)
            return False
        results = self.execute_complete(context, event_from_response(response, self.bacalhau_namespace))
        return PokeReturnValue(is_done=True, xcom_value=results)

    def execute(self, context: Any) -> Any:
        with invalid_arguments_fail("BacalhauJobSensor"):  # rendered values; the connection's fields
            self.job_id = check_text(self.job_id, "job_id", required=True).strip()
            check_text(self.namespace, "namespace")
            self.hook.client_config()
        if not self.deferrable:
            return super().execute(context)
        from airflow_provider_bacalhau.spec import JobStatus
        from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

        response = self._read()
        job_id = self.job_id
        if response is not None:
            status = JobStatus.from_api(response)
            job_id = status.job_id  # a name becomes the ID the trigger follows
            self._remember(context, job_id)
            if status.is_terminal:
                return self.execute_complete(context, event_from_response(response, self.bacalhau_namespace))
        wait = float(self.timeout)
        self.defer(
            trigger=BacalhauJobTrigger(
                job_id=job_id,
                bacalhau_conn_id=self.bacalhau_conn_id,
                namespace=self.bacalhau_namespace,
                poll_interval=float(self.poke_interval),
                deadline=time.time() + wait,
                stop_on_kill=False,
            ),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + DEFER_TIMEOUT_PADDING_SECONDS),
        )
