"""Bad job specs are refused before anything is sent, each error naming the field path."""

from __future__ import annotations

import logging

import pytest
from spec_cases import SHA_B64, SHA_HEX, B, E, P, add_input, base, docker, pub, src, task, with_

from airflow_provider_bacalhau.spec import Job, S3Source, SpecError

BAD = [
    ("bucket-empty", lambda s: src(s).update(Bucket=""), B, "empty"),
    ("bucket-uri", lambda s: src(s).update(Bucket="s3://stage"), B, "s3://"),
    ("bucket-slash", lambda s: src(s).update(Bucket="stage/runs"), B, "'/'"),
    ("bucket-space", lambda s: src(s).update(Bucket="my stage"), B, "whitespace"),
    (
        "second-input-bucket",
        lambda s: add_input(s, params={"Bucket": "", "Key": "a/"}),
        "Tasks[0].InputSources[1].Source.Params.Bucket",
        "empty",
    ),
    ("publisher-bucket-uri", lambda s: pub(s).update(Bucket="s3://results"), f"{P}.Bucket", "s3://"),
    ("publisher-no-key", lambda s: pub(s).pop("Key"), f"{P}.Key", "Key"),
    ("encoding-bad", lambda s: pub(s).update(Encoding="zip"), f"{P}.Encoding", "gzip"),
    (
        "checksum-hex",
        lambda s: src(s).update(Key="runs/a.csv", ChecksumSHA256=SHA_HEX),
        "Tasks[0].InputSources[0].Source.Params.ChecksumSHA256",
        "base64",
    ),
    (
        "checksum-garbage",
        lambda s: src(s).update(Key="runs/a.csv", ChecksumSHA256="e3b0c44b542b"),
        "Tasks[0].InputSources[0].Source.Params.ChecksumSHA256",
        "32-byte",
    ),
    (
        "target-relative",
        lambda s: task(s)["InputSources"][0].update(Target="inputs"),
        "Tasks[0].InputSources[0].Target",
        "absolute",
    ),
    (
        "target-missing",
        lambda s: task(s)["InputSources"][0].pop("Target"),
        "Tasks[0].InputSources[0].Target",
        "missing a Target",
    ),
    (
        "target-duplicate",
        lambda s: add_input(s, target="/inputs"),
        "Tasks[0].InputSources[1].Target",
        "unique",
    ),
    (
        "target-duplicate-once-cleaned",
        lambda s: add_input(s, target="/inputs/"),
        "Tasks[0].InputSources[1].Target",
        "repeated mount point",
    ),
    (
        "workdir-relative",
        lambda s: docker(s).update(WorkingDirectory="work"),
        f"{E}.WorkingDirectory",
        "absolute",
    ),
    (
        "result-path-relative",
        lambda s: task(s)["ResultPaths"][0].update(Path="outputs"),
        "Tasks[0].ResultPaths[0].Path",
        "absolute",
    ),
    (
        "result-name-duplicate",
        lambda s: task(s)["ResultPaths"].append({"Name": "outputs", "Path": "/other"}),
        "Tasks[0].ResultPaths[1].Name",
        "same Name",
    ),
    (
        "result-path-duplicate",
        lambda s: task(s)["ResultPaths"].append({"Name": "other", "Path": "/outputs"}),
        "Tasks[0].ResultPaths[1].Path",
        "same Path",
    ),
    (
        "result-path-duplicate-once-cleaned",
        lambda s: task(s)["ResultPaths"].append({"Name": "other", "Path": "/outputs/"}),
        "Tasks[0].ResultPaths[1].Path",
        "repeated mount point",
    ),
    (
        "env-bacalhau",
        lambda s: task(s).update(Env={"BACALHAU_JOB_ID": "x"}),
        "Tasks[0].Env.BACALHAU_JOB_ID",
        "BACALHAU_",
    ),
    ("env-lower", lambda s: task(s).update(Env={"mode": "x"}), "Tasks[0].Env.mode", "upper case"),
    (
        "env-digit-first",
        lambda s: task(s).update(Env={"1MODE": "x"}),
        "Tasks[0].Env.1MODE",
        "starting with a letter",
    ),
    ("env-empty-value", lambda s: task(s).update(Env={"MODE": ""}), "Tasks[0].Env.MODE", "empty"),
    (
        "docker-env-bacalhau",
        lambda s: docker(s).update(EnvironmentVariables=["A=1", "BACALHAU_X=1"]),
        f"{E}.EnvironmentVariables[1]",
        "BACALHAU_",
    ),
    ("image-missing", lambda s: docker(s).pop("Image"), f"{E}.Image", "required"),
    ("engine-missing", lambda s: task(s).pop("Engine"), "Tasks[0].Engine", "Engine"),
    (
        "source-s3managed",
        lambda s: task(s)["InputSources"][0]["Source"].update(Type="s3managed"),
        "Tasks[0].InputSources[0].Source.Type",
        "result type",
    ),
    ("cpu-negative", lambda s: task(s).update(Resources={"CPU": "-1"}), "Tasks[0].Resources.CPU", "negative"),
    (
        "cpu-garbage",
        lambda s: task(s).update(Resources={"CPU": "two"}),
        "Tasks[0].Resources.CPU",
        "CPU quantity",
    ),
    (
        "memory-garbage",
        lambda s: task(s).update(Resources={"Memory": "lots"}),
        "Tasks[0].Resources.Memory",
        "size",
    ),
    (
        "disk-negative",
        lambda s: task(s).update(Resources={"Disk": "-10gb"}),
        "Tasks[0].Resources.Disk",
        "negative",
    ),
    (
        "gpu-fraction",
        lambda s: task(s).update(Resources={"GPU": "0.5"}),
        "Tasks[0].Resources.GPU",
        "whole number",
    ),
    (
        "timeout-negative",
        lambda s: task(s).update(Timeouts={"ExecutionTimeout": -5}),
        "Tasks[0].Timeouts.ExecutionTimeout",
        ">= 0",
    ),
    (
        "timeout-float",
        lambda s: task(s).update(Timeouts={"QueueTimeout": 1.5}),
        "Tasks[0].Timeouts.QueueTimeout",
        "integer",
    ),
    (
        "timeout-string",
        lambda s: task(s).update(Timeouts={"TotalTimeout": "600"}),
        "Tasks[0].Timeouts.TotalTimeout",
        "integer",
    ),
    (
        "timeout-sum",
        lambda s: task(s).update(
            Timeouts={"ExecutionTimeout": 600, "QueueTimeout": 300, "TotalTimeout": 600}
        ),
        "Tasks[0].Timeouts.TotalTimeout",
        "must not exceed",
    ),
    ("type-case", lambda s: s.update(Type="Batch"), "Type", "use 'batch'"),
    ("type-unknown", lambda s: s.update(Type="cron"), "Type", "batch, ops, daemon, service"),
    ("count-negative", lambda s: s.update(Count=-1), "Count", ">= 0"),
    ("count-string", lambda s: s.update(Count="2"), "Count", "integer"),
    ("daemon-count", lambda s: s.update(Type="daemon", Count=3), "Count", "daemon"),
    ("ops-count", lambda s: s.update(Type="ops", Count=2), "Count", "ops"),
    (
        "constraint-operator",
        lambda s: s.update(Constraints=[{"Key": "zone", "Operator": "~", "Values": ["a"]}]),
        "Constraints[0].Operator",
        "unknown operator",
    ),
    (
        "constraint-in-no-values",
        lambda s: s.update(Constraints=[{"Key": "zone", "Operator": "in"}]),
        "Constraints[0].Values",
        "at least one",
    ),
    (
        "constraint-exists-values",
        lambda s: s.update(Constraints=[{"Key": "gpu", "Operator": "exists", "Values": ["x"]}]),
        "Constraints[0].Values",
        "no values",
    ),
    (
        "constraint-eq-two",
        lambda s: s.update(Constraints=[{"Key": "zone", "Operator": "=", "Values": ["a", "b"]}]),
        "Constraints[0].Values",
        "exactly one",
    ),
    ("tasks-missing", lambda s: s.pop("Tasks"), "Tasks", "missing"),
    (
        "network-domains",
        lambda s: task(s).update(Network={"Type": "Full", "Domains": ["a.com"]}),
        "Tasks[0].Network.Domains",
        "HTTP",
    ),
    ("label-not-string", lambda s: s.update(Labels={"flag": True}), "Labels.flag", "string"),
    (
        "url-not-http",
        lambda s: task(s)["InputSources"].append(
            {"Target": "/u", "Source": {"Type": "urlDownload", "Params": {"URL": "ftp://x/y"}}}
        ),
        "Tasks[0].InputSources[1].Source.Params.URL",
        "http",
    ),
    (
        "local-relative",
        lambda s: task(s)["InputSources"].append(
            {"Target": "/l", "Source": {"Type": "local", "Params": {"SourcePath": "etc"}}}
        ),
        "Tasks[0].InputSources[1].Source.Params.SourcePath",
        "absolute",
    ),
]


