"""The suite-wide check (tests/conftest.py) that every 200 answer of a Bacalhau route fits the
swagger: a wrong shape from a real HTTP server fails the request, sync or async, through the
provider's client or a bare httpx client."""

from __future__ import annotations

import asyncio
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import jsonschema
import pytest

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig

EXECUTIONS = "/api/v1/orchestrator/jobs/j-1/executions"


def _execution(resources: dict) -> dict:
    return {
        "ID": "e-1",
        "JobID": "j-1",
        "AllocatedResources": {"Tasks": {"main": resources}},
        "ComputeState": {"StateType": 9, "Message": ""},
        "RunOutput": None,
        "PublishedResult": None,
    }


@pytest.fixture
def answering_server():
    """A real HTTP server on 127.0.0.1 answering the executions route with ``answers["body"]``."""
    answers: dict = {}

    class Handler(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            payload = json.dumps(answers["body"]).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=UTF-8")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", answers
    finally:
        server.shutdown()
        server.server_close()


def test_a_well_formed_answer_passes(answering_server):
    url, answers = answering_server
    answers["body"] = {"Items": [_execution({"CPU": 0.5, "Memory": 512_000_000})], "NextToken": ""}
    with BacalhauClient(ClientConfig(base_url=url, max_retries=0)) as client:
        (execution,) = client.list_executions("j-1")
    assert execution["AllocatedResources"]["Tasks"]["main"]["CPU"] == 0.5


def test_resource_strings_in_allocated_resources_are_refused(answering_server):
    # What the devstack once sent: the job's resource strings where v1.9.3 has models.Resources.
    url, answers = answering_server
    answers["body"] = {"Items": [_execution({"CPU": "500m", "Memory": "512mb"})], "NextToken": ""}
    with (
        BacalhauClient(ClientConfig(base_url=url, max_retries=0)) as client,
        pytest.raises(jsonschema.ValidationError, match="500m"),
    ):
        client.list_executions("j-1")
    with pytest.raises(jsonschema.ValidationError, match="500m"):
        httpx.get(url + EXECUTIONS)


def test_an_unknown_key_is_refused_on_the_async_path(answering_server):
    url, answers = answering_server
    answers["body"] = {"Items": [{**_execution({}), "Bogus": 1}], "NextToken": ""}

    async def call():
        async with AsyncBacalhauClient(ClientConfig(base_url=url, max_retries=0)) as client:
            await client.list_executions("j-1")

    with pytest.raises(jsonschema.ValidationError, match="Bogus"):
        asyncio.run(call())


def test_a_job_state_number_is_refused(answering_server):
    # Job states are strings on the wire (MarshalText), though the swagger says integers.
    url, answers = answering_server
    answers["body"] = {"Job": {"ID": "j-1", "State": {"StateType": 4}}}
    with pytest.raises(jsonschema.ValidationError, match="4 is not of type 'string'"):
        httpx.get(url + "/api/v1/orchestrator/jobs/j-1")
    answers["body"] = {"Job": {"ID": "j-1", "State": {"StateType": "Completed"}}}
    assert httpx.get(url + "/api/v1/orchestrator/jobs/j-1").json()["Job"]["State"]["StateType"] == "Completed"
