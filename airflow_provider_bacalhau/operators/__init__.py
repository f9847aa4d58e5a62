"""Bacalhau operators.

Names are resolved lazily (PEP 562) so that importing this package while parsing DAG files stays
cheap and does not pull in the S3 side unless it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "BaseBacalhauJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauDockerJobOperator": "airflow_provider_bacalhau.operators.job",
    "BacalhauS3StageOperator": "airflow_provider_bacalhau.operators.s3",
    "BacalhauFetchResultsOperator": "airflow_provider_bacalhau.operators.s3",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_EXPORTS))
