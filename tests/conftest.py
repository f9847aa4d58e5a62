"""Test set-up shared by the whole suite.

Airflow reads its configuration at import time, so the environment is set here, before any test
module imports Airflow: a private AIRFLOW_HOME with a SQLite DB, no example DAGs.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
_AIRFLOW_HOME = tempfile.mkdtemp(prefix="bacalhau-provider-airflow-")
os.environ["AIRFLOW_HOME"] = _AIRFLOW_HOME
os.environ["AIRFLOW__CORE__LOAD_EXAMPLES"] = "False"
os.environ["AIRFLOW__CORE__DAGS_FOLDER"] = str(REPO / "example_dags")
os.environ.setdefault("AIRFLOW__CORE__UNIT_TEST_MODE", "False")
# The OpenLineage provider is installed for the lineage tests, which enable it in their own
# processes (tests/test_lineage_openlineage.py); everywhere else it stays off, whatever the shell has.
os.environ["AIRFLOW__OPENLINEAGE__DISABLED"] = "True"

# The devstack's fixtures (`s3_server`, `devstack`, `devstack_env`) and the real Airflow deployment
# (`airflow_deployment`, `airflow_api`: tests/airflow_deployment.py) for every test module.
pytest_plugins = ["airflow_provider_bacalhau.devstack.testing", "airflow_deployment"]


import pytest  # noqa: E402


def pytest_configure(config):
    # Newer starlette warns with its own class (ignored like the rest of its deprecations, see
    # pyproject.toml); older ones (the 3.0 and lowest lanes) lack it, and naming it there would fail.
    import starlette.exceptions

    if hasattr(starlette.exceptions, "StarletteDeprecationWarning"):
        config.addinivalue_line("filterwarnings", "ignore::starlette.exceptions.StarletteDeprecationWarning")


@pytest.fixture(scope="session", autouse=True)
def _request_bodies_match_bacalhau_swagger():
    """Every request body the provider's client sends, in any test, is checked against Bacalhau's
    swagger (patched where it is known to be wrong: see tests/swagger.py). A body that does not fit
    fails the request, and so the test, before it leaves the client."""
    from swagger import template_for, validate_request_body

    from airflow_provider_bacalhau.client.core import Operations

    build = Operations._request

    def checked(self, method, path, params=None, body=None):
        validate_request_body(method, template_for(method, path), body)
        return build(self, method, path, params, body)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Operations, "_request", checked)
        yield


def _swagger_route(request, response) -> str | None:
    """The swagger template of a 200 JSON answer of a Bacalhau route, or None: nothing to check
    (other statuses, S3, downloads, streams, routes the swagger lacks such as /api/v1/version)."""
    from swagger import template_for

    is_json = "json" in response.headers.get("content-type", "")
    if response.status_code != 200 or not is_json or not request.url.path.startswith("/api/v1/"):
        return None
    try:
        return template_for(request.method, request.url.path)
    except KeyError:
        return None


def _checked_answer(request, response, template: str, raw: bytes):
    """Validate the answer's body against the swagger; return a response that reads ``raw`` again
    (the transport's stream is spent by then)."""
    import httpx
    from swagger import validate_response_body

    decoded = httpx.Response(200, headers=response.headers, content=raw)
    validate_response_body(request.method, template, decoded.json())
    return httpx.Response(
        response.status_code,
        headers=response.headers,
        stream=httpx.ByteStream(raw),
        extensions=response.extensions,
        request=request,
    )


@pytest.fixture(scope="session", autouse=True)
def _answers_match_bacalhau_swagger():
    """Every 200 JSON answer of a ``/api/v1/`` route that reaches any test over real HTTP (the
    devstack, through the provider's client or a test's own httpx client, sync or async) is checked
    against Bacalhau's swagger, patched where it is known to be wrong (tests/swagger.py). An answer
    that does not fit raises ``jsonschema.ValidationError`` where the test made the request.
    In-process fakes (``httpx.MockTransport``) are not real answers and are not checked."""
    import httpx

    sync_send = httpx.HTTPTransport.handle_request
    async_send = httpx.AsyncHTTPTransport.handle_async_request

    def checked(self, request):
        response = sync_send(self, request)
        template = _swagger_route(request, response)
        if template is None:
            return response  # untouched: its stream is read by whoever asked
        try:
            raw = b"".join(response.stream)
        finally:
            response.close()
        return _checked_answer(request, response, template, raw)

    async def checked_async(self, request):
        response = await async_send(self, request)
        template = _swagger_route(request, response)
        if template is None:
            return response
        try:
            raw = b"".join([chunk async for chunk in response.stream])
        finally:
            await response.aclose()
        return _checked_answer(request, response, template, raw)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(httpx.HTTPTransport, "handle_request", checked)
        patch.setattr(httpx.AsyncHTTPTransport, "handle_async_request", checked_async)
        yield


@pytest.fixture
def api(devstack):
    """Raw HTTP to the session devstack, for tests of the stand-in itself (modules may override)."""
    import httpx

    with httpx.Client(base_url=devstack.api_url, timeout=30) as http:
        yield http


@pytest.fixture
def client(devstack):
    """The provider's blocking client on the session devstack (modules may override)."""
    from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig

    with BacalhauClient(ClientConfig(base_url=devstack.api_url)) as bacalhau:
        yield bacalhau
