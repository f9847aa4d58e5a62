"""Run one DAG file through ``dag.test()`` in this (fresh) process, for the OpenLineage tests.

Usage: ``python tests/openlineage_run.py DAG_FILE DAG_ID CONF_JSON TASK_ID...``. The caller sets
the environment first (AIRFLOW_HOME, connections, the OpenLineage transport): Airflow reads it at
import time, which is why this runs in its own process. A stdout line ``LINEAGE-SUMMARY <json>``
gives: the run's state, the return values of the given tasks, and what the hook-lineage collector holds.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main(dag_file: str, dag_id: str, conf: str, *task_ids: str) -> None:
    import e2e_helpers as e2e
    from airflow_helpers import init_airflow_db

    init_airflow_db()
    dag = e2e.load_dag(Path(dag_file), dag_id, sync=True)
    run = e2e.run_dag(dag, conf=json.loads(conf))
    from airflow.providers.common.compat.lineage.hook import get_hook_lineage_collector

    collected = get_hook_lineage_collector().collected_assets
    summary = {
        "state": str(getattr(run.state, "value", run.state)),
        "xcom": {task: e2e.xcom(run, task) for task in task_ids},
        "collector": type(get_hook_lineage_collector()).__name__,
        "hook_inputs": sorted({info.asset.uri for info in collected.inputs}),
        "hook_outputs": sorted({info.asset.uri for info in collected.outputs}),
    }
    print("\nLINEAGE-SUMMARY " + json.dumps(summary), flush=True)


if __name__ == "__main__":
    main(*sys.argv[1:])
