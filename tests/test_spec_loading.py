"""Loading job specs as ``bacalhau job run`` does, including the public docs' examples."""

from __future__ import annotations

import json
import logging
import textwrap

import pytest

from airflow_provider_bacalhau.spec import (
    DockerEngine,
    InputSource,
    Job,
    S3Publisher,
    S3Source,
    SpecError,
)

LOGGER = "airflow_provider_bacalhau.spec"


def yaml_job(task_extra: str) -> str:
    """A docker job whose task gets the given (already indented) YAML lines."""
    return textwrap.dedent("""\
        Name: docs-example
        Type: batch
        Count: 1
        Tasks:
          - Name: main
            Engine:
              Type: docker
              Params:
                Image: busybox:1.37.0
                Entrypoint: ["/bin/sh", "-c"]
                Parameters: ["ls -R /data"]
        """) + textwrap.indent(textwrap.dedent(task_extra), "    ")


ENGINE = {
    "Type": "docker",
    "Params": {"Image": "busybox:1.37.0", "Entrypoint": ["/bin/sh", "-c"], "Parameters": ["ls -R /data"]},
}

# Seed 002 (S3 source spec page), written correctly: Target in the same list item as Source.
DOCS_S3_INPUT = """\
InputSources:
  - Source:
      Type: "s3"
      Params:
        Bucket: "my-bucket"
        Key: "data/"
        Endpoint: "https://s3.us-west-2.amazonaws.com"
        ChecksumSHA256: "e3b0c44b542b..."
    Target: "/data"
"""

# The same example as the docs print it: "- Target" opens a second list item.
DOCS_S3_INPUT_BROKEN = """\
InputSources:
  - Source:
      Type: "s3"
      Params:
        Bucket: "my-bucket"
        Key: "data/"
        Endpoint: "https://s3.us-west-2.amazonaws.com"
        ChecksumSHA256: "e3b0c44b542b..."
  - Target: "/data"
"""

# Seed 001 (S3 publisher page), placed under Publisher with its params under Params.
DOCS_S3_PUBLISHER = """\
Publisher:
  Type: "s3"
  Params:
    Bucket: "my-task-results"
    Key: "task123/result.tar.gz"
    Endpoint: ""
    Compress: true
"""

# Seed 004 (s3managed page), verbatim.
DOCS_S3MANAGED = """\
name: managed-publisher-job
type: batch
count: 1
tasks:
  - name: main
    engine:
      type: docker
      params:
        image: busybox:1.37.0
        entrypoint:
          - /bin/sh
        parameters:
          - -c
          - echo Hello, I was stored by Managed Publisher!
    publisher:
      type: s3managed
"""

# Bacalhau's testdata/jobs/docker-hello.yaml style: lower-case keys.
DOCKER_HELLO = """\
name: A Simple Docker Job
type: batch
count: 1
tasks:
  - name: main
    engine:
      type: docker
      params:
        image: busybox:1.37.0
        entrypoint:
          - /bin/sh
        parameters:
          - -c
          - echo hello world
"""


def test_docs_s3_input_example_loads_and_warns_about_checksum_on_prefix(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    job = Job.from_yaml(yaml_job(DOCS_S3_INPUT))
    assert job.to_dict(validate=False) == {
        "Name": "docs-example",
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": ENGINE,
                "InputSources": [
                    {
                        "Target": "/data",
                        "Source": {
                            "Type": "s3",
                            "Params": {
                                "Bucket": "my-bucket",
                                "Key": "data/",
                                "Endpoint": "https://s3.us-west-2.amazonaws.com",
                                "ChecksumSHA256": "e3b0c44b542b...",
                            },
                        },
                    }
                ],
            }
        ],
    }
    warned = [r.getMessage() for r in caplog.records if r.name == LOGGER]
    assert any("Tasks[0].InputSources[0].Source.Params.ChecksumSHA256" in m for m in warned)
    assert any("prefix" in m for m in warned)


