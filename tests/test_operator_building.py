"""Operator arguments -> job spec, names, templating: no Bacalhau server needed."""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from airflow.providers.common.compat.sdk import DAG, conf

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauJobOperator
from airflow_provider_bacalhau.operators._building import build_docker_job, coerce_publisher
from airflow_provider_bacalhau.operators._naming import sanitize_job_name, task_instance_job_name
from airflow_provider_bacalhau.spec import S3ManagedPublisher

# -- names ------------------------------------------------------------------------------------


def test_name_is_deterministic_and_safe():
    run_id = "manual__2026-11-21T18:00:00+00:00"
    name = task_instance_job_name("etl", "group.extract", run_id, 3)
    assert name == task_instance_job_name("etl", "group.extract", run_id, 3)
    assert name.startswith("airflow-etl-group-extract-manual-2026-11-21T18-00-00-00-00-3-")
    assert all(c.isalnum() or c == "-" for c in name) and len(name) <= 100


def test_names_that_sanitise_alike_stay_distinct():
    assert task_instance_job_name("d", "a.b", "r", -1) != task_instance_job_name("d", "a_b", "r", -1)
    assert task_instance_job_name("d", "t", "r", 0) != task_instance_job_name("d", "t", "r", 1)


def test_clean_short_names_are_kept_and_long_ones_shortened_with_a_hash():
    changed = sanitize_job_name("airflow-d-t-r--1")  # "--" collapsed: a hash keeps it unique
    assert changed.startswith("airflow-d-t-r-1-") and len(changed.rsplit("-", 1)[1]) == 10
    assert sanitize_job_name("airflow-d-t-r-0") == "airflow-d-t-r-0"
    long_a, long_b = "x" * 300 + "a", "x" * 300 + "b"
    assert len(sanitize_job_name(long_a)) == 100
    assert sanitize_job_name(long_a) != sanitize_job_name(long_b)


# -- publisher and docker job building -----------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("s3managed", {"Type": "s3managed"}),
        ("local", {"Type": "local"}),
        (
            {"type": "s3", "bucket": "b", "key": "out/{jobID}/", "encoding": "plain"},
            {"Type": "s3", "Params": {"Bucket": "b", "Key": "out/{jobID}/", "Encoding": "plain"}},
        ),
        (
            {"Type": "s3", "Params": {"bucket": "b", "key": "k", "region": "eu-west-1"}},
            {"Type": "s3", "Params": {"Bucket": "b", "Key": "k", "Region": "eu-west-1", "Encoding": "gzip"}},
        ),
        ("s3://b/results/", {"Type": "s3", "Params": {"Bucket": "b", "Key": "results/", "Encoding": "gzip"}}),
        (S3ManagedPublisher(), {"Type": "s3managed"}),
    ],
)
def test_publisher_forms(value, expected):
    spec = coerce_publisher(value).to_spec()
    assert spec["Type"] == expected["Type"]
    for key, param in expected.get("Params", {}).items():
        assert spec["Params"][key] == param


@pytest.mark.parametrize("value", ["s3", {"bucket": "b"}, 42])
def test_bad_publishers_name_the_argument(value):
    with pytest.raises(SpecError, match="publisher"):
        coerce_publisher(value)


def test_publisher_uri_without_bucket_names_the_argument():
    with pytest.raises(SpecError, match="^publisher: the s3:// URI has no bucket"):
        coerce_publisher("s3:///results/")


def docker(**overrides):
    args = dict(
        image="busybox",
        entrypoint=["sh", "-c"],
        parameters="echo hi",
        env={"MODE": "x"},
        working_dir=None,
        publisher=None,
        result_paths=None,
        resources=None,
        timeouts=None,
        count=1,
        constraints=None,
        labels=None,
        namespace=None,
        network=None,
    )
    args.update(overrides)
    return build_docker_job(**args).to_dict()


def test_docker_job_from_friendly_arguments():
    job = docker(
        publisher={"type": "s3", "bucket": "b", "key": "k/", "encoding": "plain"},
        resources={"cpu": "500m", "memory": "256mb"},
        timeouts={"execution_timeout": 60},
        network="None",
        count="2",
        labels={"team": "data"},
        constraints=[{"key": "zone", "operator": "=", "values": ["a"]}],
    )
    task = job["Tasks"][0]
    assert task["Engine"]["Params"] == {
        "Image": "busybox",
        "Entrypoint": ["sh", "-c"],
        "Parameters": ["echo hi"],
        "EnvironmentVariables": ["MODE=x"],
    }
    assert task["ResultPaths"] == [{"Name": "outputs", "Path": "/outputs"}]  # default with a publisher
    assert task["Resources"] == {"CPU": "500m", "Memory": "256mb"}
    assert task["Timeouts"] == {"ExecutionTimeout": 60}
    assert task["Network"]["Type"] == "None"
    assert job["Count"] == 2 and job["Labels"] == {"team": "data"}
    assert job["Constraints"] == [{"Key": "zone", "Operator": "=", "Values": ["a"]}]


def test_no_publisher_means_no_result_paths():
    assert "ResultPaths" not in docker()["Tasks"][0]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"image": ""}, "image"),
        ({"working_dir": "relative"}, "WorkingDirectory"),
        ({"env": {"BACALHAU_X": "1"}}, "EnvironmentVariables"),
        ({"resources": {"cpu": "lots"}}, "CPU"),
        ({"publisher": {"type": "s3", "bucket": "b", "key": ""}}, "Key"),
    ],
)
def test_invalid_arguments_fail_naming_the_field(overrides, field):
    with pytest.raises(SpecError, match=field):
        docker(**overrides)


