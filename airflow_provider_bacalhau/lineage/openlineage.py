"""OpenLineage facets of Bacalhau tasks. Imports OpenLineage: load it only from the operators'
``get_openlineage_facets_on_*`` methods, which the OpenLineage provider calls."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from attrs import define, field
from openlineage.client.event_v2 import Dataset
from openlineage.client.facet_v2 import RunFacet, external_query_run

from airflow_provider_bacalhau.lineage.names import DatasetName

#: Where the ``bacalhau`` run facet's schema is described.
FACET_SCHEMA_URL = (
    "https://github.com/bacalhau-project/airflow-provider-bacalhau/blob/main/docs/lineage.rst"
    "#the-bacalhau-run-facet"
)


@define
class BacalhauJobRunFacet(RunFacet):
    """The Bacalhau job behind an Airflow task: ids, version, executions, image, Web UI link."""

    jobId: str
    jobName: str = ""
    namespace: str = ""
    jobVersion: int | None = None
    jobType: str = ""
    state: str = ""
    image: str = ""
    jobUrl: str = ""
    orchestrator: str = ""
    executions: list[dict[str, Any]] = field(factory=list)

    @staticmethod
    def _get_schema() -> str:
        return FACET_SCHEMA_URL


def _datasets(names: Iterable[DatasetName]) -> list[Dataset]:
    return [Dataset(namespace=n.namespace, name=n.name) for n in names]


def operator_lineage(
    inputs: Iterable[DatasetName] = (),
    outputs: Iterable[DatasetName] = (),
    job: dict[str, Any] | None = None,
) -> Any:
    """An ``OperatorLineage`` with these datasets and, given ``job`` (the fields of
    :func:`~airflow_provider_bacalhau.lineage.names.run_facet_fields`), the ``bacalhau`` and
    ``externalQuery`` run facets."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    run_facets: dict[str, Any] = {}
    if job and job.get("jobId"):
        run_facets["bacalhau"] = BacalhauJobRunFacet(**job)
        run_facets["externalQuery"] = external_query_run.ExternalQueryRunFacet(
            externalQueryId=job["jobId"],
            source=f"bacalhau://{job.get('orchestrator') or 'unknown'}",
        )
    return OperatorLineage(inputs=_datasets(inputs), outputs=_datasets(outputs), run_facets=run_facets)
