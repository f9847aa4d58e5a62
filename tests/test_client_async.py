"""The async client: same behaviours as the sync one (one core), plus the shared pool."""

from __future__ import annotations

import asyncio
import base64
import logging

import pytest
from test_client_fake_api import JOBS, FakeBacalhauApi, Reply, api_error, example_job, fake_api  # noqa: F401
from test_client_sync import SUBMITTED, fast

from airflow_provider_bacalhau.client import AsyncBacalhauClient, ClientConfig, shared_http_client
from airflow_provider_bacalhau.client.aio import close_shared_http_clients
from airflow_provider_bacalhau.devstack.procs import free_port
from airflow_provider_bacalhau.errors import BacalhauApiError

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def test_async_endpoints_and_auth(fake_api):
    key = "a" * 24
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED))
    fake_api.script("GET", f"{JOBS}/a%2Fb", Reply(200, {"Job": {"ID": "j-1"}}))
    fake_api.script("DELETE", f"{JOBS}/j-1", Reply(200, {"EvaluationID": ""}))
    async with AsyncBacalhauClient(fast(fake_api.url, api_key=key)) as client:
        assert await client.submit_job(example_job()) == SUBMITTED
        assert (await client.get_job("a/b", include=None))["Job"]["ID"] == "j-1"
        await client.stop_job("j-1", reason="because")
    put, get, delete = fake_api.requests
    assert put.body == {"Job": example_job(), "Force": False}
    assert get.query == {}
    assert delete.body == {"reason": "because"} and delete.query == {"reason": ["because"]}
    assert {r.headers["authorization"] for r in fake_api.requests} == {f"Bearer {key}"}


async def test_async_basic_auth(fake_api):
    fake_api.script("GET", "/api/v1/agent/node", Reply(200, {}))
    async with AsyncBacalhauClient(fast(fake_api.url, username="alice", password="pw-0123456789")) as client:
        await client.node_info()
    assert (
        fake_api.requests[0].headers["authorization"]
        == "Basic " + base64.b64encode(b"alice:pw-0123456789").decode()
    )


async def test_async_read_retries_503_then_succeeds(fake_api):
    fake_api.script(
        "GET",
        JOBS,
        Reply(503, "Server Timeout!"),
        Reply(429, "", {"Retry-After": "0"}),
        Reply(200, {"Items": []}),
    )
    async with AsyncBacalhauClient(fast(fake_api.url)) as client:
        assert await client.list_jobs(limit=1) == {"Items": []}
    assert fake_api.count("GET") == 3


async def test_async_named_submit_after_timeout_looks_the_job_up(fake_api):
    name = "etl-async-1"
    fake_api.script("PUT", JOBS, Reply(200, SUBMITTED, delay=1.0))
    fake_api.script("GET", f"{JOBS}/{name}", Reply(200, {"Job": {"ID": "j-found", "Name": name}}))
    async with AsyncBacalhauClient(fast(fake_api.url, timeout=0.3)) as client:
        assert (await client.submit_job(example_job(name)))["JobID"] == "j-found"
    assert fake_api.count("PUT") == 1 and fake_api.count("GET") == 1


async def test_async_nameless_submit_is_not_repeated(fake_api):
    fake_api.script("PUT", JOBS, Reply(502, "bad gateway"), Reply(200, SUBMITTED))
    async with AsyncBacalhauClient(fast(fake_api.url)) as client:
        with pytest.raises(BacalhauApiError, match="no Name"):
            await client.submit_job(example_job(name=None))
    assert fake_api.count("PUT") == 1


async def test_async_errors_and_secrets(fake_api, caplog):
    key = "ASYNC-SECRET-9f8e7d6c5b4a"
    fake_api.script(
        "GET", f"{JOBS}/j-1", api_error(403, f"forbidden for {key}", "Forbidden", Component="Authorizer")
    )
    caplog.set_level(logging.DEBUG)
    async with AsyncBacalhauClient(fast(fake_api.url, api_key=key)) as client:
        with pytest.raises(BacalhauApiError) as caught:
            await client.get_job("j-1")
    async with AsyncBacalhauClient(
        fast(f"http://127.0.0.1:{free_port()}", api_key=key, max_retries=0)
    ) as client:
        with pytest.raises(BacalhauApiError) as unreachable:
            await client.alive()
    assert (caught.value.status, caught.value.code, caught.value.component) == (
        403,
        "Forbidden",
        "Authorizer",
    )
    assert unreachable.value.status is None and unreachable.value.__context__ is None
    for text in (str(caught.value), str(unreachable.value), caplog.text):
        assert key not in text


async def test_shared_pool_is_one_client_per_loop_and_config(fake_api):
    config = ClientConfig(base_url=fake_api.url)
    same = ClientConfig(base_url=fake_api.url)
    other = ClientConfig(base_url=fake_api.url, namespace="other")
    assert shared_http_client(config) is shared_http_client(same)
    assert shared_http_client(config) is not shared_http_client(other)

    fake_api.script("GET", "/api/v1/agent/alive", Reply(200, {"Status": "OK"}))
    clients = [AsyncBacalhauClient(config, http_client=shared_http_client(config)) for _ in range(50)]
    answers = await asyncio.gather(*(c.alive() for c in clients))
    assert answers == [{"Status": "OK"}] * 50
    for c in clients:
        await c.close()  # closing a client leaves the shared pool open
    assert not shared_http_client(config).is_closed

    # One after another, twenty clients of the same config reuse one kept-alive connection.
    fake_api.requests.clear()
    for _ in range(20):
        await AsyncBacalhauClient(config, http_client=shared_http_client(config)).alive()
    assert len({r.peer for r in fake_api.requests}) == 1
    await close_shared_http_clients()


def test_shared_pool_differs_between_event_loops():
    config = ClientConfig()

    async def pool():
        return shared_http_client(config)

    first, second = asyncio.run(pool()), asyncio.run(pool())
    assert first is not second


@pytest.mark.anyio
async def test_a_pool_has_a_bounded_number_of_requests_in_flight():
    """Many triggers polling at once queue at the client's gate, not inside httpcore's pool (whose
    cost grows with the square of its queue: see client/aio.py and benchmarks/triggers.py)."""
    import httpx

    from airflow_provider_bacalhau.client.aio import MAX_IN_FLIGHT

    in_flight = peak = 0

    async def handler(request: httpx.Request) -> httpx.Response:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return httpx.Response(200, json={"Job": {"ID": "j-1", "State": {"StateType": "Running"}}})

    http = httpx.AsyncClient(transport=httpx.MockTransport(handler))
    clients = [AsyncBacalhauClient(ClientConfig(), http_client=http) for _ in range(100)]
    answers = await asyncio.gather(*(c.get_job("j-1") for c in clients))
    await http.aclose()
    assert len(answers) == 100 and peak == MAX_IN_FLIGHT
