"""BacalhauJobLink: stored before waiting, absent (not an error) without a Web UI URL."""

from __future__ import annotations

import json
import time

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred
from airflow_helpers import AIRFLOW_V3, FakeTaskInstance, fake_context
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.links import BacalhauJobLink
from airflow_provider_bacalhau.operators import BacalhauJobOperator

#: Airflow 3's UI shows the string stored under the link's xcom_key; Airflow 2 has no such key.
UI_KEY = {"_link_BacalhauJobLink"} if AIRFLOW_V3 else set()


def test_declared_name_and_keys():
    link = BacalhauJobLink()
    assert link.name == "Bacalhau Job"
    assert link.key == "bacalhau_job_link"
    assert {getattr(link, "xcom_key", None)} - {None} == UI_KEY


def test_persist_stores_the_structured_value_and_the_ui_string():
    ti = FakeTaskInstance()
    BacalhauJobLink.persist(fake_context(ti), "j-1", "http://ui/jobs/j-1")
    assert ti.xcoms == {
        "bacalhau_job_link": {"job_id": "j-1", "url": "http://ui/jobs/j-1"},
        **dict.fromkeys(UI_KEY, "http://ui/jobs/j-1"),
    }


def test_no_url_means_no_link():
    ti = FakeTaskInstance()
    BacalhauJobLink.persist(fake_context(ti), "j-1", None)
    assert ti.xcoms == {}


def test_get_link_never_raises():
    key = FakeTaskInstance()  # outside a task: the XCom read fails, the link is just empty
    assert BacalhauJobLink().get_link(None, ti_key=key) == ""


def test_link_is_stored_before_deferring(devstack_env, devstack):
    ti = FakeTaskInstance(task_id="linked", run_id=f"link-{time.time_ns()}")
    op = BacalhauJobOperator(task_id="linked", job=busybox_job("sleep 5"), deferrable=True)
    with pytest.raises(TaskDeferred) as deferred:
        op.execute(fake_context(ti))
    job_id = deferred.value.trigger.job_id
    assert ti.xcoms["bacalhau_job_link"]["url"] == f"{devstack.webui_url}/jobs/{job_id}"
    for key in UI_KEY:
        assert ti.xcoms[key] == f"{devstack.webui_url}/jobs/{job_id}"
    op.on_kill()


def test_connection_without_webui_url_gives_no_link(devstack_env, devstack, monkeypatch):
    conn = {"conn_type": "bacalhau", "host": devstack.api_host, "port": devstack.api_port}
    monkeypatch.setenv("AIRFLOW_CONN_BACALHAU_NOUI", json.dumps(conn))
    ti = FakeTaskInstance(task_id="nolink", run_id=f"nolink-{time.time_ns()}")
    op = BacalhauJobOperator(
        task_id="nolink",
        job=busybox_job("echo"),
        bacalhau_conn_id="bacalhau_noui",
        deferrable=False,
        poll_interval=0.2,
    )
    op.execute(fake_context(ti))
    assert ti.xcoms["bacalhau_job_id"].startswith("j-")
    assert "bacalhau_job_link" not in ti.xcoms and "_link_BacalhauJobLink" not in ti.xcoms
