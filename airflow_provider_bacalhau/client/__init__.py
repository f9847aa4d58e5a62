"""Bacalhau REST client on httpx, sync and async, sharing one request/response core. No Airflow."""

from __future__ import annotations

from airflow_provider_bacalhau.client.aio import AsyncBacalhauClient, shared_http_client
from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.logs import LogChunk, LogTail
from airflow_provider_bacalhau.client.sync import BacalhauClient

__all__ = [
    "AsyncBacalhauClient",
    "BacalhauClient",
    "ClientConfig",
    "LogChunk",
    "LogTail",
    "shared_http_client",
]