@pytest.mark.parametrize(("change", "field", "fragment"), [c[1:] for c in BAD], ids=[c[0] for c in BAD])
def test_bad_spec_names_field(change, field, fragment):
    spec = with_(change)
    with pytest.raises(SpecError) as info:
        Job.from_dict(spec)
    assert info.value.field == field
    assert str(info.value).startswith(f"{field}:")
    assert fragment in str(info.value)


def test_at_least_thirty_distinct_bad_inputs():
    assert len({c[0] for c in BAD}) >= 30


def test_base_spec_is_valid():
    Job.from_dict(base())


def test_bad_value_is_shown():
    with pytest.raises(SpecError) as info:
        Job.from_dict(with_(lambda s: src(s).update(Bucket="s3://stage/runs")))
    assert "'s3://stage/runs'" in str(info.value)
    assert info.value.value == "s3://stage/runs"


def test_hex_checksum_message_offers_the_base64_form():
    with pytest.raises(SpecError) as info:
        Job.from_dict(with_(lambda s: src(s).update(Key="a.csv", ChecksumSHA256=SHA_HEX)))
    assert SHA_B64 in str(info.value)


@pytest.mark.parametrize("bucket", ["LegacyBucket", "my.bucket-1", "UPPER_case"])
def test_legacy_bucket_names_with_capitals_are_accepted(bucket):
    Job.from_dict(with_(lambda s: src(s).update(Bucket=bucket)))


