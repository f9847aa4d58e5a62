"""The blocking client against a real HTTP server: endpoints, auth, retries, submit safety."""

from __future__ import annotations

import base64
import logging
import time

import pytest
from test_client_fake_api import JOBS, FakeBacalhauApi, Reply, api_error, example_job, fake_api  # noqa: F401

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig
from airflow_provider_bacalhau.devstack.procs import free_port
from airflow_provider_bacalhau.errors import BacalhauApiError

SUBMITTED = {"JobID": "j-0f8c", "EvaluationID": "3b1d", "Warnings": None}


def fast(url: str, **kwargs) -> ClientConfig:
    settings = {"base_url": url, "backoff": 0.01, "backoff_max": 0.2, "timeout": 2.0, "max_retries": 3}
    settings.update(kwargs)
    return ClientConfig(**settings)


@pytest.fixture
def client(fake_api: FakeBacalhauApi):
    with BacalhauClient(fast(fake_api.url)) as c:
        yield c


# -- endpoints --------------------------------------------------------------------------------------


def test_submit_sends_job_and_force_and_returns_the_answer(client, fake_api):
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED))
    assert client.submit_job(example_job(), force=True) == SUBMITTED
    sent = fake_api.requests[-1]
    assert sent.body == {"Job": example_job(), "Force": True}
    assert sent.headers["content-type"] == "application/json"
    assert "x-bacalhau-git-version" not in sent.headers


def test_submit_accepts_anything_with_to_dict(client, fake_api):
    class JobLike:
        def to_dict(self):
            return example_job("from-object")

    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED))
    client.submit_job(JobLike())
    assert fake_api.requests[-1].body["Job"]["Name"] == "from-object"


def test_get_job_escapes_the_path_segment_and_passes_include(client, fake_api):
    path = f"{JOBS}/my%20job%2F1"
    fake_api.script("GET", path, Reply(200, {"Job": {"ID": "j-1", "Name": "my job/1"}}))
    assert client.get_job("my job/1", include=("executions", "history"))["Job"]["ID"] == "j-1"
    assert fake_api.requests[-1].path == path
    assert fake_api.requests[-1].query == {"include": ["executions,history"]}


def test_list_endpoints_unwrap_items(client, fake_api):
    fake_api.script("GET", f"{JOBS}/j-1/executions", Reply(200, {"Items": [{"ID": "e-1"}], "NextToken": ""}))
    fake_api.script("GET", f"{JOBS}/j-1/results", Reply(200, {"Items": [{"Type": "s3"}], "NextToken": ""}))
    assert client.list_executions("j-1", order_by="modified_at") == [{"ID": "e-1"}]
    assert fake_api.requests[-1].query == {"order_by": ["modified_at"]}
    assert client.get_results("j-1") == [{"Type": "s3"}]


def test_history_follows_next_token_and_filters(client, fake_api):
    fake_api.script("GET", f"{JOBS}/j-1/history", Reply(200, {"Items": [], "NextToken": "abc"}))
    assert client.get_history("j-1", next_token="tok", event_type="execution")["NextToken"] == "abc"
    assert fake_api.requests[-1].query == {"next_token": ["tok"], "event_type": ["execution"]}


def test_stop_sends_reason_in_body_and_query(client, fake_api):
    fake_api.script("DELETE", f"{JOBS}/j-1", Reply(200, {"EvaluationID": "ev"}))
    assert client.stop_job("j-1", reason="cancelled by Airflow") == {"EvaluationID": "ev"}
    sent = fake_api.requests[-1]
    assert sent.body == {"reason": "cancelled by Airflow"}
    assert sent.query == {"reason": ["cancelled by Airflow"]}


