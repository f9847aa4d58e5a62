"""The Bacalhau job model: build, load (YAML/JSON, keys in any case), validate and serialise jobs;
job and execution states; published results.

Plain Python: no Airflow, no HTTP. Errors are :class:`SpecError` naming the dotted field path.
"""

from __future__ import annotations

from airflow_provider_bacalhau.errors import SpecError
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
