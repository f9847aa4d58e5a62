"""The devstack speaks Bacalhau v1.9.3's REST API: shapes, validation, upsert, lookups, errors."""

from __future__ import annotations

import base64
import json

import pytest
from devstack_helpers import JOBS, busybox_job, get_job, noop_job, submit, unique, wait_for

from airflow_provider_bacalhau.errors import BacalhauApiError


def test_submit_answers_ids_and_null_warnings_and_sets_server_fields(api):
    answer = submit(api, noop_job())
    assert answer["JobID"].startswith("j-") and len(answer["JobID"]) == 38
    assert "-" in answer["EvaluationID"] and not answer["EvaluationID"].startswith(("j-", "e-"))
    assert answer["Warnings"] is None
    job = wait_for(api, answer["JobID"])["Job"]
    assert job["Name"] == job["ID"] and job["Namespace"] == "default"
    assert job["Count"] == 1 and job["Version"] == 1 and job["Revision"] >= 1
    assert job["State"]["StateType"] == "Completed"
    assert job["CreateTime"] > 1_600_000_000 * 10**9  # Unix nanoseconds
    task = job["Tasks"][0]
    assert (
        task["Publisher"] == {"Type": ""}
        and task["Network"] == {"Type": "Default"}
        and task["Timeouts"] == {}
    )
    assert task["Resources"] == {"CPU": "500m", "Memory": "512Mb"}
    assert "bacalhau.org/requester.id" in job["Meta"]


def test_submit_decodes_lower_case_keys_and_post_works(api):
    body = {
        "job": {
            "type": "batch",
            "name": unique("lower"),
            "tasks": [{"name": "main", "engine": {"type": "noop"}}],
        }
    }
    resp = api.post(JOBS, json=body)
    assert resp.status_code == 200, resp.text
    assert get_job(api, resp.json()["JobID"])["Job"]["Tasks"][0]["Engine"] == {"Type": "noop"}


def test_submit_warnings_for_ignored_fields(api):
    job = noop_job(ID="j-mine", State={"StateType": "Running"}, Meta={"bacalhau.org/x": "1", "mine": "2"})
    job["Tasks"].append({"Name": "second", "Engine": {"Type": "noop"}})
    answer = submit(api, job)
    assert set(answer["Warnings"]) == {
        "job ID is ignored when submitting a batch job",
        "job state is ignored when submitting a job",
        "only one task is supported per job",
        'job meta key "bacalhau.org/x" is reserved and will be ignored',
    }
    stored = get_job(api, answer["JobID"])["Job"]
    assert stored["ID"] != "j-mine" and len(stored["Tasks"]) == 1 and stored["Meta"]["mine"] == "2"
    assert "bacalhau.org/x" not in stored["Meta"]
    ops = get_job(api, submit(api, noop_job(Type="ops"))["JobID"])["Job"]
    assert ops["Count"] == 0


def test_executions_order_and_reverse(api):
    name = unique("order")
    job = noop_job(name, Count=3)
    job_id = wait_for(api, submit(api, job)["JobID"])["Job"]["ID"]
    items = api.get(f"{JOBS}/{job_id}/executions").json()
    created = [e["CreateTime"] for e in items["Items"]]
    assert len(created) == 3 and created == sorted(created) and items["NextToken"] == ""
    reverse = api.get(
        f"{JOBS}/{job_id}/executions", params={"order_by": "modified_at", "reverse": "true"}
    ).json()["Items"]
    modified = [e["ModifyTime"] for e in reverse]
    assert modified == sorted(modified, reverse=True)
    assert sorted(e.get("PartitionIndex", 0) for e in reverse) == [0, 1, 2]


