"""The Bacalhau job model: build, load (YAML/JSON, keys in any case), validate and serialise jobs;
job and execution states; published results.

Plain Python: no Airflow, no HTTP. Errors are :class:`SpecError` naming the dotted field path.

Names are resolved lazily (PEP 562): the sensor and the waiting path need a helper or the state
model on every DAG parse, not the whole job model.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_bacalhau._lazy import lazy_exports
from airflow_provider_bacalhau.errors import SpecError

if TYPE_CHECKING:
    from airflow_provider_bacalhau.spec.custom import CustomSpec
    from airflow_provider_bacalhau.spec.engines import (
        DockerEngine,
        NoopEngine,
        WasmEngine,
        engine_from_spec,
    )
    from airflow_provider_bacalhau.spec.model import JOB_TYPES, Job, Task, coerce_job
    from airflow_provider_bacalhau.spec.parts import (
        Constraint,
        Network,
        Resources,
        ResultPath,
        Timeouts,
    )
    from airflow_provider_bacalhau.spec.publishers import (
        PLACEHOLDERS,
        IPFSPublisher,
        LocalPublisher,
        NoopPublisher,
        S3ManagedPublisher,
        S3Publisher,
        publisher_from_spec,
    )
    from airflow_provider_bacalhau.spec.results import PublishedResult
    from airflow_provider_bacalhau.spec.sources import (
        InlineSource,
        InputSource,
        IPFSSource,
        LocalSource,
        S3Source,
        URLSource,
        source_from_spec,
    )
    from airflow_provider_bacalhau.spec.states import (
        DesiredState,
        Execution,
        ExecutionState,
        JobState,
        JobStatus,
        RunOutput,
    )

_EXPORTS = {
    "CustomSpec": "airflow_provider_bacalhau.spec.custom",
    "DockerEngine": "airflow_provider_bacalhau.spec.engines",
    "NoopEngine": "airflow_provider_bacalhau.spec.engines",
    "WasmEngine": "airflow_provider_bacalhau.spec.engines",
    "engine_from_spec": "airflow_provider_bacalhau.spec.engines",
    "JOB_TYPES": "airflow_provider_bacalhau.spec.model",
    "Job": "airflow_provider_bacalhau.spec.model",
    "Task": "airflow_provider_bacalhau.spec.model",
    "coerce_job": "airflow_provider_bacalhau.spec.model",
    "Constraint": "airflow_provider_bacalhau.spec.parts",
    "Network": "airflow_provider_bacalhau.spec.parts",
    "Resources": "airflow_provider_bacalhau.spec.parts",
    "ResultPath": "airflow_provider_bacalhau.spec.parts",
    "Timeouts": "airflow_provider_bacalhau.spec.parts",
    "IPFSPublisher": "airflow_provider_bacalhau.spec.publishers",
    "LocalPublisher": "airflow_provider_bacalhau.spec.publishers",
    "NoopPublisher": "airflow_provider_bacalhau.spec.publishers",
    "PLACEHOLDERS": "airflow_provider_bacalhau.spec.publishers",
    "S3ManagedPublisher": "airflow_provider_bacalhau.spec.publishers",
    "S3Publisher": "airflow_provider_bacalhau.spec.publishers",
    "publisher_from_spec": "airflow_provider_bacalhau.spec.publishers",
    "PublishedResult": "airflow_provider_bacalhau.spec.results",
    "IPFSSource": "airflow_provider_bacalhau.spec.sources",
    "InlineSource": "airflow_provider_bacalhau.spec.sources",
    "InputSource": "airflow_provider_bacalhau.spec.sources",
    "LocalSource": "airflow_provider_bacalhau.spec.sources",
    "S3Source": "airflow_provider_bacalhau.spec.sources",
    "URLSource": "airflow_provider_bacalhau.spec.sources",
    "source_from_spec": "airflow_provider_bacalhau.spec.sources",
    "DesiredState": "airflow_provider_bacalhau.spec.states",
    "Execution": "airflow_provider_bacalhau.spec.states",
    "ExecutionState": "airflow_provider_bacalhau.spec.states",
    "JobState": "airflow_provider_bacalhau.spec.states",
    "JobStatus": "airflow_provider_bacalhau.spec.states",
    "RunOutput": "airflow_provider_bacalhau.spec.states",
}

__all__ = [
    "JOB_TYPES",
    "PLACEHOLDERS",
    "Constraint",
    "CustomSpec",
    "DesiredState",
    "DockerEngine",
    "Execution",
    "ExecutionState",
    "IPFSPublisher",
    "IPFSSource",
    "InlineSource",
    "InputSource",
    "Job",
    "JobState",
    "JobStatus",
    "LocalPublisher",
    "LocalSource",
    "Network",
    "NoopEngine",
    "NoopPublisher",
    "PublishedResult",
    "Resources",
    "ResultPath",
    "RunOutput",
    "S3ManagedPublisher",
    "S3Publisher",
    "S3Source",
    "SpecError",
    "Task",
    "Timeouts",
    "URLSource",
    "WasmEngine",
    "coerce_job",
    "engine_from_spec",
    "publisher_from_spec",
    "source_from_spec",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
