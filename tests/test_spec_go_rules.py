"""The provider checks what Bacalhau v1.9.3's nodes check, the same way (issue 8 §4).

Regular expressions are Go RE2, Partition.Type is case-sensitive, S3 inputs cannot run in ops or
daemon jobs, and every job file of Bacalhau's own repository that the server accepts loads.
"""

from __future__ import annotations

import base64
import hashlib
import json
import logging
from pathlib import Path

import pytest

from airflow_provider_bacalhau.spec import Job, SpecError

JOBS = Path(__file__).parent / "data" / "bacalhau-jobs"
SRC = "Tasks[0].InputSources[0].Source"
SHA_B64 = base64.b64encode(hashlib.sha256(b"x").digest()).decode()


def s3_job(params: dict, job_type: str = "batch", count: int = 1) -> dict:
    return {
        "Type": job_type,
        "Count": count,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {"Type": "docker", "Params": {"Image": "busybox"}},
                "InputSources": [
                    {
                        "Target": "/in",
                        "Source": {"Type": "s3", "Params": {"Bucket": "stage", "Key": "runs/", **params}},
                    }
                ],
            }
        ],
    }


def sent_params(spec: dict) -> dict:
    return Job.from_dict(spec).to_dict()["Tasks"][0]["InputSources"][0]["Source"]["Params"]


# --- RE2 ----------------------------------------------------------------------------------

GO_REFUSES = [
    r"(?=\.csv)",
    r"(?!tmp)",
    r"(?<=a)b",
    r"(a)\1",
    r"(?P=n)",
    r"a++",
    r"(?>a)",
    r"\Z",
    r"a{1001}",
    r"(a{100}){100}",
    r"\C",
    r"(?P<n>a)(?P<n>b)",
    r"(?P<名>a)",
    "(" * 1001 + "a" + ")" * 1001,
]
GO_ACCEPTS = [
    r"\pL",
    r"\p{Greek}+\.txt$",
    r"(?P<day>\d{2})",
    r"(?<day>\d{2})",
    r"(?i)\.CSV$",
    r"\Qa.b\E",
    r"[[:alpha:]]",
    r"\z",
    r"a{1000}",
    "(" * 50 + "a" + ")" * 50,
]


@pytest.mark.parametrize("pattern", GO_REFUSES)
def test_filter_go_refuses_is_refused_naming_the_field(pattern):
    with pytest.raises(SpecError) as info:
        Job.from_dict(s3_job({"Filter": pattern}))
    assert info.value.field == f"{SRC}.Params.Filter"
    assert "RE2" in str(info.value)


@pytest.mark.parametrize("pattern", GO_ACCEPTS)
def test_filter_go_accepts_is_sent(pattern):
    assert sent_params(s3_job({"Filter": pattern}))["Filter"] == pattern


@pytest.mark.parametrize("pattern", [r"(?<=x)\d", r"(\w)\1"])
def test_partition_pattern_is_go_re2(pattern):
    with pytest.raises(SpecError) as info:
        Job.from_dict(s3_job({"Partition": {"Type": "regex", "Pattern": pattern}}, count=2))
    assert info.value.field == f"{SRC}.Params.Partition.Pattern"


def test_partition_pattern_with_unicode_class_is_accepted():
    params = sent_params(s3_job({"Partition": {"Type": "regex", "Pattern": r"(\pL+)-"}}, count=2))
    assert params["Partition"] == {"Type": "regex", "Pattern": r"(\pL+)-"}


# --- Partition ----------------------------------------------------------------------------


@pytest.mark.parametrize("written", ["Regex", "REGEX", " regex "])
def test_partition_type_is_sent_in_the_one_case_the_node_accepts(written):
    params = sent_params(s3_job({"Partition": {"Type": written, "Pattern": "x"}}, count=2))
    assert params["Partition"]["Type"] == "regex"


@pytest.mark.parametrize(
    ("partition", "field", "fragment"),
    [
        ({"Type": "regexp"}, "Type", "one of none, object, regex"),
        ({"Type": "regex"}, "Pattern", "needs a Pattern"),
        ({"Type": "substring", "StartIndex": 3, "EndIndex": 3}, "EndIndex", "greater than"),
        ({"Type": "substring", "StartIndex": -1, "EndIndex": 3}, "StartIndex", ">= 0"),
        ({"Type": "date"}, "DateFormat", "required"),
        ({"Type": "object", "StartIndex": "1"}, "StartIndex", "integer"),
    ],
)
def test_partition_checks_of_the_node_are_done_here(partition, field, fragment):
    with pytest.raises(SpecError) as info:
        Job.from_dict(s3_job({"Partition": partition}))
    assert info.value.field == f"{SRC}.Params.Partition.{field}"
    assert fragment in str(info.value)


def test_partition_indices_are_not_checked_for_other_types():
    Job.from_dict(s3_job({"Partition": {"Type": "object", "EndIndex": -1}}, count=2))


# --- ops and daemon jobs ------------------------------------------------------------------


@pytest.mark.parametrize("job_type", ["ops", "daemon"])
def test_s3_input_on_ops_or_daemon_job_is_refused_naming_the_source(job_type):
    with pytest.raises(SpecError) as info:
        Job.from_dict(s3_job({}, job_type=job_type, count=0))
    assert info.value.field == f"{SRC}.Type"
    assert job_type in str(info.value) and "Count" in str(info.value)


