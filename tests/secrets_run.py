"""Run DAGs and failing connections in this (fresh) Airflow process, for ``tests/test_secrets.py``.

Usage: ``python tests/secrets_run.py PLAN_JSON``. The plan is
``{"runs": [{"dag_file", "dag_id", "conf"}...], "bad_conn_ids": {"bacalhau", "aws", "bacalhau_refused"}}``.
The caller sets the environment (AIRFLOW_HOME, connections holding the secrets, OpenLineage
transport) first: Airflow reads it at import time. Every DAG runs through ``dag.test()``; then the
connections pointing at a closed port, and one whose secret the API refuses, are used and their
exceptions printed (str, repr, every chained cause) so the caller can search them. A stdout line
``SECRETS-SUMMARY <json>`` gives each run's state and its task states.
"""

from __future__ import annotations

import json
import sys
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def exception_texts(exc: BaseException) -> list[str]:
    """str(), repr() and the formatted traceback of ``exc`` and of every cause and context."""
    texts, seen, todo = [], set(), [exc]
    while todo:
        current = todo.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        texts += [str(current), repr(current), *traceback.format_exception(current)]
        todo += [current.__cause__, current.__context__]
    return texts


def probe(label: str, call) -> None:
    try:
        result = call()
    except Exception as exc:  # noqa: BLE001 - any failure is what is being searched
        print(f"EXC-PROBE {label}:\n" + "\n".join(exception_texts(exc)), flush=True)
    else:
        print(f"EXC-PROBE {label} returned: {result!r}", flush=True)


def failing_connections(bacalhau_conn_id: str, aws_conn_id: str, refused_conn_id: str) -> None:
    from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook
    from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook

    hook = BacalhauHook(bacalhau_conn_id)
    probe("bacalhau test_connection", hook.test_connection)
    probe("bacalhau list_jobs", lambda: hook.get_client().list_jobs(limit=1))
    probe("bacalhau hook repr", lambda: repr(hook.client_config()))
    refused = BacalhauHook(refused_conn_id)
    probe("bacalhau refused test_connection", refused.test_connection)
    probe("bacalhau refused list_jobs", lambda: refused.get_client().list_jobs(limit=1))
    s3 = BacalhauS3Hook(aws_conn_id)
    probe("s3 object_exists", lambda: s3.object_exists("bacalhau-results", "missing"))


def main(plan_json: str) -> None:
    import e2e_helpers as e2e
    from airflow_helpers import init_airflow_db

    plan = json.loads(plan_json)
    init_airflow_db()
    summary = []
    for run_plan in plan["runs"]:
        dag = e2e.load_dag(Path(run_plan["dag_file"]), run_plan["dag_id"], sync=True)
        run = e2e.run_dag(dag, conf=run_plan["conf"])
        summary.append(
            {
                "dag_id": run.dag_id,
                "state": str(getattr(run.state, "value", run.state)),
                "tasks": {k: str(getattr(v, "value", v)) for k, v in e2e.task_states(run).items()},
            }
        )
    bad = plan["bad_conn_ids"]
    failing_connections(bad["bacalhau"], bad["aws"], bad["bacalhau_refused"])
    print("\nSECRETS-SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
