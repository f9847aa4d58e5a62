"""The devstack's answers decode in Bacalhau's own generated Python client (``bacalhau-apiclient``
1.4.1, made by the Bacalhau project from its swagger): a shape that client cannot read is a shape a
real v1.9.3 server does not send (reference §16: ``AllocatedResources`` holds ``models.Resources``)."""

from __future__ import annotations

import json

import pytest
from bacalhau_apiclient.api_client import ApiClient
from devstack_helpers import JOBS, busybox_job, submit, unique, wait_for


class _Answer:
    """The one attribute ``ApiClient.deserialize`` reads from a response."""

    def __init__(self, body: bytes) -> None:
        self.data = body


def decode(body: bytes, model: str):
    return ApiClient().deserialize(_Answer(body), model)


@pytest.fixture
def finished_job(api, devstack):
    """A completed docker job with resources, an s3 gzip publisher and a result path."""
    job = busybox_job(
        "mkdir -p /outputs && echo hi > /outputs/a.txt",
        Resources={"CPU": "500m", "Memory": "64Mb", "Disk": "1Gi"},
        ResultPaths=[{"Name": "outputs", "Path": "/outputs"}],
        Publisher={
            "Type": "s3",
            "Params": {"Bucket": devstack.results_bucket, "Key": "gen-client/{jobID}/{executionID}"},
        },
    )
    job["Name"] = unique("gen-client")
    job_id = submit(api, job)["JobID"]
    assert wait_for(api, job_id, timeout=60)["Job"]["State"]["StateType"] == "Completed"
    return job_id


def test_allocated_resources_are_numbers_as_in_models_resources(api, finished_job):
    # pkg/models/resource.go (Resources): CPU float64 cores, Memory/Disk uint64 bytes, omitempty.
    body = api.get(f"{JOBS}/{finished_job}/executions").json()
    (execution,) = body["Items"]
    assert execution["AllocatedResources"]["Tasks"]["main"] == {
        "CPU": 0.5,
        "Memory": 64_000_000,
        "Disk": 2**30,
    }
    # The task's own resources stay the strings the user gave (models.ResourcesConfig).
    assert execution["Job"]["Tasks"][0]["Resources"]["CPU"] == "500m"


def test_every_answer_decodes_in_bacalhau_apiclient(api, finished_job):
    answers = {
        "ApiGetJobResponse": api.get(f"{JOBS}/{finished_job}", params={"include": "executions,history"}),
        "ApiListJobExecutionsResponse": api.get(f"{JOBS}/{finished_job}/executions"),
        "ApiListJobHistoryResponse": api.get(f"{JOBS}/{finished_job}/history"),
        "ApiListJobResultsResponse": api.get(f"{JOBS}/{finished_job}/results"),
        "ApiListJobsResponse": api.get(JOBS),
        "ApiListNodesResponse": api.get("/api/v1/orchestrator/nodes"),
        "NodeInfo": api.get("/api/v1/agent/node"),  # the response types of its OrchestratorApi and OpsApi
        "ApiGetVersionResponse": api.get("/api/v1/agent/version"),  # ops_api.py agent_version
    }
    for model, answer in answers.items():
        assert answer.status_code == 200, (model, answer.text)
        decoded = decode(answer.content, model)
        assert decoded is not None, model
    job = decode(answers["ApiGetJobResponse"].content, "ApiGetJobResponse")
    (execution,) = job.executions.items
    assert execution.allocated_resources.tasks["main"].cpu == 0.5
    assert execution.allocated_resources.tasks["main"].memory == 64_000_000
    (result,) = decode(answers["ApiListJobResultsResponse"].content, "ApiListJobResultsResponse").items
    assert result.type == "s3PreSigned"
    version = decode(answers["ApiGetVersionResponse"].content, "ApiGetVersionResponse")
    assert version.major == "1" and version.minor == "9"


def test_the_decoder_is_strict_enough_to_catch_the_old_shape():
    # The shape the devstack used to send (the job's strings copied into AllocatedResources).
    old = {
        "Items": [
            {"ID": "e-1", "AllocatedResources": {"Tasks": {"main": {"CPU": "500m", "Memory": "512mb"}}}}
        ]
    }
    with pytest.raises(ValueError, match="500m"):
        decode(json.dumps(old).encode(), "ApiListJobExecutionsResponse")
