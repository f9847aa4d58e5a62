"""The suite-wide check (tests/conftest.py) that every body the client sends fits the swagger."""

from __future__ import annotations

import jsonschema
import pytest

from airflow_provider_bacalhau.client import BacalhauClient, ClientConfig


def test_a_body_outside_the_swagger_is_stopped_before_it_is_sent():
    # Port 9 (discard) on loopback: had the body passed the check, the error would be a connect error.
    client = BacalhauClient(ClientConfig(base_url="http://127.0.0.1:9", max_retries=0))
    bad_job = {
        "Type": "batch",
        "Count": 1,
        "Tasks": [{"Name": "main", "Engine": {"Type": "noop"}}],
        "Bogus": True,
    }
    with client, pytest.raises(jsonschema.ValidationError, match="Bogus"):
        client.submit_job(bad_job)
