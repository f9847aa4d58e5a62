"""Builders: each part serialises to Bacalhau's canonical JSON and reads back from any key case."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_bacalhau.spec import (
    Constraint,
    DockerEngine,
    InlineSource,
    InputSource,
    IPFSPublisher,
    IPFSSource,
    Job,
    LocalPublisher,
    LocalSource,
    Network,
    NoopEngine,
    NoopPublisher,
    Resources,
    ResultPath,
    S3ManagedPublisher,
    S3Publisher,
    S3Source,
    SpecError,
    Task,
    Timeouts,
    URLSource,
    WasmEngine,
    engine_from_spec,
    publisher_from_spec,
    source_from_spec,
)

SOURCES = [
    (
        S3Source(
            "b",
            "k/",
            filter=r"\.csv$",
            region="eu-west-1",
            endpoint="http://h:9000",
            partition={"Type": "regex", "Pattern": "x", "StartIndex": 0},
        ),
        {
            "Type": "s3",
            "Params": {
                "Bucket": "b",
                "Key": "k/",
                "Filter": r"\.csv$",
                "Region": "eu-west-1",
                "Endpoint": "http://h:9000",
                "Partition": {"Type": "regex", "Pattern": "x"},
            },
        },
    ),
    (S3Source("b"), {"Type": "s3", "Params": {"Bucket": "b"}}),
    (URLSource("https://x/f.txt"), {"Type": "urlDownload", "Params": {"URL": "https://x/f.txt"}}),
    (
        LocalSource("/data", read_write=True, create_as="dir"),
        {"Type": "local", "Params": {"SourcePath": "/data", "ReadWrite": True, "CreateAs": "dir"}},
    ),
    (LocalSource("/data"), {"Type": "local", "Params": {"SourcePath": "/data"}}),
    (IPFSSource("Qm1"), {"Type": "ipfs", "Params": {"CID": "Qm1"}}),
    (InlineSource("data:,hi"), {"Type": "inline", "Params": {"URL": "data:,hi"}}),
]


def _lower_keys(value):
    """Lower-case every struct key (not the values)."""
    if isinstance(value, dict):
        return {k.lower(): _lower_keys(v) for k, v in value.items()}
    return value


@pytest.mark.parametrize(("source", "spec"), SOURCES)
def test_sources_to_spec_and_back_in_any_case(source, spec):
    assert source.to_spec() == spec
    assert source_from_spec(spec) == source
    assert source_from_spec(_lower_keys(spec)) == source


PUBLISHERS = [
    (
        S3Publisher("r", "out/{jobID}", endpoint="http://h", region="us-east-1", encoding="plain"),
        {
            "Type": "s3",
            "Params": {
                "Bucket": "r",
                "Key": "out/{jobID}",
                "Endpoint": "http://h",
                "Region": "us-east-1",
                "Encoding": "plain",
            },
        },
    ),
    (S3Publisher("r", "k"), {"Type": "s3", "Params": {"Bucket": "r", "Key": "k", "Encoding": "gzip"}}),
    (S3ManagedPublisher(), {"Type": "s3managed"}),
    (LocalPublisher(), {"Type": "local"}),
    (IPFSPublisher(), {"Type": "ipfs"}),
    (NoopPublisher(), {"Type": "noop"}),
]


@pytest.mark.parametrize(("publisher", "spec"), PUBLISHERS)
def test_publishers_to_spec_and_back(publisher, spec):
    assert publisher.to_spec() == spec
    assert publisher_from_spec(spec) == publisher
    assert publisher_from_spec(_lower_keys(spec)) == publisher


def test_publisher_type_in_other_case_is_canonicalised():
    assert publisher_from_spec({"type": "S3Managed"}) == S3ManagedPublisher()
    assert S3Publisher("r", "k", encoding="").encoding == "gzip"


ENGINES = [
    (
        DockerEngine("img", ["/bin/sh", "-c"], ["echo"], {"A": "1"}, "/work"),
        {
            "Type": "docker",
            "Params": {
                "Image": "img",
                "Entrypoint": ["/bin/sh", "-c"],
                "Parameters": ["echo"],
                "EnvironmentVariables": ["A=1"],
                "WorkingDirectory": "/work",
            },
        },
    ),
    (
        WasmEngine("/app/main.wasm", "_start", ["a"], ["/app/lib.wasm"]),
        {
            "Type": "wasm",
            "Params": {
                "EntryModule": "/app/main.wasm",
                "Entrypoint": "_start",
                "Parameters": ["a"],
                "ImportModules": ["/app/lib.wasm"],
            },
        },
    ),
    (NoopEngine(), {"Type": "noop"}),
]


@pytest.mark.parametrize(("engine", "spec"), ENGINES)
def test_engines_to_spec_and_back(engine, spec):
    assert engine.to_spec() == spec
    assert engine_from_spec(spec) == engine
    assert engine_from_spec(_lower_keys(spec)) == engine


def test_unknown_types_pass_through_and_warn_listing_the_known_ones(caplog):
    caplog.set_level(logging.WARNING, logger="airflow_provider_bacalhau.spec")
    for build, spec, known in (
        (engine_from_spec, {"Type": "flibble"}, "docker, wasm"),
        (source_from_spec, {"Type": "gcs", "Params": {"A": 1}}, "s3, urlDownload, local, localDirectory"),
        (publisher_from_spec, {"Type": "gcs"}, "s3, s3managed, local, ipfs, noop"),
    ):
        caplog.clear()
        part = build(spec)
        assert part.to_spec() == spec
        part.validate("X")
        assert any(
            r.getMessage().startswith("X.Type:")
            and repr(spec["Type"]) in r.getMessage()
            and known in r.getMessage()
            for r in caplog.records
        )
    with pytest.raises(SpecError, match="Engine.Type: is required"):
        engine_from_spec({"Params": {"Image": "x"}})


def test_full_builder_job_to_dict():
    job = Job(
        Task(
            DockerEngine(
                "python:3.12-slim", ["/bin/sh", "-c"], ["python job.py"], ["MODE=prod"], "/inputs/in"
            ),
            publisher=S3Publisher(
                "results", "runs/{jobID}/{executionID}/", region="us-east-1", encoding="plain"
            ),
            input_sources=[
                InputSource("/inputs/in", S3Source("stage", "runs/r1/", region="us-east-1"), alias="in")
            ],
            result_paths=[ResultPath("outputs", "/outputs")],
            resources=Resources("1", "2gb"),
            timeouts=Timeouts(1800, 600, 3600),
        ),
        name="airflow-etl",
        namespace="default",
        labels={"airflow-dag": "etl"},
        constraints=[Constraint("zone", "=", ["a"])],
        priority=1,
    )
    assert job.to_dict() == {
        "Name": "airflow-etl",
        "Namespace": "default",
        "Type": "batch",
        "Priority": 1,
        "Count": 1,
        "Constraints": [{"Key": "zone", "Operator": "=", "Values": ["a"]}],
        "Labels": {"airflow-dag": "etl"},
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "python:3.12-slim",
                        "Entrypoint": ["/bin/sh", "-c"],
                        "Parameters": ["python job.py"],
                        "EnvironmentVariables": ["MODE=prod"],
                        "WorkingDirectory": "/inputs/in",
                    },
                },
                "InputSources": [
                    {
                        "Alias": "in",
                        "Target": "/inputs/in",
                        "Source": {
                            "Type": "s3",
                            "Params": {"Bucket": "stage", "Key": "runs/r1/", "Region": "us-east-1"},
                        },
                    }
                ],
                "ResultPaths": [{"Name": "outputs", "Path": "/outputs"}],
                "Publisher": {
                    "Type": "s3",
                    "Params": {
                        "Bucket": "results",
                        "Key": "runs/{jobID}/{executionID}/",
                        "Region": "us-east-1",
                        "Encoding": "plain",
                    },
                },
                "Resources": {"CPU": "1", "Memory": "2gb"},
                "Timeouts": {"ExecutionTimeout": 1800, "QueueTimeout": 600, "TotalTimeout": 3600},
            }
        ],
    }
    assert Job.from_dict(job.to_dict()) == job


def test_task_defaults_and_mappings_accepted():
    task = Task(
        {"Type": "docker", "Params": {"Image": "busybox"}},
        publisher={"Type": "s3managed"},
        input_sources=[{"Target": "/in", "Source": {"Type": "ipfs", "Params": {"CID": "Qm"}}}],
        result_paths=[{"Name": "o", "Path": "/o"}],
    )
    assert task.name == "main"
    assert task.engine == DockerEngine("busybox")
    assert task.input_sources == [InputSource("/in", IPFSSource("Qm"))]
    assert task.result_paths == [ResultPath("o", "/o")]
    assert Job(task).task is task


def test_network_and_empty_parts_omitted():
    job = Job(Task(NoopEngine(), resources=Resources(), timeouts=Timeouts(), network=Network()))
    assert job.to_dict()["Tasks"][0] == {"Name": "main", "Engine": {"Type": "noop"}}
    job.task.network = Network("bridge", ports=[{"Name": "http", "Target": 80}])
    assert job.to_dict()["Tasks"][0]["Network"] == {
        "Type": "Bridge",
        "Ports": [{"Name": "http", "Target": 80}],
    }


def test_job_needs_exactly_one_task():
    with pytest.raises(SpecError, match="^Tasks: missing job tasks"):
        Job().validate()
    with pytest.raises(SpecError, match="^Tasks: give either task or tasks"):
        Job(Task(NoopEngine()), tasks=[Task(NoopEngine())])
    # two tasks: the server keeps the first and warns (SanitizeSubmission); so do we
    assert len(Job(tasks=[Task(NoopEngine()), Task(NoopEngine(), name="b")]).to_dict()["Tasks"]) == 2