def test_list_jobs_repeats_list_filters_and_agent_endpoints(client, fake_api):
    fake_api.script("GET", JOBS, Reply(200, {"Items": [], "NextToken": ""}))
    client.list_jobs(limit=1, labels=["env=prod", "tier in (a,b)"], reverse=True)
    assert fake_api.requests[-1].query == {
        "limit": ["1"],
        "labels": ["env=prod", "tier in (a,b)"],
        "reverse": ["true"],
    }
    fake_api.script("GET", "/api/v1/agent/alive", Reply(200, {"Status": "OK"}))
    fake_api.script("GET", "/api/v1/agent/version", Reply(200, {"GitVersion": "v1.9.3"}))
    fake_api.script("GET", "/api/v1/agent/node", Reply(200, {"NodeID": "n-1", "NodeType": "Requester"}))
    assert client.alive() == {"Status": "OK"}
    assert client.version()["GitVersion"] == "v1.9.3"
    assert client.node_info()["NodeType"] == "Requester"


def test_namespace_goes_to_queries_and_to_jobs_without_one(fake_api):
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED))
    fake_api.script("GET", f"{JOBS}/j-1", Reply(200, {"Job": {}}))
    job = example_job()
    del job["Namespace"]
    with BacalhauClient(fast(fake_api.url, namespace="team-a")) as c:
        c.submit_job(job)
        c.get_job("j-1")
    assert fake_api.requests[0].body["Job"]["Namespace"] == "team-a"
    assert fake_api.requests[1].query["namespace"] == ["team-a"]


# -- auth -------------------------------------------------------------------------------------------


def test_auth_headers(fake_api):
    fake_api.script("GET", "/api/v1/agent/node", Reply(200, {}))
    key = "k" * 24
    with BacalhauClient(fast(fake_api.url, api_key=key)) as c:
        c.node_info()
    with BacalhauClient(fast(fake_api.url, username="alice", password="correct-horse")) as c:
        c.node_info()
    with BacalhauClient(fast(fake_api.url)) as c:
        c.node_info()
    bearer, basic, anonymous = (r.headers for r in fake_api.requests)
    assert bearer["authorization"] == f"Bearer {key}"
    assert basic["authorization"] == "Basic " + base64.b64encode(b"alice:correct-horse").decode()
    assert "authorization" not in anonymous


# -- retries ----------------------------------------------------------------------------------------


def test_read_retries_503_then_succeeds(client, fake_api):
    fake_api.script("GET", f"{JOBS}/j-1", Reply(503, "Server Timeout!"), Reply(200, {"Job": {"ID": "j-1"}}))
    assert client.get_job("j-1")["Job"]["ID"] == "j-1"
    assert fake_api.count("GET") == 2


def test_read_gives_up_after_max_retries(client, fake_api):
    fake_api.script("GET", f"{JOBS}/j-1", Reply(502, "bad gateway"))
    with pytest.raises(BacalhauApiError) as caught:
        client.get_job("j-1")
    assert caught.value.status == 502
    assert fake_api.count("GET") == 4  # first try + max_retries=3


def test_429_honours_retry_after(fake_api):
    fake_api.script("GET", JOBS, Reply(429, "slow down", {"Retry-After": "0.4"}), Reply(200, {"Items": []}))
    with BacalhauClient(fast(fake_api.url, backoff=0.001, backoff_max=5)) as c:
        started = time.monotonic()
        c.list_jobs()
    assert time.monotonic() - started >= 0.4
    assert fake_api.count("GET") == 2


def test_retry_after_is_capped(fake_api):
    fake_api.script("GET", JOBS, Reply(429, "slow down", {"Retry-After": "120"}), Reply(200, {"Items": []}))
    with BacalhauClient(fast(fake_api.url, backoff_max=0.1)) as c:
        started = time.monotonic()
        c.list_jobs()
    assert time.monotonic() - started < 2


def test_read_timeout_is_retried(fake_api):
    fake_api.script(
        "GET", f"{JOBS}/j-1", Reply(200, {"Job": {}}, delay=1.0), Reply(200, {"Job": {"ID": "j-1"}})
    )
    with BacalhauClient(fast(fake_api.url, timeout=0.3)) as c:
        assert c.get_job("j-1")["Job"]["ID"] == "j-1"
    assert fake_api.count("GET") == 2