def test_s3_publisher_from_arguments_is_placed_where_the_nodes_see_s3(monkeypatch):
    """The publisher is run by the node: its Endpoint/Region are the compute side's, not Airflow's."""
    import json

    monkeypatch.setenv(
        "AIRFLOW_CONN_BAC_NODES",
        json.dumps(
            {
                "conn_type": "bacalhau",
                "host": "h",
                "extra": {"s3_endpoint": "http://s3.nodes.internal:8333", "s3_region": "eu-central-1"},
            }
        ),
    )
    monkeypatch.setenv(
        "AIRFLOW_CONN_AWS_DEFAULT",
        json.dumps(
            {
                "conn_type": "aws",
                "extra": {"endpoint_url": "http://localhost:8333", "region_name": "us-east-1"},
            }
        ),
    )

    def publisher(**kwargs):
        op = BacalhauDockerJobOperator(task_id="t", image="busybox", bacalhau_conn_id="bac_nodes", **kwargs)
        return op.build_job({}).to_dict()["Tasks"][0]["Publisher"]

    assert publisher(publisher="s3://out/runs/")["Params"] == {
        "Bucket": "out",
        "Key": "runs/",
        "Endpoint": "http://s3.nodes.internal:8333",
        "Region": "eu-central-1",
        "Encoding": "gzip",
    }
    flat = publisher(publisher={"type": "s3", "bucket": "out", "key": "k/", "region": "us-west-2"})
    assert (flat["Params"]["Endpoint"], flat["Params"]["Region"]) == (
        "http://s3.nodes.internal:8333",
        "us-west-2",
    )
    own = publisher(
        publisher={"Type": "s3", "Params": {"Bucket": "out", "Key": "k/", "Endpoint": "http://mine:9000"}}
    )
    assert own["Params"] == {"Bucket": "out", "Key": "k/", "Endpoint": "http://mine:9000", "Encoding": "gzip"}
    # Per-operator overrides win; "" means none (AWS or the node's default).
    aws = publisher(publisher="s3://out/runs/", s3_endpoint="", s3_region="us-east-2")
    assert aws["Params"] == {"Bucket": "out", "Key": "runs/", "Region": "us-east-2", "Encoding": "gzip"}
    assert publisher(publisher="s3managed") == {"Type": "s3managed"}


def test_bad_compute_s3_override_fails_the_task_naming_it():
    from airflow.providers.common.compat.sdk import AirflowFailException

    op = BacalhauDockerJobOperator(task_id="t", image="busybox", s3_endpoint="minio:9000")
    with pytest.raises(AirflowFailException, match="s3_endpoint: must be a URL"):
        op.compute_s3_view()
    assert {"s3_endpoint", "s3_region"} <= set(op.template_fields)
    with pytest.raises(ValueError, match="node_support_check"):
        BacalhauDockerJobOperator(task_id="u", image="busybox", node_support_check="maybe")


# -- operators: defaults and templating -----------------------------------------------------------


def test_shared_defaults():
    op = BacalhauDockerJobOperator(task_id="t", image="busybox")
    assert op.bacalhau_conn_id == "bacalhau_default" and op.aws_conn_id == "aws_default"
    assert op.wait_for_termination is True and op.fail_on_nonzero_exit is True
    assert op.poll_interval == 10.0 and op.timeout == 24 * 3600.0
    assert op.deferrable == conf.getboolean("operators", "default_deferrable", fallback=False)
    assert BacalhauDockerJobOperator(task_id="u", image="x", timeout=timedelta(minutes=2)).timeout == 120
    with pytest.raises(ValueError, match="poll_interval"):
        BacalhauDockerJobOperator(task_id="v", image="x", poll_interval=0)
    assert {"image", "parameters", "publisher", "inputs", "job_name"} <= set(op.template_fields)
    assert [link.name for link in op.operator_extra_links] == ["Bacalhau Job"]


def test_job_file_is_a_template_but_other_json_values_are_not(tmp_path):
    (tmp_path / "job.yaml").write_text(
        "Type: batch\nTasks:\n  - Name: main\n    Engine:\n      Type: docker\n      Params:\n"
        '        Image: busybox\n        Parameters: ["echo {{ params.word }}"]\n'
    )
    with DAG(
        "tmpl",
        schedule=None,
        start_date=datetime(2024, 1, 1),
        template_searchpath=[str(tmp_path)],
        params={"word": "default"},
    ):
        op = BacalhauJobOperator(task_id="t", job="job.yaml", inputs=["s3://bucket/{{ params.word }}.json"])
    op.resolve_template_files()
    op.render_template_fields({"params": {"word": "fromui"}})
    assert "echo fromui" in op.job
    assert op.inputs == ["s3://bucket/fromui.json"]  # not read as a template file
    job = op.build_job({}).to_dict()
    assert job["Tasks"][0]["Engine"]["Params"]["Parameters"] == ["echo fromui"]


def test_absolute_job_file_outside_the_search_path(tmp_path):
    path = tmp_path / "job.json"
    path.write_text(
        '{"Type": "batch", "Tasks": [{"Name": "main", "Engine": {"Type": "docker",'
        ' "Params": {"Image": "busybox"}}}]}'
    )
    with DAG("abs", schedule=None, start_date=datetime(2024, 1, 1)):
        op = BacalhauJobOperator(task_id="t", job=str(path))
    op.resolve_template_files()
    op.render_template_fields({})
    assert op.build_job({}).to_dict()["Tasks"][0]["Engine"]["Params"]["Image"] == "busybox"
