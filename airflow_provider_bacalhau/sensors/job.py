"""``BacalhauJobSensor``: wait for an existing Bacalhau job to end, and return its results."""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import (
    AirflowException,
    AirflowSensorTimeout,
    BaseSensorOperator,
    PokeReturnValue,
)

from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.links.job import BacalhauJobLink
from airflow_provider_bacalhau.operators._base import DEFER_TIMEOUT_PADDING_SECONDS, JOB_ID_KEY, default_deferrable
from airflow_provider_bacalhau.operators._completion import (
    JobCompletionMixin,
    event_from_response,
    is_transient,
    validate_event,
)


class BacalhauJobSensor(JobCompletionMixin, BaseSensorOperator):
    """Wait until a Bacalhau job is terminal; fail like the operators; return its published results.

    Works in poke/reschedule mode and deferrable mode (the same trigger and the same completion
    as :class:`~airflow_provider_bacalhau.operators.job.BacalhauJobOperator`). The sensor does not
    own the job: a timeout or a kill leaves it running.

    :param job_id: job ID or name (templated).
    :param bacalhau_conn_id: Airflow connection to the Bacalhau API.
    :param fail_on_nonzero_exit: fail when an execution exits non-zero.
    :param deferrable: wait in the triggerer (``poke_interval`` is the trigger's poll interval,
        ``timeout`` its deadline); default: the ``[operators] default_deferrable`` setting.
    """

    template_fields: ClassVar[tuple[str, ...]] = ("job_id", "bacalhau_conn_id")
    operator_extra_links = (BacalhauJobLink(),)
    ui_color = "#cfe8ff"
    stop_job_on_timeout: ClassVar[bool] = False

    def __init__(
        self,
        *,
        job_id: str,
        bacalhau_conn_id: str = "bacalhau_default",
        fail_on_nonzero_exit: bool = True,
        deferrable: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.job_id = job_id
        self.bacalhau_conn_id = bacalhau_conn_id
        self.fail_on_nonzero_exit = fail_on_nonzero_exit
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.bacalhau_job_id: str | None = None

    def _read(self) -> dict | None:
        """The job's ``GET`` answer; None after a transient API error (try again later)."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        try:
            with BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id).get_client() as client:
                return client.get_job(self.job_id)
        except BacalhauApiError as exc:
            if is_transient(exc):
                self.log.warning("Bacalhau job %s: transient API error, will look again: %s", self.job_id, exc)
                return None
            raise AirflowException(f"Cannot read Bacalhau job {self.job_id!r}: {exc}") from exc

    def _remember(self, context: Any, job_id: str) -> None:
        if self.bacalhau_job_id == job_id:
            return
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        self.bacalhau_job_id = job_id
        context["ti"].xcom_push(key=JOB_ID_KEY, value=job_id)
        try:
            url = BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id).job_url(job_id)
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
        results = self.execute_complete(context, event_from_response(response))
        return PokeReturnValue(is_done=True, xcom_value=results)

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict]:
        """The shared completion; a ``timeout`` event ends like a poke-mode timeout.

        ``AirflowSensorTimeout`` (not a plain failure) is what ``soft_fail`` and the sensor's
        no-retry-on-timeout rule act on, in deferrable mode as in poke mode.
        """
        event = validate_event(event)
        try:
            return super().execute_complete(context, event)
        except AirflowException as exc:
            if event["status"] != "timeout" or isinstance(exc, AirflowSensorTimeout):
                raise
            raise AirflowSensorTimeout(str(exc)) from exc

    def execute(self, context: Any) -> Any:
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
                return self.execute_complete(context, event_from_response(response))
        wait = float(self.timeout)
        self.defer(
            trigger=BacalhauJobTrigger(job_id=job_id, bacalhau_conn_id=self.bacalhau_conn_id,
                                       poll_interval=float(self.poke_interval),
                                       deadline=time.time() + wait, stop_on_kill=False),
            method_name="execute_complete",
            timeout=timedelta(seconds=wait + DEFER_TIMEOUT_PADDING_SECONDS),
        )
