"""Triggers (run in the Airflow triggerer) for Bacalhau jobs."""

from __future__ import annotations

from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

__all__ = ["BacalhauJobTrigger"]
