"""OpenLineage events of real DAG runs: the OpenLineage provider with a file transport, the
example pipeline on the devstack through ``dag.test()``, each run in its own Airflow process
(the provider reads its configuration at import time; the rest of the suite runs with it off).

Also: without the OpenLineage packages importable, the operators import, run and emit nothing.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import e2e_helpers as e2e
import pytest

from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNNER = Path(__file__).resolve().parent / "openlineage_run.py"
ENV_SECRET = "env-value-Zq81-must-not-reach-lineage"


def run_in_airflow(
    devstack,
    tmp_path: Path,
    dag_file: Path,
    dag_id: str,
    conf: dict,
    tasks: list[str],
    *,
    openlineage: bool = True,
    block_openlineage: bool = False,
):
    """Run ``dag_id`` in a fresh Airflow process; returns (summary, OpenLineage events, output)."""
    events_file = tmp_path / "openlineage.jsonl"
    home = tmp_path / "airflow-home"
    home.mkdir()
    env = {
        **os.environ,
        **devstack.env(),
        # The AWS side through an identity whose secret is hunted for in every event.
        "AIRFLOW_CONN_AWS_DEFAULT": devstack.aws_conn_json(SECRET_IDENTITY),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dag_file.parent),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        "BACALHAU_EXAMPLES_POLL_INTERVAL": "1",
        "PYTHONPATH": os.pathsep.join([str(e2e.REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    if openlineage:
        env["AIRFLOW__OPENLINEAGE__DISABLED"] = "False"
        env["AIRFLOW__OPENLINEAGE__TRANSPORT"] = json.dumps(
            {"type": "file", "log_file_path": str(events_file), "append": True}
        )
        env["AIRFLOW__OPENLINEAGE__NAMESPACE"] = "bacalhau-tests"
    command = [
        sys.executable,
        str(RUNNER),
        str(dag_file),
        dag_id,
        json.dumps(conf),
        *tasks,
    ]
    if block_openlineage:
        command = [sys.executable, "-c", BLOCKER, *command[1:]]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=600, check=False)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, e2e.tail(out)
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("LINEAGE-SUMMARY ")]
    summary = json.loads(line.split(" ", 1)[1])
    (tmp_path / "run.log").write_text(out)  # kept for a failing test's reader
    events = (
        [json.loads(line) for line in events_file.read_text().splitlines()] if events_file.exists() else []
    )
    return summary, events, out


# Runs the runner as if the OpenLineage packages were not installed: their distributions are
# hidden from package metadata (Airflow finds providers through entry points) and every
# ``openlineage`` / ``airflow.providers.openlineage`` import is refused and recorded.
BLOCKER = textwrap.dedent("""
    import importlib.abc, importlib.metadata, runpy, sys
    BLOCKED = ("openlineage", "airflow.providers.openlineage")
    refused = []
    class Blocker(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name in BLOCKED or name.startswith(tuple(b + "." for b in BLOCKED)):
                refused.append(name)
                raise ModuleNotFoundError(f"No module named {name!r} (blocked by the test)", name=name)
            return None
    sys.meta_path.insert(0, Blocker())
    def hiding(everything):
        def installed(**kwargs):
            for dist in everything(**kwargs):
                if "openlineage" not in (dist.metadata["Name"] or "").lower():
                    yield dist
        return installed
    importlib.metadata.distributions = hiding(importlib.metadata.distributions)
    try:  # Airflow reads entry points through the backport when it is installed
        import importlib_metadata
        importlib_metadata.distributions = hiding(importlib_metadata.distributions)
    except ImportError:
        pass
    sys.argv = sys.argv[1:]
    try:
        runpy.run_path(sys.argv[0], run_name="__main__")
    finally:
        loaded = sorted(m for m in sys.modules if m.split(".")[0] == "openlineage"
                        or m.startswith("airflow.providers.openlineage"))
        print("BLOCKED-IMPORTS", sorted(set(refused))[:3], "LOADED", loaded)
""")


def complete_events(events: list[dict]) -> dict[str, dict]:
    """The COMPLETE event of each task, by task id."""
    found = {}
    for event in events:
        job = event.get("job", {}).get("name", "")
        if event.get("eventType") == "COMPLETE" and "." in job:
            found[job.split(".", 1)[1]] = event
    return found


def names(datasets: list[dict]) -> list[tuple[str, str]]:
    return [(d["namespace"], d["name"]) for d in datasets]


def test_pipeline_events_name_the_staged_published_and_chained_datasets(devstack, tmp_path):
    e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
    conf = {
        "stage_prefix": "staging/sales-lineage/",
        "download_dir": str(tmp_path / "downloads"),
    }
    summary, events, out = run_in_airflow(
        devstack,
        tmp_path,
        e2e.EXAMPLES / "example_bacalhau_s3_pipeline.py",
        "example_bacalhau_s3_pipeline",
        conf,
        ["stage_sales", "clean_sales", "sum_by_region", "fetch_totals"],
    )
    assert summary["state"] == "success", e2e.tail(out)
    tasks = complete_events(events)
    assert {"stage_sales", "clean_sales", "sum_by_region", "fetch_totals"} <= set(tasks), sorted(tasks)
    (a,) = summary["xcom"]["clean_sales"]
    (b,) = summary["xcom"]["sum_by_region"]
    bucket = f"s3://{e2e.EXAMPLE_BUCKET}"
    # Named as the amazon provider names S3 datasets: a prefix without its trailing "/".
    a_key, b_key = a["Params"]["Key"].rstrip("/"), b["Params"]["Key"]
    assert "{" not in a_key + b_key  # the placeholders are filled: the keys the nodes wrote

    # One file is staged as the object itself (with its checksum), not as a prefix.
    staged_key = summary["xcom"]["stage_sales"]["Params"]["Key"]
    assert staged_key == "staging/sales-lineage/sales.csv"
    stage = tasks["stage_sales"]
    assert names(stage["inputs"]) == [("file", str(e2e.EXAMPLES / "data" / "sales.csv"))]
    assert names(stage["outputs"]) == [(bucket, staged_key)]

    clean = tasks["clean_sales"]
    assert names(clean["inputs"]) == [(bucket, staged_key)]  # what was staged
    assert names(clean["outputs"]) == [(bucket, a_key)]
    facet = clean["run"]["facets"]["bacalhau"]
    assert facet["jobId"] == a["JobID"] and facet["state"] == "Completed"
    assert facet["jobVersion"] >= 1 and facet["image"] == "busybox:1.37.0"
    assert facet["jobUrl"] == f"{devstack.webui_url}/jobs/{a['JobID']}"
    assert facet["orchestrator"] == f"{devstack.api_host}:{devstack.api_port}"
    (execution,) = facet["executions"]
    assert execution["executionId"] == a["ExecutionID"] and execution["nodeId"]
    assert execution["exitCode"] == 0
    assert clean["run"]["facets"]["externalQuery"]["externalQueryId"] == a["JobID"]

    total = tasks["sum_by_region"]
    assert names(total["inputs"]) == [(bucket, a_key)]  # the chained result, as job A published it
    assert names(total["outputs"]) == [(bucket, b_key)] and b_key.endswith(".tar.gz")

    fetched = tasks["fetch_totals"]
    assert names(fetched["inputs"]) == [(bucket, b_key)]
    assert names(fetched["outputs"]) == [("file", p) for p in summary["xcom"]["fetch_totals"]]

    # The hook-lineage collector (active with the OpenLineage provider) saw the staged prefix and
    # the published S3 results.
    assert summary["collector"] == "HookLineageCollector"
    assert f"{bucket}/{staged_key}" in summary["hook_outputs"]
    assert f"{bucket}/{a_key}" in summary["hook_outputs"]
    assert f"{bucket}/{a_key}" in summary["hook_inputs"]

    text = json.dumps(events)
    for secret in (SECRET_IDENTITY.secret_key, devstack.aws_secret_access_key):
        assert secret not in text


def test_events_of_a_job_with_env_and_of_a_failed_job(devstack, tmp_path):
    """No env value reaches an event; a failed job's FAIL event names its inputs and its state."""
    dag_file = tmp_path / "dags" / "lineage_env_dag.py"
    dag_file.parent.mkdir()
    dag_file.write_text(
        textwrap.dedent(f"""
        import pendulum
        from airflow.providers.common.compat.sdk import DAG
        from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator

        with DAG("lineage_env", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
            BacalhauDockerJobOperator(
                task_id="uses_env", image="busybox:1.37.0", entrypoint=["sh", "-c"],
                parameters=['test -n "$TOKEN" && echo token is set'],
                env={{"TOKEN": "{ENV_SECRET}"}}, inputs="s3://{e2e.EXAMPLE_BUCKET}/staging/",
                poll_interval=1)
            BacalhauDockerJobOperator(
                task_id="fails", image="busybox:1.37.0", entrypoint=["sh", "-c"], parameters=["exit 3"],
                inputs="s3://{e2e.EXAMPLE_BUCKET}/staging/", poll_interval=1, retries=0)
    """)
    )
    e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
    summary, events, out = run_in_airflow(devstack, tmp_path, dag_file, "lineage_env", {}, [])
    assert summary["state"] == "failed", e2e.tail(out)  # "fails" failed, as it should
    event = complete_events(events)["uses_env"]
    assert names(event["inputs"]) == [(f"s3://{e2e.EXAMPLE_BUCKET}", "staging")]
    assert event["run"]["facets"]["bacalhau"]["state"] == "Completed"
    assert ENV_SECRET not in json.dumps(events)

    (failed,) = [e for e in events if e.get("eventType") == "FAIL" and e["job"]["name"].endswith(".fails")]
    assert names(failed["inputs"]) == [(f"s3://{e2e.EXAMPLE_BUCKET}", "staging")]
    assert failed["outputs"] == []
    facet = failed["run"]["facets"]["bacalhau"]
    assert [x["exitCode"] for x in facet["executions"]] == [3]


def test_without_openlineage_importable_the_operators_run_and_import_none_of_it(devstack, tmp_path):
    e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
    conf = {
        "stage_prefix": "staging/sales-no-ol/",
        "download_dir": str(tmp_path / "downloads"),
    }
    summary, events, out = run_in_airflow(
        devstack,
        tmp_path,
        e2e.EXAMPLES / "example_bacalhau_s3_pipeline.py",
        "example_bacalhau_s3_pipeline",
        conf,
        ["sum_by_region"],
        openlineage=False,
        block_openlineage=True,
    )
    assert summary["state"] == "success", e2e.tail(out)
    assert len(summary["xcom"]["sum_by_region"]) == 1
    assert summary["collector"] == "NoOpCollector"
    marker = next(line for line in out.splitlines() if line.startswith("BLOCKED-IMPORTS"))
    assert "LOADED []" in marker, marker  # nothing of OpenLineage was imported
    assert events == []
