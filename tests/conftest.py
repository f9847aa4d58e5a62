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

# The devstack's fixtures (`s3_server`, `devstack`, `devstack_env`) for every test module.
pytest_plugins = ["airflow_provider_bacalhau.devstack.testing"]


import pytest  # noqa: E402


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
