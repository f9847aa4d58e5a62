"""No secret lands anywhere: four secrets in real work, then a search of every place they could land.

The secrets: a Bacalhau API key and a basic-auth password (the devstack checks both, as v1.9.3's
authorizer does), an AWS secret access key (SeaweedFS checks it: an identity of its own) and an
AWS session token (SeaweedFS refuses a token it did not issue, so the connection holding one is
used by a staging that fails: boto3 still signs and sends it). The example pipeline (stage, two
chained jobs, fetch) and a failing job run deferrable with the API key and blocking with basic
auth, each in a fresh Airflow process at INFO with OpenLineage on; then connections to a closed
port, and one with a refused secret, fail. Searched, for each secret, its base64 forms and the
basic-auth header: the captured output (task and trigger logs, exceptions), every file under
AIRFLOW_HOME, a dump of every table of the metadata DB, the OpenLineage events, the devstack's
files (job store, logs) and its GET /jobs answers, the S3 server's data and log.

``BACALHAU_SECRETS_LOG_LEVEL=DEBUG`` runs it at DEBUG: Airflow's and botocore's own DEBUG lines
holding secrets are then printed apart (upstream), the provider's must still be 0.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
import sys
import textwrap
from pathlib import Path

import e2e_helpers as e2e
import httpx
import pytest

from airflow_provider_bacalhau.devstack import procs
from airflow_provider_bacalhau.devstack.testing import SECRET_IDENTITY

pytestmark = [pytest.mark.docker, pytest.mark.slow]

RUNNER = Path(__file__).resolve().parent / "secrets_run.py"
API_KEY = "bacalhau-API-key-Hn4w8-never-logged"
USERNAME = "airflowuser"
PASSWORD = "basic-auth-pass-T6v2q-never-logged"
AWS_SECRET = SECRET_IDENTITY.secret_key
AWS_TOKEN = "aws-session-token-Jm3r5-never-logged"
#: Upstream DEBUG lines that hold secrets: Airflow's task supervisor logs each value it masks
#: (airflow-notes.md); botocore logs its signed request (headers, canonical request with the token).
UPSTREAM_DEBUG = ("MaskSecret(", "x-amz-security-token:", "Sending http request: <AWSPreparedRequest")
SECRETS = {"api_key": API_KEY, "password": PASSWORD, "aws_secret": AWS_SECRET, "aws_token": AWS_TOKEN}

FAILING_DAG = """
import pendulum
from airflow.providers.common.compat.sdk import DAG
from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator, BacalhauS3StageOperator

with DAG("secrets_failing_job", schedule=None, start_date=pendulum.datetime(2025, 1, 1, tz="UTC")):
    BacalhauDockerJobOperator(
        task_id="fails", image="busybox:1.37.0", entrypoint=["sh", "-c"],
        parameters=["echo about to fail >&2; exit 3"], poll_interval=1, retries=0)
    # SeaweedFS refuses a session token it did not issue: this staging fails, token sent.
    BacalhauS3StageOperator(
        task_id="stage_with_session_token", aws_conn_id="aws_session", local_paths=[__file__],
        bucket="bacalhau-results", prefix="staging/secrets-token/", retries=0)
