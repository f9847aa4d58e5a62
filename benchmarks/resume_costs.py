"""Two costs a deferred task pays on every resume, in a fresh interpreter each sample.

- the hook-lineage check (``collector_is_active``), after Airflow has loaded its plugins as a task
  process does at start (the listener manager);
- building one Bacalhau client for an ``http://`` API.

Run::

    PYTHONPATH=$PWD .venv/bin/python benchmarks/resume_costs.py [--runs 5] [--baseline DIR]

``--baseline DIR`` times another copy of the package as well (DIR holds its
``airflow_provider_bacalhau``, say ``git archive main airflow_provider_bacalhau | tar -x -C DIR``),
samples interleaved, so that before and after see the same machine load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

PROBE = """
import json, sys, time
import airflow
from airflow.listeners.listener import get_listener_manager
get_listener_manager()  # a task process loads its plugins here, before the task runs
from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.lineage import assets
t = time.perf_counter()
active = assets.collector_is_active()
lineage = time.perf_counter() - t
t = time.perf_counter()
BacalhauClient(ClientConfig(base_url="http://127.0.0.1:1234")).close()
client = time.perf_counter() - t
print(json.dumps({"lineage_ms": lineage * 1e3, "client_ms": client * 1e3, "active": active,
                  "boto3": "boto3" in sys.modules}))
"""


def sample(path: str, home: str) -> dict:
    env = {**os.environ, "PYTHONPATH": path, "AIRFLOW_HOME": home, "AIRFLOW__CORE__LOAD_EXAMPLES": "False"}
    # cwd: with -c, the working directory comes first on sys.path and would shadow PYTHONPATH.
    out = subprocess.run(
        [sys.executable, "-c", PROBE], env=env, cwd=home, capture_output=True, text=True, check=True
    )
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--baseline", help="a directory holding another airflow_provider_bacalhau")
    args = parser.parse_args()
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    copies = {"this": here, **({"baseline": os.path.abspath(args.baseline)} if args.baseline else {})}
    samples: dict[str, list[dict]] = {name: [] for name in copies}
    with tempfile.TemporaryDirectory(prefix="resume-costs-") as home:
        for _ in range(args.runs):
            for name, path in copies.items():
                samples[name].append(sample(path, home))
    import airflow

    print(f"Airflow {airflow.__version__}, {args.runs} runs, median")
    for name, rows in samples.items():
        lineage = statistics.median(r["lineage_ms"] for r in rows)
        client = statistics.median(r["client_ms"] for r in rows)
        boto3 = any(r["boto3"] for r in rows)
        print(
            f"{name:>8}: lineage check {lineage:7.1f} ms, http client {client:6.2f} ms, boto3 loaded: {boto3}"
        )


if __name__ == "__main__":
    main()
