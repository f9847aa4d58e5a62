"""``job_logs`` / ``job_logs_tail`` of the sync and async clients against the devstack's logs
endpoint (real Docker): output, live following, error frames, bounds, auth and namespaces."""

from __future__ import annotations

import asyncio
import time

import pytest
from devstack_helpers import busybox_job, submit, unique, wait_execution_state, wait_for

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig
from airflow_provider_bacalhau.client.logs import LogChunk
from airflow_provider_bacalhau.errors import BacalhauLogsError

pytestmark = pytest.mark.docker
API_KEY = "logs-reader-key-0123456789"


@pytest.fixture
def config(devstack) -> ClientConfig:
    return ClientConfig(base_url=devstack.api_url, timeout=10)


@pytest.fixture
def finished(api) -> tuple[str, str]:
    body = wait_for(api, submit(api, busybox_job("echo one; echo two >&2; echo three"))["JobID"])
    return body["Job"]["ID"], body["Executions"]["Items"][0]["ID"]


def joined(chunks: list[LogChunk], stream: str) -> str:
    return "".join(c.text for c in chunks if c.stream == stream)


def test_sync_and_async_read_the_same_output(config, finished):
    job_id, execution_id = finished
    with BacalhauClient(config) as client:
        stream = client.job_logs(job_id, execution_id)
        chunks = list(stream)
    assert stream.ended == "closed"
    assert joined(chunks, "stdout") == "one\nthree\n" and joined(chunks, "stderr").endswith("two\n")

    async def read() -> tuple[list[LogChunk], str | None]:
        async with AsyncBacalhauClient(config) as client:
            stream = client.job_logs(job_id, execution_id)
            return [c async for c in stream], stream.ended

    assert asyncio.run(read()) == (chunks, "closed")


def test_tail_helpers_of_both_clients(config, finished):
    job_id, execution_id = finished
    with BacalhauClient(config) as client:
        kept = client.job_logs_tail(job_id, execution_id, lines=1)
    assert kept.stdout == "three\n" and kept.cut and kept.ended == "closed"

    async def read():
        async with AsyncBacalhauClient(config) as client:
            return await client.job_logs_tail(job_id, execution_id, lines=1)

    assert asyncio.run(read()).stdout == "three\n"


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_follow_yields_output_while_the_container_runs(api, config, driver):
    job_id = submit(api, busybox_job("echo first; sleep 3; echo second"))["JobID"]
    wait_execution_state(api, job_id, 6)
    started = time.monotonic()
    seen: list[tuple[str, float]] = []

    if driver == "sync":
        with BacalhauClient(config) as client:
            for chunk in client.job_logs(job_id, follow=True, timeout=20):
                if chunk.stream == "stdout":
                    seen.append((chunk.text, time.monotonic() - started))
    else:

        async def read() -> None:
            async with AsyncBacalhauClient(config) as client:
                async for chunk in client.job_logs(job_id, follow=True, timeout=20):
                    if chunk.stream == "stdout":
                        seen.append((chunk.text, time.monotonic() - started))

        asyncio.run(read())
    assert [text for text, _ in seen] == ["first\n", "second\n"]
    assert seen[0][1] < 2.5 < seen[1][1]


@pytest.mark.parametrize("driver", ["sync", "async"])
def test_bounds_stop_a_follow_read(api, config, driver):
    job_id = submit(api, busybox_job("for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.3; done"))[
        "JobID"
    ]
    wait_execution_state(api, job_id, 6)

    async def read_async(**bounds):
        async with AsyncBacalhauClient(config) as client:
            stream = client.job_logs(job_id, follow=True, **bounds)
            return [c async for c in stream], stream.ended

    def read(**bounds):
        if driver == "async":
            return asyncio.run(read_async(**bounds))
        with BacalhauClient(config) as client:
            stream = client.job_logs(job_id, follow=True, **bounds)
            return list(stream), stream.ended

    started = time.monotonic()
    chunks, ended = read(timeout=1)
    assert ended == "timeout" and 0.9 < time.monotonic() - started < 2.5 and chunks
    chunks, ended = read(max_bytes=10, timeout=20)
    assert ended == "max_bytes" and sum(len(c.text) for c in chunks) == 10


def test_error_frames_raise_and_a_hanging_endpoint_is_given_up_promptly(api, config, devstack, finished):
    job_id, _ = finished
    with BacalhauClient(config) as client:
        with pytest.raises(BacalhauLogsError) as caught:
            client.job_logs_tail(job_id, "e-nope")
        assert caught.value.server_error and "unable to find execution e-nope" in caught.value.message
        devstack.set_faults(routes={"GET /api/v1/orchestrator/jobs/{id}/logs": {"latency": 15}})
        try:
            started = time.monotonic()
            with pytest.raises(BacalhauLogsError, match="logs"):
                client.job_logs_tail(job_id, timeout=1)
            assert time.monotonic() - started < 2.5
        finally:
            devstack.clear_faults()


def test_auth_header_and_namespace_come_from_the_config(api, devstack):
    name = unique("logs-ns")
    job = busybox_job("echo in-namespace", name=name)
    job["Namespace"] = "team-logs"
    wait_for(api, submit(api, job)["JobID"])
    devstack.set_auth([{"api_key": API_KEY, "capabilities": ["read:job"]}])
    try:
        good = ClientConfig(base_url=devstack.api_url, api_key=API_KEY, namespace="team-logs")
        with BacalhauClient(good) as client:
            assert client.job_logs_tail(name).stdout == "in-namespace\n"
        with BacalhauClient(ClientConfig(base_url=devstack.api_url, api_key=API_KEY)) as client:
            assert client.job_logs_tail(name, namespace="team-logs").stdout == "in-namespace\n"
            with pytest.raises(BacalhauLogsError, match="job not found"):
                client.job_logs_tail(name)  # the default namespace has no such job
        with BacalhauClient(ClientConfig(base_url=devstack.api_url, api_key="w" * 24)) as client:
            with pytest.raises(BacalhauLogsError) as caught:
                client.job_logs_tail(name)
            assert "w" * 24 not in str(caught.value)
    finally:
        devstack.clear_auth()


@pytest.mark.parametrize("action", ["error", "drop"])
def test_a_refused_or_dropped_handshake_raises(config, devstack, finished, action):
    job_id, execution_id = finished
    devstack.set_faults(
        routes={"GET /api/v1/orchestrator/jobs/{id}/logs": {"every": 1, "action": action, "status": 503}}
    )
    try:
        with BacalhauClient(config) as client, pytest.raises(BacalhauLogsError) as caught:
            client.job_logs_tail(job_id, execution_id)
        assert not caught.value.server_error
        if action == "error":
            assert "503" in str(caught.value) and caught.value.status == 503

        async def read() -> None:
            async with AsyncBacalhauClient(config) as client:
                await client.job_logs_tail(job_id, execution_id)

        with pytest.raises(BacalhauLogsError):
            asyncio.run(read())
    finally:
        devstack.clear_faults()
