"""Import cost of the provider's operators, sensor and trigger, over ``import airflow``.

Each sample is a fresh interpreter: it imports ``airflow``, then (timed) all the operators, the
sensor and the trigger, and says which heavy modules got loaded (boto3 must not be). A second
figure takes away Airflow's own classes that they subclass (BaseOperator, BaseSensorOperator,
BaseTrigger), which any DAG file pays for anyway: what is left is the provider's own. Run::

    .venv/bin/python benchmarks/import_cost.py [--runs 9] [--budget-ms 50]

Wall and CPU time are both shown (on a shared machine the CPU figure is the steadier one), with the
machine's load average. The provider's bytecode is compiled first, as an installed wheel's is
(``uv pip install --compile-bytecode``): these machines set ``PYTHONDONTWRITEBYTECODE=1``, and a
source checkout would otherwise recompile every module in every sample. Exits 1 when the median
wall time over ``import airflow`` is above the budget or boto3 was loaded.
"""

from __future__ import annotations

import argparse
import compileall
import importlib.util
import json
import os
import statistics
import subprocess
import sys

PROBE = """
import json, sys, time
import airflow
started, cpu = time.perf_counter(), time.process_time()
{base}
based, based_cpu = time.perf_counter(), time.process_time()
from airflow_provider_bacalhau.operators import (BacalhauDockerJobOperator, BacalhauFetchResultsOperator,
    BacalhauJobOperator, BacalhauS3StageOperator)
from airflow_provider_bacalhau.sensors.job import BacalhauJobSensor
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
done, done_cpu = time.perf_counter(), time.process_time()
heavy = sorted(m for m in ("boto3", "botocore", "obstore", "httpx", "yaml", "re2") if m in sys.modules)
print(json.dumps({{"total_ms": (done - started) * 1000, "own_ms": (done - based) * 1000,
                  "total_cpu_ms": (done_cpu - cpu) * 1000, "own_cpu_ms": (done_cpu - based_cpu) * 1000,
                  "loaded": heavy}}))
"""
AIRFLOW_BASES = """
from airflow.providers.common.compat.sdk import BaseOperator, BaseSensorOperator
from airflow.triggers.base import BaseTrigger
"""


def sample(base: str) -> dict:
    done = subprocess.run(
        [sys.executable, "-c", PROBE.format(base=base)],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--budget-ms", type=float, default=50.0)
    args = parser.parse_args()
    spec = importlib.util.find_spec("airflow_provider_bacalhau")
    assert spec is not None and spec.submodule_search_locations, "airflow_provider_bacalhau is not importable"
    for folder in spec.submodule_search_locations:
        compileall.compile_dir(folder, quiet=1)
    print(
        f"package: {', '.join(spec.submodule_search_locations)}; "
        f"load average before: {os.getloadavg()[0]:.2f}"
    )
    sample("")  # warm the file cache
    over_airflow = [sample("") for _ in range(args.runs)]
    own = [sample(AIRFLOW_BASES) for _ in range(args.runs)]
    total = statistics.median(s["total_ms"] for s in over_airflow)
    total_cpu = statistics.median(s["total_cpu_ms"] for s in over_airflow)
    own_ms = statistics.median(s["own_ms"] for s in own)
    own_cpu = statistics.median(s["own_cpu_ms"] for s in own)
    loaded = over_airflow[-1]["loaded"]
    print(
        f"operators + sensor + trigger over `import airflow`: median {total:.1f} ms wall, "
        f"{total_cpu:.1f} ms CPU "
        f"(wall min {min(s['total_ms'] for s in over_airflow):.1f}, "
        f"max {max(s['total_ms'] for s in over_airflow):.1f}; "
        f"{args.runs} fresh interpreters); budget {args.budget_ms:.0f} ms"
    )
    print(
        f"the provider's own share (Airflow's base classes already imported): median {own_ms:.1f} ms wall, "
        f"{own_cpu:.1f} ms CPU"
    )
    print(
        f"heavy modules loaded: {', '.join(loaded) or 'none'}; load average after: {os.getloadavg()[0]:.2f}"
    )
    return 0 if total <= args.budget_ms and "boto3" not in loaded else 1


if __name__ == "__main__":
    sys.exit(main())
