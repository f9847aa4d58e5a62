"""Bacalhau's own job files, loaded by the provider's spec, are accepted by the devstack's
submit path (which mirrors v1.9.3's Job.ValidateSubmission), and stopped at once."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from devstack_helpers import JOBS, unique

from airflow_provider_bacalhau.spec import Job

JOBS_DIR = Path(__file__).parent / "data" / "bacalhau-jobs"
ACCEPTED = sorted(
    p.name for p in JOBS_DIR.iterdir() if p.suffix in (".yaml", ".yml", ".json") and p.name != "empty.yaml"
)


@pytest.fixture(scope="module")
def api(devstack):
    with httpx.Client(base_url=devstack.api_url, timeout=30) as client:
        yield client


@pytest.mark.parametrize("name", ACCEPTED)
def test_devstack_accepts_what_the_provider_builds_from_bacalhau_job_files(api, name):
    body = Job.from_file(JOBS_DIR / name).to_dict()
    body["Name"] = unique("bacalhau-file")  # files share names (19-*-v1/-v2); keep runs apart
    resp = api.put(JOBS, json={"Job": body})
    assert resp.status_code == 200, resp.text
    job_id = resp.json()["JobID"]
    stored = api.get(f"{JOBS}/{job_id}").json()["Job"]
    assert stored["Tasks"][0]["Engine"]["Type"] == body["Tasks"][0]["Engine"]["Type"]
    api.delete(f"{JOBS}/{job_id}", params={"reason": "test: submit check only"})
