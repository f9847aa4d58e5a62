"""Apache Airflow provider for Bacalhau.

Kept import-light on purpose: DAG files are parsed constantly, so nothing here imports Airflow,
httpx or boto3. Import the classes from their modules (``airflow_provider_bacalhau.operators``...).
"""

from __future__ import annotations

__version__ = "0.1.0"


def get_provider_info() -> dict:
    from airflow_provider_bacalhau.provider_info import provider_info

    return provider_info()
