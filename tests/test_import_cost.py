"""DAG files import the operators, the sensor and the trigger on every parse: that must not load
the S3 side (boto3, botocore, obstore). benchmarks/import_cost.py times it."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("boto3", "botocore", "obstore")


def test_operators_sensor_and_trigger_load_no_s3_library():
    code = (
        "import sys\n"
        "from airflow_provider_bacalhau.operators import (BacalhauDockerJobOperator,\n"
        "    BacalhauFetchResultsOperator, BacalhauJobOperator, BacalhauS3StageOperator)\n"
        "from airflow_provider_bacalhau.sensors.job import BacalhauJobSensor\n"
        "from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger\n"
        "assert 'airflow_provider_bacalhau.operators.s3' in sys.modules  # the check sees imports\n"
        f"print(sorted(m for m in {HEAVY!r} if m in sys.modules))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", code], check=False, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[]"
