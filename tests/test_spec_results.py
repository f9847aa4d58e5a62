"""PublishedResult: raw results from executions, JSON-safe for XCom, usable as inputs."""

from __future__ import annotations

import json

import pytest

from airflow_provider_bacalhau.spec import InputSource, Job, PublishedResult, SpecError

RAW_S3 = {
    "Type": "s3",
    "Params": {
        "Bucket": "results",
        "Key": "runs/j-1/e-2.tar.gz",
        "Filter": "",
        "Region": "us-east-1",
        "Endpoint": "",
        "VersionID": "",
        "ChecksumSHA256": "aLgNZhlhklWk0ATVRHbeUfkVes0KnZfNKUoKOGLK090=",
        "Partition": {"Type": "", "Pattern": "", "StartIndex": 0, "EndIndex": 0, "DateFormat": ""},
    },
}


def test_s3_result_to_dict_keeps_raw_params_and_ids():
    result = PublishedResult.from_api(RAW_S3, job_id="j-1", execution_id="e-2")
    data = result.to_dict()
    assert data == {"Type": "s3", "Params": RAW_S3["Params"], "JobID": "j-1", "ExecutionID": "e-2"}
    assert json.loads(json.dumps(data)) == data
    assert PublishedResult.from_dict(data) == result
    assert result.is_s3 and result.is_archive


def test_source_spec_drops_empty_values():
    result = PublishedResult.from_api(RAW_S3)
    assert result.source_spec() == {
        "Type": "s3",
        "Params": {
            "Bucket": "results",
            "Key": "runs/j-1/e-2.tar.gz",
            "Region": "us-east-1",
            "ChecksumSHA256": "aLgNZhlhklWk0ATVRHbeUfkVes0KnZfNKUoKOGLK090=",
        },
    }


def test_plain_result_chains_into_next_job():
    plain = {"Type": "s3", "Params": dict(RAW_S3["Params"], Key="runs/j-1/e-2/", ChecksumSHA256="")}
    result = PublishedResult.from_api(plain, "j-1", "e-2")
    assert not result.is_archive
    job = Job.docker("busybox", inputs=[InputSource("/inputs", result.source_spec())])
    assert job.to_dict()["Tasks"][0]["InputSources"] == [
        {
            "Target": "/inputs",
            "Source": {
                "Type": "s3",
                "Params": {"Bucket": "results", "Key": "runs/j-1/e-2/", "Region": "us-east-1"},
            },
        }
    ]


def test_bare_type_params_from_dict():
    result = PublishedResult.from_dict({"Type": "ipfs", "Params": {"CID": "Qm1"}})
    assert (result.type, result.params, result.job_id) == ("ipfs", {"CID": "Qm1"}, "")
    assert not result.is_archive and not result.is_s3


def test_s3managed_ids_from_params_and_not_an_input():
    result = PublishedResult.from_api({"Type": "s3managed", "Params": {"JobID": "j-9", "ExecutionID": "e-9"}})
    assert (result.job_id, result.execution_id) == ("j-9", "e-9")
    assert result.is_archive
    with pytest.raises(SpecError, match="PublishedResult.Type.*re-staged"):
        result.source_spec()


@pytest.mark.parametrize(
    ("url", "archive"),
    [
        ("http://10.0.0.1:6001/e-1.tar.gz", True),
        ("http://10.0.0.1:6001/e-1.tgz", True),
        ("http://10.0.0.1:6001/e-1/", False),
    ],
)
def test_local_publisher_url_download(url, archive):
    result = PublishedResult.from_api({"Type": "urlDownload", "Params": {"URL": url}}, "j", "e")
    assert result.is_archive is archive
    assert result.param("url") == url


def test_type_in_any_case_is_known():
    result = PublishedResult.from_dict(
        {"Type": "S3", "JobID": "j", "Params": {"Bucket": "b", "Key": "x.tar.gz"}}
    )
    assert (result.type, result.is_s3, result.is_archive) == ("s3", True, True)
    assert result.to_dict()["Type"] == "s3"
    managed = PublishedResult.from_dict({"Type": "S3Managed", "Params": {"JobID": "j-3"}})
    assert (managed.type, managed.job_id, managed.is_archive) == ("s3managed", "j-3", True)
    url = PublishedResult.from_dict({"Type": "URLDOWNLOAD", "Params": {"URL": "http://n/e.tgz"}})
    assert (url.type, url.is_archive) == ("urlDownload", True)
    assert PublishedResult("custom").type == "custom"  # unknown types are kept as given


def test_missing_type_is_an_error():
    with pytest.raises(SpecError, match="PublishedResult.Type"):
        PublishedResult.from_api({"Params": {}})


def test_to_dict_is_a_copy():
    result = PublishedResult.from_api(RAW_S3)
    result.to_dict()["Params"]["Bucket"] = "changed"
    assert result.params["Bucket"] == "results"