def test_client_errors_are_not_retried(client, fake_api):
    fake_api.script("GET", f"{JOBS}/nope", api_error(404, "job not found: nope", "NotFound"))
    with pytest.raises(BacalhauApiError) as caught:
        client.get_job("nope")
    assert caught.value.is_not_found
    assert fake_api.count("GET") == 1


# -- submit never duplicates ------------------------------------------------------------------------


def test_submit_is_not_repeated_on_503(client, fake_api):
    """A nameless job: the server may have created it, so no second PUT and a clear error."""
    fake_api.script("PUT", JOBS, Reply(503, "Server Timeout!"), Reply(200, SUBMITTED))
    with pytest.raises(BacalhauApiError) as caught:
        client.submit_job(example_job(name=None))
    assert fake_api.count("PUT") == 1
    assert "no Name" in str(caught.value)


def test_named_submit_after_lost_answer_finds_the_job_by_name(fake_api):
    name = "etl-20260101-1"
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED, delay=1.0))  # applied, answer too late
    fake_api.script("GET", f"{JOBS}/{name}", Reply(200, {"Job": {"ID": "j-found", "Name": name}}))
    with BacalhauClient(fast(fake_api.url, timeout=0.3)) as c:
        answer = c.submit_job(example_job(name))
    assert answer["JobID"] == "j-found"
    assert answer["Warnings"]
    assert fake_api.count("PUT") == 1
    assert fake_api.count("GET", f"{JOBS}/{name}") == 1


def test_named_submit_resubmits_when_the_name_is_not_found(client, fake_api):
    name = "etl-20260101-2"
    fake_api.script("PUT", JOBS, Reply(504, "gateway timeout"), Reply(200, SUBMITTED))
    fake_api.script("GET", f"{JOBS}/{name}", api_error(404, f"job not found: {name}", "NotFound"))
    assert client.submit_job(example_job(name)) == SUBMITTED
    assert fake_api.count("PUT") == 2
    assert fake_api.count("GET") == 1


def test_named_resubmit_answered_no_changes_returns_the_existing_job(client, fake_api):
    name = "etl-20260101-3"
    no_changes = api_error(500, f"no changes detected for new job spec. Job Name: '{name}', Job Id: 'j-x'")
    fake_api.script("PUT", JOBS, Reply(503, "Server Timeout!"), no_changes)
    fake_api.script(
        "GET",
        f"{JOBS}/{name}",
        api_error(404, "job not found", "NotFound"),
        Reply(200, {"Job": {"ID": "j-x", "Name": name}}),
    )
    assert client.submit_job(example_job(name))["JobID"] == "j-x"
    assert fake_api.count("PUT") == 2


def test_submit_429_is_retried(client, fake_api):
    fake_api.script("PUT", JOBS, Reply(429, "rate limited", {"Retry-After": "0"}), Reply(200, SUBMITTED))
    assert client.submit_job(example_job(name=None)) == SUBMITTED
    assert fake_api.count("PUT") == 2


def test_submit_validation_error_is_raised_once(client, fake_api):
    fake_api.script("PUT", JOBS, api_error(400, "missing job tasks", "InternalError"))
    with pytest.raises(BacalhauApiError) as caught:
        client.submit_job(example_job())
    assert caught.value.status == 400
    assert fake_api.count("PUT") == 1


# -- transport failures and secrets -----------------------------------------------------------------


def test_unreachable_server_is_an_api_error_without_httpx_traceback():
    url = f"http://127.0.0.1:{free_port()}"
    with BacalhauClient(fast(url, max_retries=1)) as c, pytest.raises(BacalhauApiError) as caught:
        c.alive()
    error = caught.value
    assert error.status is None and error.method == "GET" and error.path == "/api/v1/agent/alive"
    assert "cannot reach Bacalhau" in str(error)
    assert error.__cause__ is None and error.__context__ is None


