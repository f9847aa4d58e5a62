"""The Airflow UI in a real browser: Debian's Chromium, headless, driven by Playwright, against the
session's real deployment (tests/airflow_deployment.py) on the devstack.

What a user does and sees: the Bacalhau connection form, a run started from the Trigger form with
a changed param (it reaches the job), the "Bacalhau Job" link on the task instance (it opens the
job's page), and a task log with the job's lines. Screenshots go to ``artifacts/browser/``.
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import e2e_helpers as e2e
import pytest
from airflow_helpers import needs_api_server, requires_airflow

pytestmark = [pytest.mark.docker, pytest.mark.slow, needs_api_server]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = e2e.REPO / "artifacts" / "browser"
# The flags measured in shared/airflow-notes.md: no sandbox (root), no GPU, nothing phoning home.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]

if not CHROMIUM.exists():
    pytest.skip(
        "Debian's chromium is not installed (scripts/bootstrap.sh installs it)", allow_module_level=True
    )


@pytest.fixture(scope="module")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_ARGS, headless=True
        )
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture(scope="module")
def api(airflow_api):
    airflow_api.wait_for_dags(["example_bacalhau_job_file", "deploy_long_job"])
    return airflow_api


@pytest.fixture
def page(browser, airflow_deployment, request):
    """A page logged in as the admin, as a user does it: the login form."""
    from airflow_api import ADMIN

    context = browser.new_context(viewport={"width": 1400, "height": 900}, base_url=airflow_deployment.url)
    page = context.new_page()
    page.set_default_timeout(60_000)  # a loaded 2-core machine renders slowly
    page.goto("/auth/login/")
    page.fill("input[name=username]", ADMIN)
    page.fill("input[name=password]", airflow_deployment.password)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"^(?!.*/auth/login).*$"))
    failed_before = request.session.testsfailed
    yield page
    if request.session.testsfailed != failed_before:
        shot(page, f"FAILED-{request.node.name}")
    context.close()


def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    page.screenshot(path=str(path))
    return path


@requires_airflow(
    (3, 1),
    "the connection form built from the provider info; 3.0 builds it from hook classes only when "
    "FAB's wtforms is installed (docs/compat.rst)",
)
def test_the_bacalhau_connection_form_shows_its_own_fields(page):
    page.goto("/connections")
    page.get_by_role("button", name=re.compile("Add Connection", re.IGNORECASE)).click()
    page.get_by_role("combobox").first.fill("Bacalhau")
    page.keyboard.press("Enter")
    # Relabelled standard fields, with their placeholders.
    page.get_by_text("Host or URL", exact=True).wait_for()
    assert page.get_by_placeholder("127.0.0.1, or https://bacalhau.example.com:1234").is_visible()
    assert page.get_by_text("API key, or password with a username", exact=True).is_visible()
    page.get_by_text("Extra Fields", exact=True).click()
    for label in (
        "Use TLS",
        "Skip TLS verification",
        "CA file",
        "Web UI URL",
        "Namespace",
        "S3 endpoint (as compute nodes see it)",
        "S3 region (as compute nodes see it)",
    ):
        assert page.locator("label", has_text=label).first.is_visible(), label
    shot(page, "connection-form")


def test_a_run_from_the_trigger_form_carries_the_changed_param_into_the_job(page, api, devstack):
    dag_id = "example_bacalhau_job_file"
    api.unpause(dag_id)
    before = {r["dag_run_id"] for r in api.runs(dag_id)}
    message = f"Typed into the Trigger form at {time.strftime('%H:%M:%S')}"
    page.goto(f"/dags/{dag_id}")
    page.get_by_role("button", name=re.compile("^Trigger", re.IGNORECASE)).first.click()
    field = page.locator("input[name=element_message]")
    field.fill(message)
    shot(page, "trigger-form")
    page.get_by_role("dialog").get_by_role("button", name="Trigger", exact=True).click()

    new = e2e.wait_for(
        lambda: [r for r in api.runs(dag_id) if r["dag_run_id"] not in before],
        60,
        "the run started from the form",
    )
    (run,) = new
    assert run["conf"]["message"] == message
    finished = api.wait_for_run(dag_id, run["dag_run_id"])
    assert finished["state"] == "success", api.failure_report(dag_id, run["dag_run_id"])
    job_id = api.xcom(dag_id, run["dag_run_id"], "hello", key="bacalhau_job_id")
    job = e2e.devstack_job(devstack, job_id)
    # The rendered job file put the message into the container's environment or command.
    assert message in repr(job["Tasks"][0]["Engine"]), job["Tasks"][0]["Engine"]
    assert api.xcom(dag_id, run["dag_run_id"], "report")["message"] == message
    page.goto(f"/dags/{dag_id}/runs/{_q(run['dag_run_id'])}/tasks/hello")
    page.get_by_text("Bacalhau job", exact=False).first.wait_for()
    shot(page, "task-log")


def test_the_task_instance_shows_the_job_link_and_it_opens_the_job(page, api, devstack):
    dag_id = "example_bacalhau_job_file"
    api.unpause(dag_id)
    run_id = api.trigger(dag_id, {"message": "link from the browser"})["dag_run_id"]
    assert api.wait_for_run(dag_id, run_id)["state"] == "success", api.failure_report(dag_id, run_id)
    job_id = api.xcom(dag_id, run_id, "hello", key="bacalhau_job_id")

    page.goto(f"/dags/{dag_id}/runs/{_q(run_id)}/tasks/hello")
    # Airflow 3.3 shows extra links on the task instance's Details tab (and asks for them there).
    page.get_by_role("link", name="Details", exact=True).click()
    link = page.get_by_role("link", name="Bacalhau Job", exact=True)
    link.wait_for()
    assert link.get_attribute("href") == f"{devstack.webui_url}/jobs/{job_id}"
    shot(page, "task-instance-link")
    with page.context.expect_page() as opened:
        link.click()
    job_page = opened.value
    job_page.wait_for_load_state()
    assert job_page.url == f"{devstack.webui_url}/jobs/{job_id}"
    assert job_id in job_page.content()
    shot(job_page, "job-page")


def test_the_task_log_page_shows_the_jobs_lines(page, api):
    dag_id = "deploy_long_job"
    api.unpause(dag_id)
    # 45 s of output: long enough for a slow page load on a loaded machine.
    run_id = api.trigger(dag_id, {"lines": 45, "interval": 1})["dag_run_id"]
    api.wait_for_task_state(dag_id, run_id, "ticker", "deferred", timeout=120)
    page.goto(f"/dags/{dag_id}/runs/{_q(run_id)}/tasks/ticker")
    # The log view refreshes itself while the task is deferred: a streamed line shows up there.
    page.get_by_text("stdout | tick 3 of 45").first.wait_for(timeout=90_000)
    assert api.task_instance(dag_id, run_id, "ticker")["state"] == "deferred"
    shot(page, "task-log-streamed")
    assert api.wait_for_run(dag_id, run_id)["state"] == "success", api.failure_report(dag_id, run_id)


def _q(run_id: str) -> str:
    from urllib.parse import quote

    return quote(run_id, safe="")
