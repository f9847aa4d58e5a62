"""The operators and the sensor in real Airflow runs (``dag.test()``, triggers run inline)."""

from __future__ import annotations

from datetime import datetime

import pytest
from airflow.providers.common.compat.sdk import DAG
from airflow_helpers import AIRFLOW_V3, airflow_db, run_dag, unique_dag_id  # noqa: F401  (airflow_db: fixture)

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.links.job import BacalhauJobLink
from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauJobOperator
from airflow_provider_bacalhau.sensors import BacalhauJobSensor
from airflow_provider_bacalhau.spec import JobStatus

JOB_FILE = """\
Type: batch
Count: 1
Tasks:
  - Name: main
    Engine:
      Type: docker
      Params:
        Image: busybox
        Entrypoint: ["sh", "-c"]
        Parameters:
          - "ls /inputs > /outputs/listing.txt; cat /inputs/outputs/greeting.txt; echo run={{ params.word }}"
    Publisher:
      Type: s3
      Params:
        Bucket: {{ params.bucket }}
        Key: "dagtest/second/{jobID}/"
        Encoding: plain
    ResultPaths:
      - Name: outputs
        Path: /outputs
"""


@pytest.mark.slow
def test_chained_run_deferrable_templated_file_sensor_and_link(airflow_db, devstack_env, devstack, tmp_path):
    (tmp_path / "second.yaml").write_text(JOB_FILE)
    with DAG(
        unique_dag_id("bacalhau_chain"),
        schedule=None,
        start_date=datetime(2024, 1, 1),
        template_searchpath=[str(tmp_path)],
        params={"word": "default", "bucket": devstack.results_bucket},
    ) as dag:
        first = BacalhauDockerJobOperator(
            task_id="first",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters=["echo hello-{{ params.word }} > /outputs/greeting.txt"],
            publisher={
                "type": "s3",
                "bucket": devstack.results_bucket,
                "key": "dagtest/first/{jobID}/",
                "encoding": "plain",
            },
            deferrable=True,
            poll_interval=0.5,
            timeout=120,
        )
        second = BacalhauJobOperator(
            task_id="second",
            job="second.yaml",
            inputs=first.output,
            deferrable=False,
            poll_interval=0.3,
            timeout=120,
        )
        watch = BacalhauJobSensor(
            task_id="watch",
            deferrable=True,
            poke_interval=0.5,
            timeout=120,
            job_id="{{ ti.xcom_pull(task_ids='second', key='bacalhau_job_id') }}",
        )
        first >> second >> watch

    result = run_dag(dag, run_conf={"word": "fromui"})
    assert result.ti_states == {"first": "success", "second": "success", "watch": "success"}, result.ti_states

    [published] = result.xcom("first")
    assert published["Type"] == "s3" and published["JobID"] == result.xcom("first", key="bacalhau_job_id")
    s3 = devstack.s3_client()
    greeting = s3.get_object(
        Bucket=devstack.results_bucket, Key=published["Params"]["Key"] + "outputs/greeting.txt"
    )
    assert greeting["Body"].read() == b"hello-fromui\n"  # params of the triggered run reached the job

    [second_result] = result.xcom("second")
    stdout = s3.get_object(Bucket=devstack.results_bucket, Key=second_result["Params"]["Key"] + "stdout")
    assert stdout["Body"].read().decode().splitlines() == ["hello-fromui", "run=fromui"]
    assert result.xcom("watch") == result.xcom("second")  # the sensor returns the same results

    # The extra link, read the way the UI reads it: Airflow 3's API server from the serialized DAG
    # (the stored xcom_key string), Airflow 2's webserver through the operator's link.
    link = BacalhauJobLink()
    for task_id in ("first", "second", "watch"):
        job_id = result.xcom(task_id, key="bacalhau_job_id")
        ti_key = result.ti(task_id).key
        if AIRFLOW_V3:
            try:
                from airflow.serialization.definitions.operatorlink import XComOperatorLink
            except ImportError:  # Airflow < 3.1
                from airflow.serialization.serialized_objects import XComOperatorLink

            shown = XComOperatorLink(name=link.name, xcom_key=link.xcom_key).get_link(
                dag.get_task(task_id), ti_key=ti_key
            )
        else:
            shown = dag.get_task(task_id).get_extra_links(result.ti(task_id), link.name)
        assert shown == f"{devstack.webui_url}/jobs/{job_id}"


@pytest.mark.slow
def test_failed_job_fails_the_task_in_a_real_run(airflow_db, devstack_env):
    with DAG(unique_dag_id("bacalhau_fail"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        BacalhauDockerJobOperator(
            task_id="boom",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters=["echo nope >&2; exit 5"],
            deferrable=True,
            poll_interval=0.3,
            timeout=60,
        )
    result = run_dag(dag)
    assert result.ti_states == {"boom": "failed"}
    assert result.xcom("boom", key="bacalhau_job_id").startswith("j-")


@pytest.mark.slow
def test_mapped_tasks_get_one_job_each_and_results_expand(airflow_db, devstack_env, devstack):
    publisher = {
        "type": "s3",
        "bucket": devstack.results_bucket,
        "key": "mapped/{jobID}/",
        "encoding": "plain",
    }
    with DAG(unique_dag_id("bacalhau_mapped"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        make = BacalhauDockerJobOperator.partial(
            task_id="make",
            image="busybox",
            entrypoint=["sh", "-c"],
            publisher=publisher,
            deferrable=False,
            poll_interval=0.3,
        ).expand(parameters=[["echo part-a > /outputs/p.txt"], ["echo part-b > /outputs/p.txt"]])
        BacalhauJobOperator.partial(
            task_id="use",
            deferrable=False,
            poll_interval=0.3,
            job={
                "Type": "batch",
                "Tasks": [
                    {
                        "Name": "main",
                        "Engine": {
                            "Type": "docker",
                            "Params": {
                                "Image": "busybox",
                                "Entrypoint": ["sh", "-c"],
                                "Parameters": ["cat /inputs/outputs/p.txt"],
                            },
                        },
                    }
                ],
            },
        ).expand(inputs=make.output)

    result = run_dag(dag)
    assert result.ti_states == {
        "make[0]": "success",
        "make[1]": "success",
        "use[0]": "success",
        "use[1]": "success",
    }, result.ti_states
    job_ids = {result.xcom(t, key="bacalhau_job_id", map_index=i) for t in ("make", "use") for i in (0, 1)}
    assert len(job_ids) == 4  # one job per mapped task instance
    by_id = {job["ID"]: job for job in devstack.jobs()}
    outputs = []
    for i in (0, 1):
        job_id = result.xcom("use", key="bacalhau_job_id", map_index=i)
        with BacalhauClient(ClientConfig(base_url=devstack.api_url)) as client:
            status = JobStatus.from_api(client.get_job(job_id))
        outputs.append(status.executions[0].run_output.stdout.strip())
        assert by_id[job_id]["Name"].endswith(f"-{i}") or f"-{i}-" in by_id[job_id]["Name"]
    assert outputs == ["part-a", "part-b"]