def test_docs_broken_target_item_gives_helpful_error():
    with pytest.raises(SpecError) as info:
        Job.from_yaml(yaml_job(DOCS_S3_INPUT_BROKEN))
    assert info.value.field == "Tasks[0].InputSources[1].Target"
    assert "Target belongs in the same list item as Source" in str(info.value)


def test_docs_broken_form_for_ipfs_too():
    broken = (
        "InputSources:\n  - Source:\n      Type: ipfs\n      Params:\n        CID: Qm1\n  - Target: /data\n"
    )
    with pytest.raises(SpecError, match="Target belongs in the same list item as Source"):
        Job.from_yaml(yaml_job(broken))


def test_docs_s3_publisher_example_maps_compress_to_encoding(caplog):
    caplog.set_level(logging.INFO, logger=LOGGER)
    job = Job.from_yaml(yaml_job(DOCS_S3_PUBLISHER))
    assert job.to_dict() == {
        "Name": "docs-example",
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": ENGINE,
                "Publisher": {
                    "Type": "s3",
                    "Params": {
                        "Bucket": "my-task-results",
                        "Key": "task123/result.tar.gz",
                        "Encoding": "gzip",
                    },
                },
            }
        ],
    }
    assert any(
        "Compress is not a Bacalhau v1.9 parameter" in r.getMessage()
        for r in caplog.records
        if r.name == LOGGER
    )


def test_compress_false_means_plain():
    job = Job.from_yaml(yaml_job(DOCS_S3_PUBLISHER.replace("Compress: true", "Compress: false")))
    assert job.task.publisher.encoding == "plain"
    assert S3Publisher("b", "k", compress=False).to_spec()["Params"]["Encoding"] == "plain"
    assert S3Publisher("b", "k", compress=True) == S3Publisher("b", "k", encoding="gzip")


def test_docs_s3managed_job():
    job = Job.from_yaml(DOCS_S3MANAGED)
    assert job.to_dict() == {
        "Name": "managed-publisher-job",
        "Type": "batch",
        "Count": 1,
        "Tasks": [
            {
                "Name": "main",
                "Engine": {
                    "Type": "docker",
                    "Params": {
                        "Image": "busybox:1.37.0",
                        "Entrypoint": ["/bin/sh"],
                        "Parameters": ["-c", "echo Hello, I was stored by Managed Publisher!"],
                    },
                },
                "Publisher": {"Type": "s3managed"},
            }
        ],
    }


def test_lower_case_testdata_job_loads():
    job = Job.from_yaml(DOCKER_HELLO)
    assert job.name == "A Simple Docker Job"
    assert job.task.engine == DockerEngine("busybox:1.37.0", ["/bin/sh"], ["-c", "echo hello world"])


def test_keys_in_any_case_but_map_keys_keep_case():
    spec = {
        "NAME": "x",
        "tYpE": "batch",
        "tasks": [
            {
                "NAME": "main",
                "engine": {"TYPE": "docker", "PARAMS": {"IMAGE": "busybox"}},
                "env": {"MyVar": "1"},
                "meta": {"Owner": "Team"},
            }
        ],
        "labels": {"Airflow-Dag": "etl"},
    }
    with pytest.raises(SpecError, match=r"Tasks\[0\]\.Env\.MyVar"):
        Job.from_dict(spec)
    spec["tasks"][0]["env"] = {"MY_VAR": "1"}
    out = Job.from_dict(spec).to_dict()
    assert out["Labels"] == {"Airflow-Dag": "etl"}
    assert out["Tasks"][0]["Meta"] == {"Owner": "Team"}
    assert out["Tasks"][0]["Env"] == {"MY_VAR": "1"}


