"""Bacalhau operators.

Names are resolved lazily (PEP 562) so that importing this package while parsing DAG files stays
cheap and does not pull in the S3 side unless it is used.
"""

from __future__ import annotations

from airflow_provider_bacalhau._lazy import lazy_exports

_EXPORTS = {
    "BaseBacalhauJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauDockerJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauS3StageOperator": "airflow_provider_bacalhau.operators.s3",
    "BacalhauFetchResultsOperator": "airflow_provider_bacalhau.operators.s3",
}

__all__ = sorted(_EXPORTS)


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
