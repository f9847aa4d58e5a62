"""resolve_inputs: every shape a DAG author passes becomes a valid, predictable InputSource."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile

import pytest

from airflow_provider_bacalhau.dataplane.inputs import resolve_inputs
from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View
from airflow_provider_bacalhau.hooks.s3 import BacalhauS3Hook
from airflow_provider_bacalhau.spec import InputSource, PublishedResult, S3Source

CHECKSUM = "aLgNZhlhklWk0ATVRHbeUfkVes0KnZfNKUoKOGLK090="


def raw_published(key: str, checksum: str = "") -> dict:
    """An s3 PublishedResult as it comes out of XCom, with the publisher's empty fields."""
    return {
        "Type": "s3",
        "JobID": "j-1",
        "ExecutionID": "e-1",
        "Params": {
            "Bucket": "res",
            "Key": key,
            "Filter": "",
            "Region": "us-east-1",
            "Endpoint": "",
            "VersionID": "",
            "ChecksumSHA256": checksum,
            "Partition": {"Type": "", "Pattern": "", "StartIndex": 0, "EndIndex": 0, "DateFormat": ""},
        },
    }


def as_dicts(items):
    return [i.to_dict() for i in items]


def test_targets_rule():
    staged = {"Type": "s3", "Params": {"Bucket": "b", "Key": "in/"}}
    assert as_dicts(resolve_inputs(staged)) == [{"Target": "/inputs", "Source": staged}]
    assert as_dicts(resolve_inputs([staged])) == [{"Target": "/inputs", "Source": staged}]
    got = resolve_inputs([staged, "s3://b/other/", raw_published("r/e-1/")])
    assert [i.target for i in got] == ["/inputs/0", "/inputs/1", "/inputs/2"]
    named = resolve_inputs({"train": staged, "model": "s3://b/m.bin"}, target="/data")
    assert [(i.target, i.source.key) for i in named] == [("/data/train", "in/"), ("/data/model", "m.bin")]
    nested = resolve_inputs([staged, [raw_published("r/e-1/"), raw_published("r/e-2/")]])
    assert [i.target for i in nested] == ["/inputs/0", "/inputs/1/0", "/inputs/1/1"]
    own = resolve_inputs([{"Target": "/mine", "Source": staged}, staged])
    assert [i.target for i in own] == ["/mine", "/inputs/1"]
    assert resolve_inputs(None) == []


def test_duplicate_targets_and_bad_names_refused():
    staged = {"Type": "s3", "Params": {"Bucket": "b", "Key": "in/"}}
    with pytest.raises(ValueError, match="two inputs on target '/x'"):
        resolve_inputs([{"Target": "/x", "Source": staged}, {"Target": "/x", "Source": staged}])
    with pytest.raises(ValueError, match="name '../up'"):
        resolve_inputs({"../up": staged})
    with pytest.raises(ValueError, match="^inputs: expected an s3://"):
        resolve_inputs("/local/path")


def test_plain_result_becomes_clean_prefix_input():
    [item] = resolve_inputs(raw_published("runs/j-1/e-1/", checksum=CHECKSUM))
    assert item.to_dict() == {
        "Target": "/inputs",
        "Source": {"Type": "s3", "Params": {"Bucket": "res", "Key": "runs/j-1/e-1/", "Region": "us-east-1"}},
    }
    from_object = resolve_inputs(PublishedResult.from_dict(raw_published("runs/j-1/e-1/")))
    assert as_dicts(from_object) == as_dicts([item])


def test_archive_as_is_on_request_keeps_checksum():
    [item] = resolve_inputs(raw_published("runs/e-1.tar.gz", CHECKSUM), restage=False)
    assert item.source.to_spec()["Params"] == {
        "Bucket": "res",
        "Key": "runs/e-1.tar.gz",
        "Region": "us-east-1",
        "ChecksumSHA256": CHECKSUM,
    }
    [composite] = resolve_inputs(raw_published("runs/e-1.tar.gz", CHECKSUM[:-1] + "-3"), restage=False)
    assert composite.source.checksum_sha256 == ""


def test_results_that_cannot_be_inputs_are_explained():
    managed = {"Type": "s3managed", "Params": {"JobID": "j-1", "ExecutionID": "e-1"}}
    with pytest.raises(ValueError, match="staging_bucket"):
        resolve_inputs(managed)
    with pytest.raises(ValueError, match="restage"):
        resolve_inputs(managed, restage=False)
    local = {
        "Type": "urlDownload",
        "Params": {"URL": "http://n:6001/e-1.tar.gz"},
        "JobID": "j",
        "ExecutionID": "e-1",
    }
    with pytest.raises(ValueError, match="staging_bucket"):
        resolve_inputs(local)
    [as_is] = resolve_inputs(local, restage=False)
    assert as_is.source.to_spec() == {"Type": "urlDownload", "Params": {"URL": "http://n:6001/e-1.tar.gz"}}
    with pytest.raises(SpecError):
        resolve_inputs({"Type": "s3", "Params": {"Bucket": "", "Key": "x/"}})