@pytest.mark.parametrize("job_type", ["batch", "service"])
def test_s3_input_on_batch_or_service_job_is_fine(job_type):
    Job.from_dict(s3_job({}, job_type=job_type))


def test_url_input_on_daemon_job_is_fine():
    spec = s3_job({}, job_type="daemon", count=0)
    spec["Tasks"][0]["InputSources"][0]["Source"] = {
        "Type": "urlDownload",
        "Params": {"URL": "https://example.com/a.csv"},
    }
    Job.from_dict(spec)


# --- checksums ----------------------------------------------------------------------------


def test_multipart_composite_checksum_is_accepted():
    params = sent_params(s3_job({"Key": "runs/big.tar.gz", "ChecksumSHA256": f"{SHA_B64}-3"}))
    assert params["ChecksumSHA256"] == f"{SHA_B64}-3"


@pytest.mark.parametrize("value", ["abc-3", f"{SHA_B64}-", f"-{SHA_B64}"])
def test_broken_composite_checksum_is_refused(value):
    with pytest.raises(SpecError) as info:
        Job.from_dict(s3_job({"Key": "runs/big.tar.gz", "ChecksumSHA256": value}))
    assert info.value.field == f"{SRC}.Params.ChecksumSHA256"


# --- Bacalhau's own job files -------------------------------------------------------------

# Every job file of Bacalhau v1.9.3 (testdata/jobs, test_integration/common_assets/job_specs)
# that its server accepts at submit; empty.yaml is the one it refuses (testdata/data.go marks it
# invalid). See tests/data/bacalhau-jobs/ORIGIN.md.
ACCEPTED = sorted(
    p.name for p in JOBS.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.name != "empty.yaml"
)


def test_the_copied_job_files_are_all_there():
    assert len(ACCEPTED) == 18


@pytest.mark.parametrize("name", ACCEPTED)
def test_every_job_file_bacalhau_accepts_is_accepted(name):
    job = Job.from_file(JOBS / name)
    body = job.to_dict()
    json.dumps(body)
    assert body["Type"] == job.type


def test_empty_job_file_is_refused():
    with pytest.raises(SpecError, match="empty"):
        Job.from_file(JOBS / "empty.yaml")


def test_wasm_entry_module_without_leading_slash_is_sent_as_written():
    body = Job.from_file(JOBS / "wasm.yaml").to_dict()
    task = body["Tasks"][0]
    assert task["Engine"]["Params"]["EntryModule"] == "wasm.main"
    assert task["InputSources"][0]["Target"] == "/wasm.main"


@pytest.mark.parametrize(
    ("name", "engine"), [("custom-task-type.yaml", "flibble"), ("unsupported_engine_type.yml", "vroomvroom")]
)
def test_unknown_engine_is_a_warning_naming_the_type(caplog, name, engine):
    caplog.set_level(logging.WARNING, logger="airflow_provider_bacalhau.spec")
    body = Job.from_file(JOBS / name).to_dict()
    assert body["Tasks"][0]["Engine"]["Type"] == engine
    assert any(
        r.levelno == logging.WARNING
        and "Tasks[0].Engine.Type" in r.getMessage()
        and repr(engine) in r.getMessage()
        for r in caplog.records
    )


def test_files_match_the_mirror_when_it_is_here():
    """The copies are unmodified (checked only where Bacalhau's git mirror exists)."""
    import shutil
    import subprocess

    repo = Path("/work/.mirror/bacalhau-project+bacalhau/repo")
    if not repo.exists() or shutil.which("git") is None:
        pytest.skip("no Bacalhau mirror on this machine")
    origin = (JOBS / "ORIGIN.md").read_text()
    for name in [*ACCEPTED, "empty.yaml"]:
        path = next(
            line.split("`")[1]
            for line in origin.splitlines()
            if line.startswith("- `") and line.split("`")[1].endswith("/" + name)
        )
        blob = subprocess.run(
            ["git", "-C", str(repo), "show", f"v1.9.3:{path}"], capture_output=True, check=True
        ).stdout
        assert blob == (JOBS / name).read_bytes(), name


def test_wasm_environment_variables_are_not_checked_and_warn_as_bacalhau_ignores_them(caplog):
    spec = {
        "Type": "batch",
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "wasm",
                    "Params": {"EntryModule": "/m.wasm", "EnvironmentVariables": ["A=1"]},
                },
            }
        ],
    }
    caplog.set_level(logging.WARNING, logger="airflow_provider_bacalhau.spec")
    body = Job.from_dict(spec).to_dict()
    assert body["Tasks"][0]["Engine"]["Params"]["EnvironmentVariables"] == ["A=1"]
    assert "Tasks[0].Engine.Params.EnvironmentVariables is ignored" in caplog.text


def test_ports_are_accepted_with_the_deprecated_full_network():
    """Full is Host's old name and supports ports (pkg/models/network.go SupportPortAllocation)."""
    spec = s3_job({})
    spec["Tasks"][0]["Network"] = {"Type": "Full", "Ports": [{"Name": "http", "Static": 8080}]}
    assert Job.from_dict(spec).to_dict()["Tasks"][0]["Network"]["Type"] == "Full"


def test_ports_are_refused_with_the_default_network():
    spec = s3_job({})
    spec["Tasks"][0]["Network"] = {"Ports": [{"Name": "http", "Static": 8080}]}
    with pytest.raises(SpecError) as info:
        Job.from_dict(spec)
    assert info.value.field == "Tasks[0].Network.Ports"
