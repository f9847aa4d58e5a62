"""Bacalhau REST client on httpx, sync and async, sharing one request/response core. No Airflow.

Names are resolved lazily (PEP 562): the waiting loop imports only :mod:`.retrying` from here on
every DAG parse, and must not pay for the clients and their HTTP machinery.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from airflow_provider_bacalhau._lazy import lazy_exports

if TYPE_CHECKING:
    from airflow_provider_bacalhau.client.aio import AsyncBacalhauClient, shared_http_client
    from airflow_provider_bacalhau.client.config import ClientConfig
    from airflow_provider_bacalhau.client.logs import LogChunk, LogTail
    from airflow_provider_bacalhau.client.sync import BacalhauClient

_EXPORTS = {
    "AsyncBacalhauClient": "airflow_provider_bacalhau.client.aio",
    "BacalhauClient": "airflow_provider_bacalhau.client.sync",
    "ClientConfig": "airflow_provider_bacalhau.client.config",
    "LogChunk": "airflow_provider_bacalhau.client.logs",
    "LogTail": "airflow_provider_bacalhau.client.logs",
    "shared_http_client": "airflow_provider_bacalhau.client.aio",
}

__all__ = [
    "AsyncBacalhauClient",
    "BacalhauClient",
    "ClientConfig",
    "LogChunk",
    "LogTail",
    "shared_http_client",
]


__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)