def test_secrets_never_reach_exceptions_or_logs(fake_api, caplog):
    key = "SECRET-KEY-f00dfeedcafe-1234567890"
    password = "pw-SECRET-0a9b8c7d6e"
    basic = base64.b64encode(f"bob:{password}".encode()).decode()
    # A server that echoes the credential it received, the worst case.
    fake_api.script("GET", JOBS, api_error(401, f"bad token Bearer {key}", "Unauthorized", Hint=key))
    fake_api.script("GET", f"{JOBS}/j-1", api_error(401, f"bad credential Basic {basic}", "Unauthorized"))
    caplog.set_level(logging.DEBUG)
    errors = []
    with BacalhauClient(fast(fake_api.url, api_key=key)) as c:
        with pytest.raises(BacalhauApiError) as caught:
            c.list_jobs()
        errors.append(caught.value)
    with BacalhauClient(fast(fake_api.url, username="bob", password=password)) as c:
        with pytest.raises(BacalhauApiError) as caught:
            c.get_job("j-1")
        errors.append(caught.value)
    with BacalhauClient(fast(f"http://127.0.0.1:{free_port()}", api_key=key, max_retries=0)) as c:
        with pytest.raises(BacalhauApiError) as caught:
            c.alive()
        errors.append(caught.value)
    config_text = repr(fast(fake_api.url, api_key=key)) + repr(
        fast(fake_api.url, username="bob", password=password)
    )
    for text in [*map(str, errors), *(e.hint or "" for e in errors), caplog.text, config_text]:
        assert key not in text and password not in text and basic not in text
    assert errors[0].status == 401 and errors[0].code == "Unauthorized"
    assert "GET /api/v1/orchestrator/jobs -> HTTP 401" in caplog.text  # the debug line per request


def test_spec_job_bodies_fit_the_swagger(client, fake_api):
    """Bodies built by the spec package pass the fake's swagger validation (it answers 400 if not)."""
    from airflow_provider_bacalhau.spec import Job

    rich = example_job("spec-built")
    rich["Constraints"] = [{"Key": "zone", "Operator": "in", "Values": ["a", "b"]}]
    rich["Meta"] = {"owner": "airflow"}
    rich["Tasks"][0]["Env"] = {"MODE": "prod"}
    rich["Tasks"][0]["Network"] = {"Type": "HTTP", "Domains": ["example.com"]}
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED))
    for job in (Job.from_dict(example_job()), Job.from_dict(rich)):
        assert client.submit_job(job) == SUBMITTED
    assert fake_api.count("PUT") == 2
    assert fake_api.requests[1].body["Job"]["Constraints"][0]["Key"] == "zone"


def test_submit_to_an_unreachable_server_says_so():
    """Never connected: a plain 'cannot reach' error, not 'may or may not have been created'."""
    with (
        BacalhauClient(fast(f"http://127.0.0.1:{free_port()}", max_retries=1)) as c,
        pytest.raises(BacalhauApiError) as caught,
    ):
        c.submit_job(example_job(name=None))
    assert "cannot reach Bacalhau" in str(caught.value)
    assert "no Name" not in str(caught.value)


def test_with_max_retries_keeps_the_pool_and_changes_only_the_budget():
    from airflow_provider_bacalhau.client import AsyncBacalhauClient

    with BacalhauClient(ClientConfig(base_url="http://127.0.0.1:9", max_retries=4)) as client:
        poller = client.with_max_retries(0)
        assert type(poller) is BacalhauClient and poller._http is client._http
        assert (poller.config.max_retries, client.config.max_retries) == (0, 4)
        assert poller.config.base_url == client.config.base_url
        poller.close()  # does not own the pool
        assert not client._http.is_closed
    assert type(AsyncBacalhauClient(ClientConfig()).with_max_retries(1)) is AsyncBacalhauClient