@pytest.mark.parametrize(
    ("job", "message"),
    [
        ({"Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]}, "missing job type"),
        (
            {"Type": "Batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]},
            'invalid job type: "Batch"',
        ),
        (
            {"Type": "batch", "Count": -1, "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]},
            "job count must be >= 0",
        ),
        ({"Type": "batch"}, "missing job tasks"),
        ({"Type": "batch", "Tasks": [{"Engine": {"Type": "noop"}}]}, "missing task name"),
        (
            {"Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Params": {}}}]},
            "invalid engine: missing spec type",
        ),
        (
            {
                "Type": "batch",
                "Tasks": [
                    {"Name": "t", "Engine": {"Type": "noop"}, "InputSources": [{"Source": {"Type": "s3"}}]}
                ],
            },
            "input source is missing a target",
        ),
        (
            {
                "Type": "batch",
                "Tasks": [
                    {"Name": "t", "Engine": {"Type": "noop"}, "ResultPaths": [{"Name": "o", "Path": "out"}]}
                ],
            },
            "result path `out` must be absolute",
        ),
        (
            {"Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}, "Env": {"foo": "1"}}]},
            "environment variable 'foo' must be uppercase",
        ),
        (
            {
                "Type": "batch",
                "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}, "Resources": {"CPU": "lots"}}],
            },
            "invalid resources: invalid CPU value: lots",
        ),
        (
            {
                "Type": "batch",
                "Tasks": [
                    {
                        "Name": "t",
                        "Engine": {"Type": "noop"},
                        "Network": {"Type": "None", "Domains": ["x.org"]},
                    }
                ],
            },
            "invalid network: domains can only be set for HTTP network mode",
        ),
    ],
)
def test_validation_errors_are_400_internal_error_from_api_server(api, job, message):
    resp = api.put(JOBS, json={"Job": job})
    assert resp.status_code == 400
    body = resp.json()
    assert message in body["Message"]
    assert body["Code"] == "InternalError" and body["Component"] == "APIServer" and body["Status"] == 400
    assert "Hint" not in body


@pytest.mark.parametrize(
    "task_extra, problem",
    [
        ({"Env": {"BACALHAU_X": "1"}}, "environment variable 'BACALHAU_X' cannot start with BACALHAU_"),
        (
            {"Env": {"A-B": "1"}},
            "environment variable 'A-B' can only contain letters, numbers, and underscores",
        ),
        ({"Env": {"A": ""}}, "environment variable 'A' cannot have empty value"),
        (
            {
                "Publisher": {"Type": "noop"},
                "ResultPaths": [{"Name": "a", "Path": "/o"}, {"Name": "b", "Path": "/o"}],
            },
            "result path '/o' already exists",
        ),
        (
            {
                "Publisher": {"Type": "noop"},
                "ResultPaths": [{"Name": "a", "Path": "/o"}, {"Name": "a", "Path": "/p"}],
            },
            "result path with name 'a' already exists",
        ),
        (
            {"ResultPaths": [{"Name": " ", "Path": ""}]},
            "invalid output: missing path\nmissing name\nresult path `` must be absolute",
        ),
    ],
)
def test_task_checks_answer_with_go_texts(api, task_extra, problem):
    """pkg/models/env_var.go ValidateEnvVars, path.go Validate, task.go validateResultPaths."""
    job = {"Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}, **task_extra}]}
    resp = api.put(JOBS, json={"Job": job})
    assert resp.status_code == 400
    assert resp.json()["Message"] == f"task t validation failed: {problem}"


def test_unicode_env_names_are_accepted_as_go_does(api):
    job = noop_job(
        Tasks=[{"Name": "t", "Engine": {"Type": "noop"}, "Env": {"ÄRGER": "1", "名前": "x", "X٣": "y"}}]
    )
    assert submit(api, job)["JobID"].startswith("j-")


def test_no_job_key_and_malformed_json(api):
    assert api.put(JOBS, json={"Force": True}).json()["Message"] == "empty/nil job"
    resp = api.put(JOBS, content=b"{not json", headers={"content-type": "application/json"})
    assert resp.status_code == 400 and resp.json()["Code"] == "InternalError"


def test_create_path_errors_are_400_bad_request_from_job_store(api):
    job = noop_job()
    job["Tasks"][0]["ResultPaths"] = [{"Name": "out", "Path": "/outputs"}]
    body = api.put(JOBS, json={"Job": job}).json()
    assert (body["Status"], body["Code"], body["Component"]) == (400, "BadRequest", "JobStore")
    assert body["Message"] == "publisher must be set if result paths are set"
    job = noop_job()
    job["Tasks"][0]["Timeouts"] = {"ExecutionTimeout": 60, "QueueTimeout": 60, "TotalTimeout": 100}
    body = api.put(JOBS, json={"Job": job}).json()
    assert body["Code"] == "BadRequest"
    assert (
        "execution timeout 1m0s and queue timeout 1m0s should be less than total timeout 1m40s"
        in body["Message"]
    )


def test_name_is_an_upsert_key(api):
    name = unique("upsert")
    first = submit(api, noop_job(name))
    wait_for(api, first["JobID"])
    again = api.put(JOBS, json={"Job": noop_job(name)})
    assert again.status_code == 500
    body = again.json()
    assert (
        body["Message"]
        == f"no changes detected for new job spec. Job Name: '{name}', Job Id: '{first['JobID']}'"
    )
    assert body["Hint"] == "Use the --force flag to override this warning"
    # bacerrors.Newf: no code, Component "Bacalhau" (pkg/orchestrator/endpoint.go SubmitJob)
    assert body["Code"] == "" and body["Component"] == "Bacalhau" and body["Status"] == 500

    forced = submit(api, noop_job(name), force=True)
    assert forced["JobID"] == first["JobID"]
    changed = submit(api, noop_job(name, Labels={"v": "3"}))
    assert changed["JobID"] == first["JobID"]
    job = wait_for(api, first["JobID"])
    assert job["Job"]["Version"] == 3 and job["Job"]["State"]["StateType"] == "Completed"
    assert all(e["JobVersion"] == 3 for e in job["Executions"]["Items"])
    history = api.get(f"{JOBS}/{name}/history", params={"all_job_versions": "true"}).json()["Items"]
    assert [h["Event"]["Message"] for h in history].count("Job updated") == 2
    versions = api.get(f"{JOBS}/{name}/versions").json()["Items"]
    assert [v["Version"] for v in versions] == [1, 2, 3]
    assert api.get(f"{JOBS}/{name}", params={"job_version": 1}).json()["Job"]["Labels"] == {}
    all_execs = api.get(f"{JOBS}/{name}/executions", params={"all_job_versions": "true"}).json()["Items"]
    assert sorted({e["JobVersion"] for e in all_execs}) == [1, 2, 3]


def test_provider_client_reads_no_changes_with_empty_code(devstack):
    """The provider's re-attach rule keys on the message, so Code "" must not break it."""
    from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig

    name = unique("nochange")
    with BacalhauClient(ClientConfig(base_url=devstack.api_url, max_retries=0)) as client:
        client.submit_job(noop_job(name))
        with pytest.raises(BacalhauApiError) as info:
            client.submit_job(noop_job(name))
    error = info.value
    assert error.is_no_changes and error.status == 500
    assert not error.code and error.component == "Bacalhau"  # "" is read as no code
    assert "Code" not in str(error)


def test_update_that_changes_type_keeps_the_stored_type(api):
    """updateJob copies Tasks, Count, Meta, Labels... but never Type (jobstore/boltdb/store.go)."""
    name = unique("retype")
    first = submit(api, noop_job(name, Count=1))
    wait_for(api, first["JobID"])
    again = submit(api, noop_job(name, Type="ops", Labels={"v": "2"}))
    assert again["JobID"] == first["JobID"]
    job = api.get(f"{JOBS}/{name}").json()["Job"]
    assert job["Type"] == "batch" and job["Version"] == 2 and job["Labels"] == {"v": "2"}
    # ops forces Count 0 at submit; the batch job keeps that Count, as Go copies it
    assert job["Count"] == 0


def test_get_by_name_id_and_short_prefix_and_not_found(api):
    name = unique("lookup")
    job_id = submit(api, noop_job(name))["JobID"]
    for key in (name, job_id, job_id[:10]):
        assert api.get(f"{JOBS}/{key}").json()["Job"]["ID"] == job_id
    resp = api.get(f"{JOBS}/j-does-not-exist", headers={"X-Request-ID": "req-42"})
    assert resp.status_code == 404
    assert resp.json() == {
        "Status": 404,
        "Message": "job not found: j-does-not-exist",
        "RequestID": "req-42",
        "Code": "NotFound",
        "Component": "JobStore",
    }
    assert resp.headers["x-request-id"] == "req-42"


def test_unknown_route_and_redirects(api):
    resp = api.get("/api/v1/nothing-here")
    assert resp.status_code == 404
    assert (
        resp.json()["Component"] == "APIServer"
        and resp.json()["Message"] == "The requested resource/URL was not found."
    )
    for path, target in (
        ("/version", "/api/v1/agent/version"),
        ("/livez", "/api/v1/agent/alive"),
        ("/", "/api/v1/agent/version"),
    ):
        resp = api.get(path)
        assert resp.status_code == 301 and resp.headers["location"] == target


def test_agent_endpoints(api, devstack):
    assert api.get("/api/v1/agent/alive").json() == {"Status": "OK"}
    version = api.get("/api/v1/agent/version").json()
    assert version["GitVersion"] == "v1.9.3-devstack" and version["Major"] == "1" and version["Minor"] == "9"
    assert "not a Bacalhau replacement" in version["Devstack"]
    node = api.get("/api/v1/agent/node").json()
    assert node["NodeID"].startswith("n-") and "docker" in node["ComputeNodeInfo"]["ExecutionEngines"]
    managed = api.get("/api/v1/agent/config").json()["config"]["Publishers"]["Types"]["S3Managed"]
    assert managed["Bucket"] == devstack.managed_bucket


def test_client_version_header(api):
    assert api.get("/api/v1/agent/alive", headers={"X-Bacalhau-Git-Version": "v1.9.0"}).status_code == 200
    bad = api.get("/api/v1/agent/alive", headers={"X-Bacalhau-Git-Version": "banana"})
    assert bad.status_code == 400 and bad.json() == {"Error": "Invalid client version banana"}
    old = api.get("/api/v1/agent/alive", headers={"X-Bacalhau-Git-Version": "v1.3.2"})
    assert old.status_code == 403 and old.json()["MinVersion"] == "1.4.0"


def test_list_jobs_labels_order_and_paging(api):
    tag = unique("list")
    ids = [submit(api, noop_job(Labels={"batch": tag, "tier": t}))["JobID"] for t in ("a", "b", "c")]
    listed = api.get(JOBS, params={"labels": f"batch={tag}"}).json()
    assert [j["ID"] for j in listed["Items"]] == ids and listed["NextToken"] == ""
    assert [
        j["ID"] for j in api.get(JOBS, params={"labels": f"batch={tag},tier in (a,c)"}).json()["Items"]
    ] == [ids[0], ids[2]]
    assert [
        j["ID"]
        for j in api.get(JOBS, params={"labels": [f"batch={tag}", "tier!=a"], "reverse": "true"}).json()[
            "Items"
        ]
    ] == [ids[2], ids[1]]
    page = api.get(JOBS, params={"labels": f"batch={tag}", "limit": 2}).json()
    assert [j["ID"] for j in page["Items"]] == ids[:2] and page["NextToken"]
    rest = api.get(JOBS, params={"labels": f"batch={tag}", "next_token": page["NextToken"]}).json()
    assert [j["ID"] for j in rest["Items"]] == ids[2:] and rest["NextToken"] == ""
    assert api.get(JOBS, params={"namespace": "elsewhere", "labels": f"batch={tag}"}).json()["Items"] == []


def test_history_cursor_stays_open_until_terminal(api):
    job_id = submit(api, busybox_job("sleep 1.5; echo done"))["JobID"]
    first = api.get(f"{JOBS}/{job_id}/history").json()
    assert first["NextToken"]  # not terminal yet
    token, seen = first["NextToken"], list(first["Items"])
    for _ in range(100):
        page = api.get(f"{JOBS}/{job_id}/history", params={"next_token": token}).json()
        seen.extend(page["Items"])
        if not page["NextToken"]:
            break
        token = page["NextToken"]
        import time

        time.sleep(0.1)
    assert get_job(api, job_id)["Job"]["State"]["StateType"] == "Completed"
    seqs = [h["SeqNum"] for h in seen]
    assert seqs == sorted(seqs) and len(seqs) == len(set(seqs))
    assert seen[0]["Event"]["Message"] == "Job submitted" and seen[0]["Type"] == "JobLevel"
    assert {"Running Execution", "Execution", "State Update"} <= {h["Event"]["Topic"] for h in seen}
    only_exec = api.get(f"{JOBS}/{job_id}/history", params={"event_type": "execution"}).json()["Items"]
    assert only_exec and all(
        h["Type"] == "ExecutionLevel" and h["ExecutionID"].startswith("e-") for h in only_exec
    )
    assert api.get(f"{JOBS}/{job_id}/history", params={"event_type": "bogus"}).status_code == 400
    assert api.get(f"{JOBS}/{job_id}/history", params={"since": 4_000_000_000}).json()["Items"] == []
    token = json.loads(base64.urlsafe_b64decode(first["NextToken"] + "=="))
    assert set(token) >= {"offset", "limit"}
    assert api.get(f"{JOBS}/{job_id}/history", params={"next_token": "!!"}).status_code == 400


@pytest.mark.parametrize(
    "constraints, message",
    [
        (
            [{"Key": "", "Operator": "=", "Values": ["a"]}],
            "constraint 1 validation failed: selector key cannot be blank",
        ),
        (
            [{"Key": "a", "Operator": "exists"}, {"Key": "z", "Operator": "in"}],
            "constraint 2 validation failed: selector values cannot be empty for In or NotIn operators",
        ),
        (
            [{"Key": "g", "Operator": "!", "Values": ["x"]}],
            "constraint 1 validation failed: selector values must be empty for Exists or "
            "KeyNotInImap operators",
        ),
        (
            [{"Key": "z", "Operator": "=", "Values": ["a", "b"]}],
            "constraint 1 validation failed: selector values must have exactly one value for other operators",
        ),
    ],
)
def test_constraint_checks_answer_with_go_texts(api, constraints, message):
    """pkg/models/selector.go Validate; job.go ValidateSubmission numbers constraints from 1."""
    resp = api.put(JOBS, json={"Job": noop_job(Constraints=constraints)})
    assert resp.status_code == 400
    assert resp.json()["Message"] == message


def test_ports_with_full_network_are_accepted_and_default_refused_with_go_text(api):
    ports = [{"Name": "http", "Static": 8080}]
    full = noop_job(
        Tasks=[{"Name": "t", "Engine": {"Type": "noop"}, "Network": {"Type": "Full", "Ports": ports}}]
    )
    assert submit(api, full)["JobID"].startswith("j-")
    default = noop_job(Tasks=[{"Name": "t", "Engine": {"Type": "noop"}, "Network": {"Ports": ports}}])
    resp = api.put(JOBS, json={"Job": default})
    assert resp.status_code == 400
    assert (
        resp.json()["Message"]
        == "task t validation failed: invalid network: ports can only be set for Host or Bridge network modes"
    )