def test_valid_single_object_checksum_passes():
    Job.from_dict(
        with_(lambda s: src(s).update(Key="runs/a.csv", ChecksumSHA256=SHA_B64, VersionID="3/L4kq"))
    )


@pytest.mark.parametrize("key", ["runs/", "runs/log-*", ""])
@pytest.mark.parametrize("name", ["VersionID", "ChecksumSHA256"])
def test_version_or_checksum_on_prefix_only_warns(caplog, key, name):
    caplog.set_level(logging.WARNING, logger="airflow_provider_bacalhau.spec")
    Job.from_dict(with_(lambda s: src(s).update(Key=key, **{name: "whatever"})))
    field = f"Tasks[0].InputSources[0].Source.Params.{name}"
    records = [r for r in caplog.records if r.name == "airflow_provider_bacalhau.spec"]
    assert any(field in r.getMessage() for r in records), [r.getMessage() for r in records]


@pytest.mark.parametrize(
    "resources",
    [
        {"CPU": "500m", "Memory": "1gb", "Disk": "10GB", "GPU": "1"},
        {"CPU": "0.5", "Memory": "512 MiB"},
        {"CPU": 2, "Memory": "2Gi"},
        {"Memory": "1024"},
    ],
)
def test_good_resources_pass(resources):
    Job.from_dict(with_(lambda s: task(s).update(Resources=resources)))


@pytest.mark.parametrize("placeholder", ["{jobID}", "{executionID}", "{nodeID}", "{date}", "{time}"])
def test_all_documented_placeholders_pass(placeholder):
    Job.from_dict(with_(lambda s: pub(s).update(Key=f"r/{placeholder}/x")))


def test_builders_are_validated_too():
    job = Job.docker("busybox", inputs=[], env={"BACALHAU_X": "1"})
    with pytest.raises(SpecError, match=r"^Tasks\[0\]\.Env\.BACALHAU_X:"):
        job.to_dict()
    with pytest.raises(SpecError, match=r"Source\.Params\.Bucket"):
        S3Source("").validate()


def test_to_dict_can_skip_validation_for_inspection():
    job = Job.docker("", name="draft")
    assert job.to_dict(validate=False)["Tasks"][0]["Engine"] == {"Type": "docker", "Params": {}}
