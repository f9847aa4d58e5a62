"""The devstack node treats regular expressions and Partition.Type as a v1.9.3 node (issue 8 §4):
Go RE2 at validation and at matching, against the real S3 server."""

from __future__ import annotations

import uuid
from pathlib import Path

import pytest

from airflow_provider_bacalhau.devstack import inputs
from airflow_provider_bacalhau.devstack.compute import DEFAULT_IMAGE_ALIASES, ComputeSettings
from airflow_provider_bacalhau.devstack.compute_common import ComputeError, S3Clients
from airflow_provider_bacalhau.devstack.goregexp import GoRegexpError, compile_go


def s3_source(params: dict) -> dict:
    return {"Type": "s3", "Params": {"Bucket": "b", **params}}


@pytest.mark.parametrize(
    ("pattern", "message"),
    [
        (r"(?=x)", "error parsing regexp: invalid or unsupported Perl syntax: `(?=`"),
        (r"(?<!x)y", "error parsing regexp: invalid or unsupported Perl syntax: `(?<!`"),
        (r"(a)\1", "error parsing regexp: invalid escape sequence: `\\1`"),
        (r"\C", "error parsing regexp: invalid escape sequence: `\\C`"),
        (r"(?P<n>a)(?P<n>b)", "error parsing regexp: duplicate capture group name: `n`"),
        (r"a{1001}", "error parsing regexp: invalid repeat count: `{1001}`"),
    ],
)
def test_partition_pattern_go_refuses_fails_with_go_message(pattern, message):
    problem = inputs.validate_source(s3_source({"Partition": {"Type": "regex", "Pattern": pattern}}))
    assert problem == f"invalid regex pattern: {message}"


@pytest.mark.parametrize("pattern", [r"\pL", r"(?P<d>\d+)", r"(?<d>\d+)", r"[[:alpha:]]+"])
def test_partition_pattern_go_accepts_is_valid(pattern):
    assert inputs.validate_source(s3_source({"Partition": {"Type": "regex", "Pattern": pattern}})) is None


@pytest.mark.parametrize("written", ["Regex", "REGEX", "Object"])
def test_partition_type_in_another_case_is_refused_as_the_node_does(written):
    problem = inputs.validate_source(s3_source({"Partition": {"Type": written, "Pattern": "x"}}))
    assert problem == f"unsupported partition key type {written}"


def test_compile_go_raises_its_own_error_type():
    with pytest.raises(GoRegexpError):
        compile_go(r"(?!a)")


# --- matching against SeaweedFS -----------------------------------------------------------


def _settings(tmp_path: Path, s3_server) -> ComputeSettings:
    return ComputeSettings(
        data_dir=tmp_path / "compute",
        node_id="n-go-rules",
        docker_host=None,
        image_aliases=dict(DEFAULT_IMAGE_ALIASES),
        s3_default_endpoint=s3_server.endpoint,
        aws_access_key_id=s3_server.aws_access_key_id,
        aws_secret_access_key=s3_server.aws_secret_access_key,
        region=s3_server.region,
        allow_listed_local_paths=[],
        local_publisher_dir=tmp_path / "local",
        local_publisher_base_url="http://127.0.0.1:1/results",
    )


def _layout(tmp_path: Path, s3_server, params: dict, **context) -> list[str]:
    storage = tmp_path / f"storage-{uuid.uuid4().hex[:6]}"
    storage.mkdir()
    ctx = inputs.InputContext(S3Clients(_settings(tmp_path, s3_server)), storage, [], **context)
    [mount] = inputs.prepare_inputs([{"Target": "/in", "Source": {"Type": "s3", "Params": params}}], ctx)
    return sorted(p.relative_to(mount.source).as_posix() for p in mount.source.rglob("*") if p.is_file())


@pytest.fixture
def bucket(s3_server) -> str:
    name = f"go-{uuid.uuid4().hex[:12]}"
    client = s3_server.client()
    client.create_bucket(Bucket=name)
    for key in ("d/été.csv", "d/1.csv", "d/Ωmega.txt", "d/tmp-x.csv"):
        client.put_object(Bucket=name, Key=key, Body=b"x")
    return name


def test_filter_with_unicode_letter_class_matches_as_go(tmp_path, s3_server, bucket):
    got = _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "d/", "Filter": r"^\pL+\."})
    assert sorted(got) == sorted(["Ωmega.txt", "été.csv"])


def test_filter_with_lookahead_fails_the_input_as_go(tmp_path, s3_server, bucket):
    with pytest.raises(
        ComputeError,
        match=r"^invalid regex pattern: error parsing regexp: "
        r"invalid or unsupported Perl syntax: `\(\?!`$",
    ):
        _layout(tmp_path, s3_server, {"Bucket": bucket, "Key": "d/", "Filter": r"^(?!tmp)"})


def test_regex_partition_with_unicode_class_splits_by_the_capture(tmp_path, s3_server, bucket):
    params = {"Bucket": bucket, "Key": "d/", "Partition": {"Type": "regex", "Pattern": r"^(\pL)"}}
    parts = [_layout(tmp_path, s3_server, params, partition_index=i, partition_count=2) for i in range(2)]
    assert sorted(sum(parts, [])) == sorted(["1.csv", "tmp-x.csv", "Ωmega.txt", "été.csv"])
    # "1.csv" has no letter first: no match, so partition 0 (fallbackPartitionIndex)
    assert "1.csv" in parts[0]
    for name in ("tmp-x.csv", "Ωmega.txt", "été.csv"):
        assert name in parts[inputs._fnv1a32(name[0]) % 2]


# --- the AWS-endpoint test ----------------------------------------------------------------


@pytest.mark.parametrize(
    ("endpoint", "aws"),
    [
        ("", True),
        ("https://s3.us-east-1.amazonaws.com", True),
        ("s3.amazonaws.com", True),
        ("https://notamazonaws.com", True),  # a plain suffix test, as Go's
        ("https://s3.amazonaws.com/", False),
        ("https://s3.us-east-1.amazonaws.com:443", False),
        ("http://127.0.0.1:8333", False),
    ],
)
def test_is_aws_endpoint_is_go_plain_suffix_check(endpoint, aws):
    from airflow_provider_bacalhau.devstack.compute_common import is_aws_endpoint

    assert is_aws_endpoint(endpoint) is aws


# --- S3 inputs in ops and daemon jobs -------------------------------------------------------


def test_s3_input_in_an_ops_job_fails_on_the_node_as_in_go(devstack):
    """Job.Normalize sets Count 0 for ops; PartitionObjects then refuses 0 partitions."""
    import httpx
    from devstack_helpers import JOBS, unique, wait_for

    bucket = unique("ops-s3")
    client = devstack.s3_client()
    client.create_bucket(Bucket=bucket)
    client.put_object(Bucket=bucket, Key="p/a.txt", Body=b"x")
    job = {
        "Name": bucket,
        "Type": "ops",
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox:1.36"}},
                "InputSources": [
                    {"Target": "/in", "Source": {"Type": "s3", "Params": {"Bucket": bucket, "Key": "p/"}}}
                ],
            }
        ],
    }
    with httpx.Client(base_url=devstack.api_url, timeout=30) as api:
        resp = api.put(JOBS, json={"Job": job})
        assert resp.status_code == 200, resp.text  # accepted at submit, as v1.9.3 does
        body = wait_for(api, resp.json()["JobID"], timeout=60)
    assert body["Job"]["Count"] == 0
    messages = [e["ComputeState"].get("Message", "") for e in body["Executions"]["Items"]]
    assert any("job partitions/count must be greater than 0" in m for m in messages), messages
