"""TLS against a real HTTPS server with a self-signed certificate made at test time."""

from __future__ import annotations

import pytest
from test_client_fake_api import FakeBacalhauApi, Reply, TlsMaterial, tls_api, tls_material  # noqa: F401

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig
from airflow_provider_bacalhau.errors import BacalhauApiError

VERSION = "/api/v1/agent/version"


@pytest.fixture
def anyio_backend():
    return "asyncio"


def test_default_verification_rejects_a_self_signed_server_without_retrying(tls_api):
    tls_api.script("GET", VERSION, Reply(200, {"GitVersion": "v1.9.3"}))
    with (
        BacalhauClient(ClientConfig(base_url=tls_api.url, backoff=5, max_retries=3)) as client,
        pytest.raises(BacalhauApiError, match="TLS certificate verification failed"),
    ):
        client.version()  # a backoff of 5 s per retry would show up as a slow test
    assert tls_api.count("GET") == 0


def test_insecure_accepts_any_certificate(tls_api):
    tls_api.script("GET", VERSION, Reply(200, {"GitVersion": "v1.9.3"}))
    with BacalhauClient(ClientConfig(base_url=tls_api.url, verify=False)) as client:
        assert client.version()["GitVersion"] == "v1.9.3"


def test_ca_file_verifies_the_server(tls_api, tls_material: TlsMaterial):
    tls_api.script("GET", VERSION, Reply(200, {"GitVersion": "v1.9.3"}))
    with BacalhauClient(ClientConfig(base_url=tls_api.url, verify=str(tls_material.cert_file))) as client:
        assert client.version()["GitVersion"] == "v1.9.3"


def test_env_vars_give_a_working_tls_config(tls_api, tls_material: TlsMaterial):
    tls_api.script("GET", VERSION, Reply(200, {"GitVersion": "v1.9.3"}))
    env = {
        "BACALHAU_API_HOST": "127.0.0.1",
        "BACALHAU_API_PORT": str(tls_api.port),
        "BACALHAU_API_TLS_USETLS": "true",
        "BACALHAU_API_TLS_CAFILE": str(tls_material.cert_file),
    }
    with BacalhauClient(ClientConfig.from_env(env)) as client:
        assert client.version()["GitVersion"] == "v1.9.3"


@pytest.mark.anyio
async def test_async_client_uses_the_same_tls_settings(tls_api, tls_material: TlsMaterial):
    tls_api.script("GET", VERSION, Reply(200, {"GitVersion": "v1.9.3"}))
    async with AsyncBacalhauClient(
        ClientConfig(base_url=tls_api.url, verify=str(tls_material.cert_file))
    ) as client:
        assert (await client.version())["GitVersion"] == "v1.9.3"
    async with AsyncBacalhauClient(ClientConfig(base_url=tls_api.url, max_retries=0)) as client:
        with pytest.raises(BacalhauApiError, match="TLS certificate verification failed"):
            await client.version()
