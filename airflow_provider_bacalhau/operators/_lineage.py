"""Lineage of the job operators: OpenLineage facets, hook lineage and outlet asset events.

Everything is read from the finished job, as Bacalhau holds it: its InputSources (the resolved
inputs: staged prefixes, chained results, re-staged copies) and its executions' published
results (keys with the placeholders filled). A deferred task resumes in a new process, so
nothing from before the deferral is relied on. The names and facets are built in
:mod:`airflow_provider_bacalhau.lineage`; lineage never fails a task.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from airflow_provider_bacalhau.waiting import JOB_ID_KEY


class JobLineageMixin:
    """For :class:`~airflow_provider_bacalhau.operators._base.BaseBacalhauJobOperator`: the host
    provides ``hook``, ``get_bacalhau_client``, ``bacalhau_job_id``, ``outlets`` and ``log``."""

    # Provided by the host class (annotations only: nothing here shadows them).
    hook: Any
    log: logging.Logger
    outlets: Any
    bacalhau_job_id: str | None
    get_bacalhau_client: Callable[..., Any]

    _lineage_job: dict | None = None

    def execute_complete(self, context: Any, event: dict[str, Any] | None = None) -> list[dict]:
        results = super().execute_complete(context, event)  # type: ignore[misc]
        self._report_assets(context, results)
        return results

    # -- Airflow assets ----------------------------------------------------------------------
    def _report_assets(self, context: Any, results: list[dict]) -> None:
        from airflow_provider_bacalhau.lineage import assets, names

        job_id = self.bacalhau_job_id or ""
        uris = assets.emit_outlet_events(context, self.outlets, results, job_id, self._orchestrator())
        for uri in uris:
            self.log.info("Asset event for Bacalhau job %s: %s", job_id, uri)
        if not assets.collector_is_active():  # nobody reads hook lineage: skip the API call
            return
        job = self._finished_job(job_id)
        outputs = [
            n
            for n in (names.result_dataset(r) for r in results)
            if n is not None and n.namespace.startswith("s3://")
        ]
        assets.record(self.hook, inputs=names.job_inputs(job) if job else [], outputs=outputs)

    # -- OpenLineage -------------------------------------------------------------------------
    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """Inputs, published outputs and the ``bacalhau`` run facet of the finished job."""
        return self._openlineage(task_instance)

    def get_openlineage_facets_on_failure(self, task_instance: Any) -> Any:
        """What the job read (and published, if anything) when the task failed."""
        return self._openlineage(task_instance)

    def _openlineage(self, task_instance: Any) -> Any:
        from airflow_provider_bacalhau.lineage import names
        from airflow_provider_bacalhau.lineage.openlineage import operator_lineage
        from airflow_provider_bacalhau.spec import JobStatus

        job = self._finished_job(self.bacalhau_job_id or _pushed_job_id(task_instance))
        if not job:  # failed before a job existed: nothing known
            return operator_lineage()
        orchestrator = self._orchestrator()
        status = JobStatus.from_api(job)
        try:
            url = self.hook.job_url(status.job_id)
        except Exception:  # a link is a convenience
            self.log.debug("no Web UI link for %s", status.job_id, exc_info=True)
            url = None
        return operator_lineage(
            names.job_inputs(job),
            names.job_outputs(status, orchestrator),
            names.run_facet_fields(job, url, orchestrator),
        )

    # -- what both read ----------------------------------------------------------------------
    def _finished_job(self, job_id: str | None) -> dict | None:
        """``GET /jobs/{id}?include=executions`` once per task instance; None when unknown."""
        if self._lineage_job is None and job_id:
            try:
                with self.get_bacalhau_client() as client:
                    self._lineage_job = client.get_job(job_id, include=("executions",))
            except Exception as exc:  # noqa: BLE001 (lineage never fails a task; the reason is logged)
                self.log.warning("Lineage: could not read Bacalhau job %s: %s", job_id, exc)
        return self._lineage_job

    def _orchestrator(self) -> str:
        from airflow_provider_bacalhau.lineage.names import orchestrator_host

        try:
            return orchestrator_host(self.hook.client_config().base_url)
        except Exception:  # e.g. no connection: the s3managed names say "unknown"
            self.log.debug("no orchestrator address for lineage", exc_info=True)
            return ""


def _pushed_job_id(task_instance: Any) -> str | None:
    """The job ID the task pushed before waiting (a task that failed while deferred resumes in a
    fresh operator)."""
    try:
        value = task_instance.xcom_pull(task_ids=task_instance.task_id, key=JOB_ID_KEY)
    except Exception:
        logging.getLogger(__name__).debug("no job ID in XCom", exc_info=True)
        return None
    return value if isinstance(value, str) and value else None