def test_job_wrapper_and_server_fields_are_accepted(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    wrapped = {
        "Job": {
            "ID": "j-1",
            "Version": 3,
            "State": {"StateType": "Completed"},
            "Type": "batch",
            "Count": 1,
            "Tasks": [
                {
                    "Name": "main",
                    "Engine": {"Type": "noop"},
                    "Publisher": {"Type": ""},
                    "Network": {"Type": "Default"},
                    "Timeouts": {},
                }
            ],
        },
        "Force": False,
    }
    job = Job.from_dict(wrapped)
    assert job.task.publisher is None
    assert job.to_dict()["Tasks"][0] == {
        "Name": "main",
        "Engine": {"Type": "noop"},
        "Network": {"Type": "Default"},
    }
    assert not [r for r in caplog.records if r.name == LOGGER]


def test_unknown_fields_are_logged(caplog):
    caplog.set_level(logging.WARNING, logger=LOGGER)
    Job.from_yaml(DOCKER_HELLO + "    publishers:\n      type: s3managed\n")
    assert any("Tasks[0].publishers: unknown field" in r.getMessage() for r in caplog.records)


def test_missing_type_defaults_to_batch_and_count_to_one():
    job = Job.from_dict({"Tasks": [{"Engine": {"Type": "noop"}}]})
    assert (job.type, job.count, job.task.name) == ("batch", 1, "main")
    assert job.to_dict()["Count"] == 1


def test_count_zero_is_sent_explicitly():
    job = Job.from_dict({"Type": "ops", "Count": 0, "Tasks": [{"Engine": {"Type": "noop"}}]})
    assert job.to_dict()["Count"] == 0


def test_yaml_syntax_error_names_line_and_column():
    with pytest.raises(SpecError) as info:
        Job.from_yaml("name: x\ntasks:\n  - name: main\n   engine: [unclosed\n")
    assert "line 4" in str(info.value) and "column" in str(info.value)


def test_empty_yaml():
    with pytest.raises(SpecError, match="empty"):
        Job.from_yaml("   \n")


def test_json_text_loads_through_from_yaml():
    job = Job.from_yaml(
        json.dumps({"Type": "batch", "Count": 2, "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]})
    )
    assert job.count == 2 and job.task.name == "t"


def test_from_file_yaml_json_and_errors(tmp_path):
    (tmp_path / "a.yaml").write_text(DOCKER_HELLO)
    (tmp_path / "b.yml").write_text(DOCS_S3MANAGED)
    (tmp_path / "c.json").write_text(json.dumps({"Job": Job.from_yaml(DOCKER_HELLO).to_dict()}))
    (tmp_path / "d.json").write_text('{"Type": "batch",\n "Tasks": [,]}')
    (tmp_path / "e.txt").write_text(DOCKER_HELLO)
    (tmp_path / "f.yaml").write_text(DOCKER_HELLO.replace("busybox:1.37.0", "''"))
    assert Job.from_file(tmp_path / "a.yaml") == Job.from_file(str(tmp_path / "c.json"))
    assert Job.from_file(tmp_path / "b.yml").name == "managed-publisher-job"
    with pytest.raises(SpecError, match="JSON syntax error at line 2"):
        Job.from_file(tmp_path / "d.json")
    with pytest.raises(SpecError, match=r"\.yaml, \.yml or \.json"):
        Job.from_file(tmp_path / "e.txt")
    with pytest.raises(SpecError, match=r"Engine\.Params\.Image.*f\.yaml") as info:
        Job.from_file(tmp_path / "f.yaml")
    assert info.value.field == "Tasks[0].Engine.Params.Image"
    with pytest.raises(SpecError, match="cannot read"):
        Job.from_file(tmp_path / "missing.yaml")


def test_local_directory_alias_kept_and_readwrite_string_accepted():
    job = Job.from_yaml(
        yaml_job("""\
        InputSources:
          - Source:
              Type: "localDirectory"
              Params:
                SourcePath: "/etc/config"
                ReadWrite: "true"
            Target: "/config"
        """)
    )
    assert job.to_dict()["Tasks"][0]["InputSources"] == [
        {
            "Target": "/config",
            "Source": {"Type": "localDirectory", "Params": {"SourcePath": "/etc/config", "ReadWrite": True}},
        }
    ]


def test_numbers_in_string_maps_become_strings_booleans_do_not():
    job = Job.from_yaml(yaml_job("Env:\n  PORT: 8080\n"))
    assert job.task.env == {"PORT": "8080"}
    with pytest.raises(SpecError, match=r"Tasks\[0\]\.Env\.DEBUG: must be a string"):
        Job.from_yaml(yaml_job("Env:\n  DEBUG: yes\n"))


def test_full_round_trip_preserves_every_field():
    text = yaml_job("""\
        Env: {MODE: prod}
        Meta: {owner: data}
        InputSources:
          - Alias: in
            Target: /inputs/in
            Source: {Type: s3, Params: {Bucket: stage, Key: "runs/r1/a.csv", Region: us-east-1,
                     VersionID: v1, ChecksumSHA256: "aLgNZhlhklWk0ATVRHbeUfkVes0KnZfNKUoKOGLK090=",
                     Partition: {Type: object}}}
          - Target: /inputs/url
            Source: {Type: urlDownload, Params: {URL: "https://example.com/f.txt"}}
          - Target: /inputs/ipfs
            Source: {Type: ipfs, Params: {CID: Qm1}}
          - Target: /inputs/inline
            Source: {Type: inline, Params: {URL: "data:text/plain;base64,aGk="}}
        ResultPaths: [{Name: outputs, Path: /outputs}]
        Publisher: {Type: s3, Params: {Bucket: results, Key: "r/{jobID}/", Encoding: plain,
                    Region: us-east-1, Endpoint: "http://127.0.0.1:9000"}}
        Resources: {CPU: 500m, Memory: 1gb, Disk: 2gb, GPU: "0"}
        Network: {Type: http, Domains: [example.com]}
        Timeouts: {ExecutionTimeout: 60, QueueTimeout: 30, TotalTimeout: 120}
        """).replace(
        "Count: 1",
        "Count: 2\nPriority: 5\nNamespace: team\nLabels: {a: b}\n"
        "Meta: {k: v}\nConstraints: [{Key: zone, Operator: in, "
        "Values: [a, b]}]",
    )
    job = Job.from_yaml(text)
    data = job.to_dict()
    assert Job.from_dict(data) == job
    assert Job.from_dict(json.loads(json.dumps(data))).to_dict() == data
    assert data["Tasks"][0]["Network"] == {"Type": "HTTP", "Domains": ["example.com"]}
    assert data["Tasks"][0]["InputSources"][0]["Source"]["Params"]["Partition"] == {"Type": "object"}
    assert data["Constraints"] == [{"Key": "zone", "Operator": "in", "Values": ["a", "b"]}]


def test_builder_equals_loaded_spec():
    built = Job.docker(
        "busybox:1.37.0",
        entrypoint=["/bin/sh", "-c"],
        parameters=["ls -R /data"],
        name="docs-example",
        inputs=[InputSource("/data", S3Source("my-bucket", "data/"))],
    )
    loaded = Job.from_yaml(
        yaml_job(
            "InputSources:\n  - Target: /data\n    Source: {Type: s3, "
            "Params: {Bucket: my-bucket, Key: data/}}\n"
        )
    )
    assert built == loaded
    assert Job.from_dict(built.to_dict()) == built


def test_json_with_tabs_loads():
    text = '{\n\t"Type": "batch",\n\t"Tasks": [{"Engine": {"Type": "noop"}}]\n}'
    assert Job.from_yaml(text).task.engine.to_spec() == {"Type": "noop"}


def test_unrendered_airflow_template_in_key_is_not_a_placeholder_error(caplog):
    job = Job.docker("busybox", publisher=S3Publisher("r", "runs/{{ ds }}/{jobID}"))
    assert job.to_dict()["Tasks"][0]["Publisher"]["Params"]["Key"] == "runs/{{ ds }}/{jobID}"
    with caplog.at_level(logging.WARNING, logger="airflow_provider_bacalhau.spec"):
        Job.docker("busybox", publisher=S3Publisher("r", "runs/{{ ds }}/{executionId}")).to_dict()
    assert "did you mean {executionID}" in caplog.text
