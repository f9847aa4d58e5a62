"""DAG files import the operators, the sensor and the trigger on every parse: that must load
neither the S3 side nor the provider's HTTP clients and job model. benchmarks/import_cost.py
times it.

``import airflow`` itself (3.3) already loads httpx, yaml and re2, so "httpx is not in
sys.modules" would be untrue there for reasons not ours. What the provider controls is checked
instead: no third-party module beyond those Airflow's own base classes bring, and none of the
provider modules that import httpx, yaml, boto3 or the whole job model.
"""

from __future__ import annotations

import json
import subprocess
import sys

PROBE = """
import json, sys
import airflow
from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator
from airflow.triggers.base import BaseTrigger
before = set(sys.modules)
from airflow_provider_bacalhau.operators import (BacalhauDockerJobOperator,
    BacalhauFetchResultsOperator, BacalhauJobOperator, BacalhauS3StageOperator)
from airflow_provider_bacalhau.sensors.job import BacalhauJobSensor
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
print(json.dumps(sorted(set(sys.modules) - before)))
"""

#: Loaded only when a task runs: the S3 side, the HTTP clients and the job model with its loader.
NOT_AT_PARSE = (
    "boto3",
    "botocore",
    "obstore",
    "airflow_provider_bacalhau.client.core",
    "airflow_provider_bacalhau.client.responses",
    "airflow_provider_bacalhau.client.aio",
    "airflow_provider_bacalhau.client.sync",
    "airflow_provider_bacalhau.client.logs",
    "airflow_provider_bacalhau.spec.model",
    "airflow_provider_bacalhau.spec.loading",
    "airflow_provider_bacalhau.hooks.bacalhau",
    "airflow_provider_bacalhau.hooks.s3",
    "airflow_provider_bacalhau.dataplane",
    "airflow_provider_bacalhau.waiting.poller",
)


def _loaded_by_the_provider() -> list[str]:
    result = subprocess.run(
        [sys.executable, "-c", PROBE], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    loaded: list[str] = json.loads(result.stdout.strip().splitlines()[-1])
    return loaded


def test_parsing_a_dag_loads_no_client_s3_side_or_job_model():
    loaded = _loaded_by_the_provider()
    assert "airflow_provider_bacalhau.operators.s3" in loaded  # the probe sees what it imports
    assert [m for m in NOT_AT_PARSE if m in loaded] == []


def test_parsing_a_dag_loads_no_third_party_module_of_its_own():
    outside = [
        m
        for m in _loaded_by_the_provider()
        if m.split(".")[0] not in ("airflow_provider_bacalhau", "airflow")
    ]
    assert outside == []
