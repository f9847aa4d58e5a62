"""A spec warning is logged once per build, however often the job is copied and validated.

One operator run validates the same spec objects several times (the build, the private copy,
the resolved inputs, the whole job with its inputs, the node-support look, the submit). Before,
each of those round trips parsed and validated again and the task log repeated every warning
four to six times.
"""

from __future__ import annotations

import contextlib
import logging
import time

from airflow_helpers import FakeTaskInstance, fake_context, record_logs

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.errors import BacalhauApiError
from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauJobOperator
from airflow_provider_bacalhau.spec import Job

LOGGER = "airflow_provider_bacalhau.spec"


def _count(messages: list[str], fragment: str) -> int:
    return sum(fragment in m for m in messages)


def _job_file(tmp_path, bucket: str, publisher: str = ""):
    path = tmp_path / "job.yaml"
    path.write_text(
        "Type: batch\n"
        "Tasks:\n"
        "  - Name: main\n"
        "    Engine: {Type: docker, Params: {Image: busybox, Parameters: ['true']}}\n"
        f"{publisher}"
        "    ResultPaths: [{Name: out, Path: /outputs}]\n"
        "    InputSources:\n"
        "      - Target: /in\n"
        f"        Source: {{Type: s3, Params: {{Bucket: {bucket}, Key: none/, VersionID: v1}}}}\n"
    )
    return path


def test_validating_a_job_again_or_its_copy_does_not_repeat_warnings(tmp_path, caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    job = Job.from_file(_job_file(tmp_path, "b"))
    job.validate()
    copied = job.copy()
    copied.to_dict()
    copied.validate()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert _count(messages, "Source.Params.VersionID is ignored") == 1, messages
    assert _count(messages, "ResultPaths is set but there is no Publisher") == 1, messages
    # the copy is independent: a change there is not seen in the original
    copied.task.input_sources.clear()
    assert len(job.task.input_sources) == 1


def test_a_changed_value_warns_again(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    job = Job.from_dict(
        {
            "Type": "batch",
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "docker", "Params": {"Image": "busybox"}},
                    "Publisher": {"Type": "s3", "Params": {"Bucket": "b", "Key": "out/{jobid}/"}},
                }
            ],
        }
    )
    job.task.publisher.key = "out/{nodeid}/"
    job.validate()
    job.validate()
    messages = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert _count(messages, "placeholder {jobid}") == 1, messages
    assert _count(messages, "placeholder {nodeid}") == 1, messages


def _submit(op, devstack) -> list[str]:
    ti = FakeTaskInstance(dag_id="warnonce", task_id=op.task_id, run_id=f"run-{time.time_ns()}")
    with record_logs() as logs:
        assert op.execute(fake_context(ti)) is None
    job_id = ti.xcoms["bacalhau_job_id"]
    # only the build matters here: stop the job unless it already ended (its input is missing)
    with (
        BacalhauClient(ClientConfig(base_url=devstack.api_url)) as client,
        contextlib.suppress(BacalhauApiError),
    ):
        client.stop_job(job_id, reason="test cleanup")
    return logs.messages()


def test_job_operator_with_a_job_file_logs_each_warning_once(devstack_env, tmp_path):
    bucket = devstack_env.results_bucket
    publisher = f"    Publisher: {{Type: s3, Params: {{Bucket: {bucket}, Key: 'warnonce/{{jobid}}/'}}}}\n"
    op = BacalhauJobOperator(
        task_id="jobfile",
        job=str(_job_file(tmp_path, bucket, publisher)),
        wait_for_termination=False,
        node_support_check="warn",
    )
    messages = _submit(op, devstack_env)
    assert _count(messages, "Source.Params.VersionID is ignored by Bacalhau: Key 'none/'") == 1, messages
    assert _count(messages, "placeholder {jobid} is not replaced") == 1, messages


def test_docker_operator_with_inputs_logs_each_warning_once(devstack_env):
    bucket = devstack_env.results_bucket
    op = BacalhauDockerJobOperator(
        task_id="docker",
        image="busybox",
        parameters=["true"],
        wait_for_termination=False,
        publisher=f"s3://{bucket}/warnonce/{{jobid}}/",
        inputs={"Type": "s3", "Params": {"Bucket": bucket, "Key": "none.csv", "Filter": "x.*"}},
    )
    messages = _submit(op, devstack_env)
    assert _count(messages, "placeholder {jobid} is not replaced") == 1, messages
    assert _count(messages, "Filter is ignored by Bacalhau: Key 'none.csv'") == 1, messages
