"""Sensors for Bacalhau jobs."""

from __future__ import annotations

from airflow_provider_bacalhau.sensors.job import BacalhauJobSensor

__all__ = ["BacalhauJobSensor"]
