"""Extra links shown on Bacalhau tasks in the Airflow UI."""

from __future__ import annotations

from airflow_provider_bacalhau.links.job import BacalhauJobLink

__all__ = ["BacalhauJobLink"]