def test_input_source_objects_and_raw_sources():
    obj = InputSource("/in", S3Source(bucket="b", key="k/"))
    raw = {"type": "urlDownload", "params": {"url": "https://example.com/a.csv"}}
    got = resolve_inputs([obj, raw])
    assert as_dicts(got) == [
        {"Target": "/in", "Source": {"Type": "s3", "Params": {"Bucket": "b", "Key": "k/"}}},
        {
            "Target": "/inputs/1",
            "Source": {"Type": "urlDownload", "Params": {"URL": "https://example.com/a.csv"}},
        },
    ]


def test_gzip_result_restaged_against_the_s3_server(s3_server, monkeypatch):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    client = s3_server.client()
    client.create_bucket(Bucket="inputs-res")
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        info = tarfile.TarInfo("outputs/a.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"a"))
    answer = client.put_object(
        Bucket="inputs-res", Key="r/e-1.tar.gz", Body=buf.getvalue(), ChecksumAlgorithm="SHA256"
    )
    result = {
        "Type": "s3",
        "JobID": "j-1",
        "ExecutionID": "e-1",
        "Params": {"Bucket": "inputs-res", "Key": "r/e-1.tar.gz", "ChecksumSHA256": answer["ChecksumSHA256"]},
    }
    # Airflow downloads and uploads through its AWS connection; the spec names S3 as nodes see it.
    nodes = ComputeS3View("http://s3.nodes.internal:8333", "eu-central-1")
    hook = BacalhauS3Hook(compute_s3=nodes)
    [item] = resolve_inputs(result, s3_hook=hook)
    digest = hashlib.sha256(buf.getvalue()).hexdigest()
    assert item.to_dict() == {
        "Target": "/inputs",
        "Source": {
            "Type": "s3",
            "Params": {
                "Bucket": "inputs-res",
                "Key": f"bacalhau-staging/{digest}/",
                "Region": "eu-central-1",
                "Endpoint": "http://s3.nodes.internal:8333",
            },
        },
    }
    marker = client.get_object(Bucket="inputs-res", Key=f"bacalhau-staging/{digest}.restaged.json")
    assert json.loads(marker["Body"].read())["Files"] == 1
    [uri] = resolve_inputs("s3://inputs-res/plain/", s3_hook=hook)
    assert uri.source.endpoint == nodes.endpoint and uri.source.key == "plain/"
    # Without a compute-side view the re-staged prefix names no store (AWS or the node's own).
    [bare] = resolve_inputs(result, s3_hook=BacalhauS3Hook())
    assert bare.source.to_spec()["Params"] == {"Bucket": "inputs-res", "Key": f"bacalhau-staging/{digest}/"}
    # The type in another case is the same archive: re-staged (the marker answers), not raw.
    [upper] = resolve_inputs({**result, "Type": "S3"}, s3_hook=hook)
    assert upper.to_dict() == item.to_dict()
    # Re-staged into its own bucket with no view set: where the publishing node reached that
    # bucket is the compute side's view of it.
    reported = {
        **result,
        "Params": {**result["Params"], "Endpoint": "http://node-side:8333", "Region": "ap-south-1"},
    }
    [own] = resolve_inputs(reported, s3_hook=BacalhauS3Hook())
    assert (own.source.endpoint, own.source.region) == ("http://node-side:8333", "ap-south-1")
    client.create_bucket(Bucket="inputs-other")
    [elsewhere] = resolve_inputs(reported, s3_hook=BacalhauS3Hook(), staging_bucket="inputs-other")
    assert (elsewhere.source.endpoint, elsewhere.source.region) == ("", "")


def test_uri_without_a_compute_side_view_warns_when_airflow_names_an_endpoint(s3_server, monkeypatch, caplog):
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    with caplog.at_level("WARNING", logger="airflow_provider_bacalhau.dataplane.inputs"):
        resolve_inputs(["s3://b/one/", "s3://b/two/"])
    [warning] = [r for r in caplog.records if "s3_endpoint" in r.getMessage()]
    assert s3_server.endpoint in warning.getMessage() and "'aws_default'" in warning.getMessage()
    caplog.clear()
    with caplog.at_level("WARNING", logger="airflow_provider_bacalhau.dataplane.inputs"):
        resolve_inputs("s3://b/one/", compute_s3=ComputeS3View(s3_server.endpoint))
    assert not [r for r in caplog.records if "s3_endpoint" in r.getMessage()]


def test_uri_gets_the_compute_side_store_whatever_the_order(s3_server, monkeypatch):
    # Airflow's AWS connection points at the test S3 server; the nodes see S3 elsewhere.
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    nodes = ComputeS3View("http://s3.nodes.internal:8333", "eu-central-1")
    staged = {"Type": "s3", "Params": {"Bucket": "b", "Key": "in/"}}
    where = {
        "Bucket": "b",
        "Key": "x/",
        "Region": "eu-central-1",
        "Endpoint": "http://s3.nodes.internal:8333",
    }
    for inputs in ("s3://b/x/", ["s3://b/x/", staged], [staged, "s3://b/x/"]):
        got = resolve_inputs(inputs, compute_s3=nodes)
        [uri] = [i for i in got if i.source.key == "x/"]
        assert uri.source.to_spec()["Params"] == where
        # A source that is given whole keeps what it says (here: no store named).
        assert [i.source.to_spec() for i in got if i.source.key == "in/"] in ([], [staged])


def test_uri_never_copies_the_aws_connection_store(s3_server, monkeypatch):
    """Airflow's endpoint is Airflow's view: without a compute-side view the spec names none."""
    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    [uri] = resolve_inputs("s3://b/x/")
    assert uri.source.to_spec()["Params"] == {"Bucket": "b", "Key": "x/"}
    [region_only] = resolve_inputs("s3://b/x/", compute_s3=ComputeS3View(region="us-west-2"))
    assert region_only.source.to_spec()["Params"] == {"Bucket": "b", "Key": "x/", "Region": "us-west-2"}


def test_sources_that_name_their_store_keep_it():
    """A published result keeps the Endpoint its node reported; a user's source keeps its own."""
    nodes = ComputeS3View("http://s3.nodes.internal:8333", "eu-central-1")
    published = raw_published("r/e-1/")
    published["Params"]["Endpoint"] = "http://minio.other:9000"
    user = {
        "Type": "s3",
        "Params": {"Bucket": "b", "Key": "k/", "Endpoint": "http://mine:9000", "Region": "ap-south-1"},
    }
    got = resolve_inputs([published, user, raw_published("r/e-2/")], compute_s3=nodes)
    params = [i.source.to_spec()["Params"] for i in got]
    assert params[0]["Endpoint"] == "http://minio.other:9000"
    assert params[1] == user["Params"]
    # A plain result the node published with no Endpoint (its own default) stays without one.
    assert "Endpoint" not in params[2] and params[2]["Region"] == "us-east-1"


def test_compute_s3_view_refuses_a_bare_host():
    with pytest.raises(ValueError, match="s3_endpoint: must be a URL"):
        ComputeS3View("minio:9000")
    view = ComputeS3View(" http://a:1 ", None)
    assert (view.endpoint, view.region) == ("http://a:1", "")
    assert view.overridden(endpoint="", region="r") == ComputeS3View("", "r")
    assert view.overridden() is view


def test_stage_operator_says_when_the_spec_names_no_store(s3_server, monkeypatch, tmp_path):
    from airflow_helpers import fake_context, record_logs

    from airflow_provider_bacalhau.operators.s3 import BacalhauS3StageOperator

    monkeypatch.setenv("AIRFLOW_CONN_AWS_DEFAULT", s3_server.aws_conn_json())
    s3_server.client().create_bucket(Bucket="stage-hint")
    (tmp_path / "a.txt").write_text("a")
    plain = BacalhauS3StageOperator(
        task_id="s", local_paths=str(tmp_path / "a.txt"), bucket="stage-hint", bacalhau_conn_id=None
    )
    with record_logs() as logs:
        spec = plain.execute(fake_context())
    assert "Endpoint" not in spec["Params"]
    assert any(
        "set s3_endpoint in the Bacalhau connection" in m and s3_server.endpoint in m
        for m in logs.messages("warning")
    ), logs.text
    placed = BacalhauS3StageOperator(
        task_id="s",
        local_paths=str(tmp_path / "a.txt"),
        bucket="stage-hint",
        bacalhau_conn_id=None,
        s3_endpoint="http://s3.nodes.internal:8333",
    )
    with record_logs() as logs:
        spec = placed.execute(fake_context())
    assert spec["Params"]["Endpoint"] == "http://s3.nodes.internal:8333"
    assert not any("set s3_endpoint" in m for m in logs.messages())
