"""Hooks: Airflow connections to clients.

Imported lazily (``from airflow_provider_bacalhau.hooks import BacalhauHook`` loads only that
hook), so using the Bacalhau API does not pull in boto3 and the amazon provider, and vice versa.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View
    from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
    from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

__all__ = ["BacalhauHook", "BacalhauS3Hook", "ComputeS3View"]

_HOMES = {
    "BacalhauHook": "airflow_provider_bacalhau.hooks.bacalhau",
    "BacalhauS3Hook": "airflow_provider_bacalhau.hooks.s3",
    "ComputeS3View": "airflow_provider_bacalhau.hooks._compute_s3",
}


def __getattr__(name: str) -> Any:
    if name in _HOMES:
        import importlib

        return getattr(importlib.import_module(_HOMES[name]), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
