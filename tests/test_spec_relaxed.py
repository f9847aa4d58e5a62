"""Rules where Bacalhau v1.9.3 is looser than the provider once was: a warning naming the field, or
the spec sent as written, never a refusal."""

from __future__ import annotations

import copy
import logging

import pytest
from spec_cases import P, docker, pub, src, task, with_

from airflow_provider_bacalhau.spec import Job

# Stricter than Bacalhau v1.9.3 before, and relaxed because such a job does not fail on every
# network: now a warning naming the field, and the job is built as written.
WARN = [
    ("placeholder-wrong-case", lambda s: pub(s).update(Key="r/{jobid}"), f"{P}.Key", "did you mean {jobID}"),
    ("placeholder-unknown", lambda s: pub(s).update(Key="r/{taskID}"), f"{P}.Key", "{nodeID}"),
    (
        "engine-unknown",
        lambda s: task(s)["Engine"].update(Type="vroomvroom"),
        "Tasks[0].Engine.Type",
        "'vroomvroom'",
    ),
    (
        "source-unknown",
        lambda s: task(s)["InputSources"][0]["Source"].update(Type="ftp"),
        "Tasks[0].InputSources[0].Source.Type",
        "'ftp'",
    ),
    (
        "publisher-unknown",
        lambda s: task(s)["Publisher"].update(Type="gcs"),
        "Tasks[0].Publisher.Type",
        "'gcs'",
    ),
    ("tasks-two", lambda s: s["Tasks"].append(copy.deepcopy(s["Tasks"][0])), "Tasks", "only the first task"),
    (
        "filter-on-single-object",
        lambda s: src(s).update(Key="runs/a.csv", Filter="(?=x)"),
        "Tasks[0].InputSources[0].Source.Params.Filter",
        "single object",
    ),
    (
        "target-relative-noop",
        lambda s: task(s).update(
            Engine={"Type": "noop"},
            InputSources=[
                {
                    "Target": "inputs",
                    "Source": {"Type": "s3", "Params": {"Bucket": "stage", "Key": "runs/r1/"}},
                }
            ],
        ),
        "Tasks[0].InputSources[0].Target",
        "not an absolute path",
    ),
]


@pytest.mark.parametrize(("change", "field", "fragment"), [c[1:] for c in WARN], ids=[c[0] for c in WARN])
def test_relaxed_rule_warns_naming_field(caplog, change, field, fragment):
    caplog.set_level(logging.WARNING, logger="airflow_provider_bacalhau.spec")
    Job.from_dict(with_(change)).to_dict()
    messages = [r.getMessage() for r in caplog.records if r.name == "airflow_provider_bacalhau.spec"]
    assert any(m.startswith(field) and fragment in m for m in messages), messages


@pytest.mark.parametrize("env", [["A"], ["A="], ["=x"]])
def test_docker_env_needs_only_a_string_without_bacalhau_prefix(env):
    spec = Job.from_dict(with_(lambda s: docker(s).update(EnvironmentVariables=env))).to_dict()
    assert spec["Tasks"][0]["Engine"]["Params"]["EnvironmentVariables"] == env


@pytest.mark.parametrize("name", ["ÄRGER", "名前", "X٣"])
def test_env_names_follow_go_unicode_rules(name):
    Job.from_dict(with_(lambda s: task(s).update(Env={name: "x"})))


@pytest.mark.parametrize(("create_as", "sent"), [("DIR", "dir"), ("NoCreate", "noCreate"), ("file", "file")])
def test_local_create_as_in_any_case_is_sent_canonical(create_as, sent):
    spec = with_(
        lambda s: task(s)["InputSources"].append(
            {
                "Target": "/l",
                "Source": {"Type": "local", "Params": {"SourcePath": "/data", "CreateAs": create_as}},
            }
        )
    )
    source = Job.from_dict(spec).to_dict()["Tasks"][0]["InputSources"][1]["Source"]
    assert source["Params"]["CreateAs"] == sent


def test_local_read_write_string_is_true_only_for_exact_true():
    spec = with_(
        lambda s: task(s)["InputSources"].append(
            {
                "Target": "/l",
                "Source": {"Type": "local", "Params": {"SourcePath": "/data", "ReadWrite": "TRUE"}},
            }
        )
    )
    source = Job.from_dict(spec).to_dict()["Tasks"][0]["InputSources"][1]["Source"]
    assert "ReadWrite" not in source["Params"]  # the node reads "TRUE" as false


def test_quoted_url_is_accepted_as_the_node_trims_quotes():
    Job.from_dict(
        with_(
            lambda s: task(s)["InputSources"].append(
                {
                    "Target": "/u",
                    "Source": {"Type": "urlDownload", "Params": {"URL": "'https://example.com/a.csv'"}},
                }
            )
        )
    )


def test_unknown_engine_is_sent_exactly_as_written():
    spec = with_(lambda s: task(s).update(Engine={"Type": "flibble", "Params": {"Some": "data"}}))
    assert Job.from_dict(spec).to_dict()["Tasks"][0]["Engine"] == {
        "Type": "flibble",
        "Params": {"Some": "data"},
    }


def test_two_tasks_are_sent_and_the_server_drops_the_extra():
    spec = with_(lambda s: s["Tasks"].append(copy.deepcopy(s["Tasks"][0])))
    assert len(Job.from_dict(spec).to_dict()["Tasks"]) == 2
