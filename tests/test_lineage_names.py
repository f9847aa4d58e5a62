"""Dataset names and the run facet, from the job answers Bacalhau gives (no Airflow run needed)."""

from __future__ import annotations

import json

import pytest
from airflow.providers.amazon.aws.assets.s3 import (
    convert_asset_to_openlineage,
    create_asset,
)

from airflow_provider_bacalhau.lineage import names
from airflow_provider_bacalhau.spec import PublishedResult

ENV_SECRET = "env-value-that-must-stay-out"


def finished_job(**job: object) -> dict:
    """A ``GET /jobs/{id}?include=executions`` answer of a completed one-task job."""
    spec = {
        "ID": "j-1",
        "Name": "airflow-dag-task",
        "Namespace": "default",
        "Type": "batch",
        "Version": 2,
        "State": {"StateType": "Completed"},
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "busybox:1.37.0",
                        "EnvironmentVariables": [f"TOKEN={ENV_SECRET}"],
                        "Parameters": [f"echo {ENV_SECRET}"],
                    },
                },
                "InputSources": [
                    {
                        "Target": "/inputs/0",
                        "Source": {
                            "Type": "s3",
                            "Params": {
                                "Bucket": "data",
                                "Key": "staged/sales/",
                                "Endpoint": "http://s3.nodes:8333",
                            },
                        },
                    },
                    {
                        "Target": "/inputs/1",
                        "Source": {
                            "Type": "urlDownload",
                            "Params": {
                                "URL": "https://user:pw@files.example.com:8443/a/b.csv?X-Amz-Signature=abc"
                            },
                        },
                    },
                    {
                        "Target": "/inputs/2",
                        "Source": {
                            "Type": "inline",
                            "Params": {"URL": f"data:,{ENV_SECRET}"},
                        },
                    },
                    {
                        "Target": "/inputs/3",
                        "Source": {
                            "Type": "s3",
                            "Params": {"Bucket": "data", "Key": "staged/sales/"},
                        },
                    },
                ],
                "Publisher": {
                    "Type": "s3",
                    "Params": {"Bucket": "out", "Key": "results/{jobID}/"},
                },
            }
        ],
        **job,
    }
    execution = {
        "ID": "e-1",
        "NodeID": "n-1",
        "JobID": "j-1",
        "JobVersion": 2,
        "ComputeState": {"StateType": 9},
        "DesiredState": {"StateType": 2},
        "RunOutput": {"ExitCode": 0, "Stdout": ENV_SECRET},
        "PublishedResult": {
            "Type": "s3",
            "Params": {"Bucket": "out", "Key": "results/j-1/"},
        },
    }
    return {"Job": spec, "Executions": {"Items": [execution]}}


@pytest.mark.parametrize("bucket, key", [("data", "staged/sales/"), ("data", "a/b.csv"), ("data", "")])
def test_s3_names_are_the_amazon_providers(bucket, key):
    ours = names.s3_dataset(bucket, key)
    theirs = convert_asset_to_openlineage(create_asset(bucket=bucket, key=key), None)
    assert (ours.namespace, ours.name) == (theirs.namespace, theirs.name)
    assert ours.uri == create_asset(bucket=bucket, key=key).uri


def test_job_inputs_are_its_input_sources_without_credentials_queries_or_inline_data():
    inputs = names.job_inputs(finished_job())
    assert [(n.namespace, n.name) for n in inputs] == [
        ("s3://data", "staged/sales"),  # once, though two inputs read it
        ("https://files.example.com:8443", "/a/b.csv"),
    ]


def test_outputs_are_the_published_results_with_the_keys_filled():
    status = names.JobStatus.from_api(finished_job())
    assert [(n.namespace, n.name) for n in names.job_outputs(status)] == [("s3://out", "results/j-1")]
    assert [n.uri for n in names.job_outputs(status)] == ["s3://out/results/j-1"]


def test_s3managed_results_are_named_by_orchestrator_job_and_execution():
    result = PublishedResult("s3managed", {"JobID": "j-9", "ExecutionID": "e-3"})
    name = names.result_dataset(result.to_dict(), "orchestrator.example:1234")
    assert (name.namespace, name.name) == (
        "bacalhau-s3managed://orchestrator.example:1234",
        "j-9/e-3",
    )
    assert name.uri == "bacalhau-s3managed://orchestrator.example:1234/j-9/e-3"


def test_orchestrator_host_drops_credentials():
    assert names.orchestrator_host("https://me:secret@bacalhau.example:1234/x") == "bacalhau.example:1234"


def test_run_facet_has_ids_version_executions_image_and_link_but_no_spec_values():
    fields = names.run_facet_fields(finished_job(), "http://ui/jobs/j-1", "orchestrator:1234")
    assert fields == {
        "jobId": "j-1",
        "jobName": "airflow-dag-task",
        "namespace": "default",
        "jobVersion": 2,
        "jobType": "batch",
        "state": "Completed",
        "image": "busybox:1.37.0",
        "jobUrl": "http://ui/jobs/j-1",
        "orchestrator": "orchestrator:1234",
        "executions": [{"executionId": "e-1", "nodeId": "n-1", "state": "Completed", "exitCode": 0}],
    }
    assert ENV_SECRET not in json.dumps(fields)


def test_openlineage_facets_serialise_without_spec_values():
    from openlineage.client.serde import Serde

    from airflow_provider_bacalhau.lineage.openlineage import operator_lineage

    job = finished_job()
    lineage = operator_lineage(
        names.job_inputs(job),
        names.job_outputs(names.JobStatus.from_api(job)),
        names.run_facet_fields(job, None, "orchestrator:1234"),
    )
    assert lineage.run_facets["externalQuery"].externalQueryId == "j-1"
    text = Serde.to_json(lineage.run_facets["bacalhau"])
    assert json.loads(text)["executions"][0]["nodeId"] == "n-1"
    assert ENV_SECRET not in text + repr(lineage)
    assert operator_lineage().run_facets == {}  # nothing known: an empty lineage, no facet