"""


def b64_forms(secret: str) -> set[str]:
    """The base64 text of ``secret`` wherever it starts in a longer base64 string."""
    raw, forms = secret.encode(), set()
    for offset in range(3):
        encoded = base64.b64encode(b"\0" * offset + raw).decode()
        start = 4 if offset else 0  # the first group mixes in the prefix bytes
        forms.add(encoded[start:-4])  # the last group may be padded
    return forms


def needles() -> dict[str, set[str]]:
    found = {name: {secret, *b64_forms(secret)} for name, secret in SECRETS.items()}
    header = base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    found["password"] |= {header, *b64_forms(f"{USERNAME}:{PASSWORD}")}
    return found


def occurrences(text: str, forms: set[str]) -> int:
    """Places where any form occurs; overlapping matches (a header and the password in it) count once."""
    spans = []
    for form in forms:
        start = text.find(form)
        while start >= 0:
            spans.append((start, start + len(form)))
            start = text.find(form, start + 1)
    merged_end, found = -1, 0
    for start, end in sorted(spans):
        if start >= merged_end:
            found += 1
        merged_end = max(merged_end, end)
    return found


def count(text: str) -> dict[str, int]:
    return {name: occurrences(text, forms) for name, forms in needles().items()}


def files_text(root: Path, skip: tuple[str, ...] = ()) -> str:
    parts = []
    for path in sorted(p for p in root.rglob("*") if p.is_file() and p.name not in skip):
        parts.append(path.read_bytes().decode("latin-1"))
    return "\n".join(parts)


def db_dump(home: Path) -> dict[str, str]:
    """Every table of the SQLite metadata DB as SQL, one text per table."""
    tables: dict[str, list[str]] = {}
    with sqlite3.connect(home / "airflow.db") as db:
        for line in db.iterdump():
            name = line.split('"')[1] if line.startswith('INSERT INTO "') else "_schema"
            tables.setdefault(name, []).append(line)
    return {name: "\n".join(lines) for name, lines in tables.items()}


def test_the_search_finds_each_secret_plain_in_base64_and_as_a_basic_auth_header():
    header = "Authorization: Basic " + base64.b64encode(f"{USERNAME}:{PASSWORD}".encode()).decode()
    assert count(header)["password"] == 1
    for name, secret in SECRETS.items():
        for prefix in ("", "a", "ab", "abc"):  # every alignment inside a longer base64 value
            blob = json.dumps({"value": base64.b64encode(f"{prefix}{secret}!".encode()).decode()})
            assert count(blob)[name] == 1, (name, prefix)
        assert count(f"token={secret}")[name] == 1
    assert set(count("nothing secret here").values()) == {0}


@pytest.fixture
def auth_on(devstack):
    devstack.set_auth(
        [
            {"api_key": API_KEY, "capabilities": ["*"]},
            {"username": USERNAME, "password": PASSWORD, "capabilities": ["*"]},
        ]
    )
    try:
        yield devstack
    finally:
        devstack.clear_auth()


def aws_conn(endpoint: str, *, token: bool = False) -> str:
    conn = json.loads(
        procs.aws_conn_json(endpoint, procs.DEFAULT_REGION, SECRET_IDENTITY.access_key, AWS_SECRET)
    )
    if token:
        conn["extra"]["aws_session_token"] = AWS_TOKEN
    return json.dumps(conn)


def run_airflow(devstack, tmp_path: Path, *, deferrable: bool, credentials: dict) -> tuple[list, str, Path]:
    dags = tmp_path / "dags"
    dags.mkdir()
    (dags / "secrets_failing_job.py").write_text(textwrap.dedent(FAILING_DAG))
    home = tmp_path / "airflow-home"
    home.mkdir()
    closed_port = procs.free_port()
    bacalhau = json.loads(devstack.bacalhau_conn_json(**credentials))
    refused = credentials["password"] + "-not-this-one"
    wrong = {**bacalhau, "port": closed_port, "extra": {**bacalhau["extra"], "max_retries": 0}}
    env = {
        **os.environ,
        **devstack.env(),
        "AIRFLOW_CONN_BACALHAU_DEFAULT": json.dumps(bacalhau),
        "AIRFLOW_CONN_BACALHAU_WRONG_ENDPOINT": json.dumps(wrong),
        # The secret with a suffix: refused (401), and found by the search if a message echoed it.
        "AIRFLOW_CONN_BACALHAU_REFUSED": json.dumps({**wrong, "port": bacalhau["port"], "password": refused}),
        "AIRFLOW_CONN_AWS_DEFAULT": aws_conn(devstack.s3_endpoint),
        "AIRFLOW_CONN_AWS_SESSION": aws_conn(devstack.s3_endpoint, token=True),
        "AIRFLOW_CONN_AWS_WRONG_ENDPOINT": aws_conn(f"http://{procs.LOCALHOST}:{closed_port}", token=True),
        "AIRFLOW_HOME": str(home),
        "AIRFLOW__CORE__DAGS_FOLDER": str(dags),
        "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
        # INFO as deployed; DEBUG (BACALHAU_SECRETS_LOG_LEVEL=DEBUG) adds Airflow's MaskSecret lines.
        "AIRFLOW__LOGGING__LOGGING_LEVEL": os.environ.get("BACALHAU_SECRETS_LOG_LEVEL", "INFO"),
        "AIRFLOW__OPERATORS__DEFAULT_DEFERRABLE": str(deferrable),
        "AIRFLOW__OPENLINEAGE__DISABLED": "False",
        "AIRFLOW__OPENLINEAGE__TRANSPORT": json.dumps(
            {"type": "file", "log_file_path": str(tmp_path / "openlineage.jsonl"), "append": True}
        ),
        "AIRFLOW__OPENLINEAGE__NAMESPACE": "bacalhau-secrets",
        "AWS_MAX_ATTEMPTS": "1",
        "BACALHAU_EXAMPLES_POLL_INTERVAL": "1",
        "PYTHONPATH": os.pathsep.join([str(e2e.REPO), os.environ.get("PYTHONPATH", "")]),
        "PYTHONWARNINGS": "ignore::DeprecationWarning",
    }
    # Only the connections carry secrets: the process must not find the devstack's own keys.
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"):
        env.pop(name, None)
    plan = {
        "runs": [
            {
                "dag_file": str(e2e.EXAMPLES / "example_bacalhau_s3_pipeline.py"),
                "dag_id": "example_bacalhau_s3_pipeline",
                "conf": {
                    "download_dir": str(tmp_path / "downloads"),
                    "stage_prefix": f"staging/secrets-{deferrable}/",
                },
            },
            {"dag_file": str(dags / "secrets_failing_job.py"), "dag_id": "secrets_failing_job", "conf": {}},
        ],
        "bad_conn_ids": {
            "bacalhau": "bacalhau_wrong_endpoint",
            "aws": "aws_wrong_endpoint",
            "bacalhau_refused": "bacalhau_refused",
        },
    }
    proc = subprocess.run(
        [sys.executable, str(RUNNER), json.dumps(plan)],
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    out = proc.stdout + proc.stderr
    (tmp_path / "run.log").write_text(out)  # kept for a failing test's reader
    assert proc.returncode == 0, e2e.tail(out)
    (line,) = [line for line in proc.stdout.splitlines() if line.startswith("SECRETS-SUMMARY ")]
    return json.loads(line.split(" ", 1)[1]), out, home


def places(devstack, s3_server, tmp_path: Path, out: str, home: Path) -> tuple[dict[str, str], str]:
    """Every place a secret could land, as text; and Airflow's upstream DEBUG lines apart.

    Not searched: the S3 server's identity file (it must hold the AWS secret to check signatures).
    """
    upstream = [line for line in out.splitlines() if any(mark in line for mark in UPSTREAM_DEBUG)]
    out = "\n".join(line for line in out.splitlines() if not any(mark in line for mark in UPSTREAM_DEBUG))
    found = {
        "S3 server files (data, log)": files_text(s3_server.data_dir, skip=("s3-identities.json",))
        + s3_server.log_path.read_text(),
        "captured output (task, trigger logs, exceptions)": out,
        "files under AIRFLOW_HOME": files_text(home),
        "OpenLineage events": (tmp_path / "openlineage.jsonl").read_text(),
        "devstack files (job store, logs)": files_text(devstack.home),
        "devstack admin GET /devstack/v1/jobs": json.dumps(devstack.jobs()),
    }
    answer = httpx.get(
        f"{devstack.api_url}/api/v1/orchestrator/jobs",
        params={"namespace": "*"},
        headers={"Authorization": f"Bearer {API_KEY}"},
        timeout=30,
    )
    answer.raise_for_status()
    found["devstack GET /api/v1/orchestrator/jobs"] = answer.text
    for table, text in db_dump(home).items():
        found[f"metadata DB table {table}"] = text
    return found, "\n".join(upstream)


@pytest.mark.parametrize(
    ("deferrable", "credentials"),
    [(True, {"password": API_KEY}), (False, {"login": USERNAME, "password": PASSWORD})],
    ids=["deferrable-api-key", "blocking-basic-auth"],
)
def test_no_secret_lands_anywhere(auth_on, s3_server, tmp_path, deferrable, credentials):
    devstack = auth_on
    e2e.ensure_bucket(devstack, e2e.EXAMPLE_BUCKET)
    summary, out, home = run_airflow(devstack, tmp_path, deferrable=deferrable, credentials=credentials)

    pipeline, failing = summary
    assert pipeline["state"] == "success", e2e.tail(out)
    assert failing["tasks"] == {"fails": "failed", "stage_with_session_token": "failed"}, e2e.tail(out)
    assert "S3 refused the AWS connection 'aws_session'" in out, e2e.tail(out)
    e2e.assert_deferral(out, deferrable)
    # The real work did happen where the secrets were needed: the failures probed are the ones meant.
    assert "an execution exited with a non-zero code" in out, e2e.tail(out)
    assert out.count("EXC-PROBE") == 6, e2e.tail(out)
    for call in ("bacalhau list_jobs", "s3 object_exists", "bacalhau refused list_jobs"):
        assert f"EXC-PROBE {call} returned" not in out, e2e.tail(out)
    assert "401" in out, e2e.tail(out)
    assert (home / "airflow.db").exists()
    assert "rendered_task_instance_fields" in db_dump(home) and "xcom" in db_dump(home)

    searched, upstream = places(devstack, s3_server, tmp_path, out, home)
    # Airflow's and botocore's own DEBUG lines: reported, not the provider's to fix.
    print("upstream DEBUG lines:", count(upstream))
    # The search reaches what it claims to: the failing job's spec is in the devstack's store and
    # answers, the failed run's events are in the lineage file.
    for place in (
        "devstack files (job store, logs)",
        "devstack admin GET /devstack/v1/jobs",
        "devstack GET /api/v1/orchestrator/jobs",
        "OpenLineage events",
    ):
        assert "secrets-failing-job" in searched[place].replace("_", "-"), place
    counts = {place: count(text) for place, text in searched.items()}
    print("secret occurrences per place:", json.dumps(counts, indent=1))
    leaks = {place: {k: v for k, v in per.items() if v} for place, per in counts.items() if any(per.values())}
    assert not leaks, leaks
