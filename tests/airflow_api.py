"""The REST API (``/api/v2``) of a real deployment (tests/airflow_deployment.py) as its admin user:
the calls the tests make, which are the ones the UI makes."""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    from airflow_deployment import AirflowDeployment

ADMIN = "admin"


class AirflowAPI:
    """The REST API (``/api/v2``) of a deployment, as the admin user.

    :param deployment: the running deployment.
    """

    def __init__(self, deployment: AirflowDeployment) -> None:
        self.deployment = deployment
        self.http = httpx.Client(base_url=f"{deployment.url}/api/v2", timeout=60)
        self.http.headers["Authorization"] = f"Bearer {self.token()}"

    def token(self) -> str:
        resp = httpx.post(
            f"{self.deployment.url}/auth/token",
            timeout=30,
            json={"username": ADMIN, "password": self.deployment.password},
        )
        resp.raise_for_status()
        return resp.json()["access_token"]

    def close(self) -> None:
        self.http.close()

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        for attempt in range(3):
            try:
                resp = self.http.request(method, path, **kwargs)
                break
            except httpx.TimeoutException:
                # SQLite allows one writer: on a busy 2-core machine a read can wait its turn.
                if method != "GET" or attempt == 2:
                    raise
        if resp.status_code >= 400:
            raise AssertionError(f"{method} {path}: {resp.status_code} {resp.text[:2000]}")
        return resp.json() if resp.content else None

    # -- DAGs ---------------------------------------------------------------------------------

    def wait_for_dags(self, dag_ids: Iterable[str], timeout: float = 120.0) -> None:
        """Until the dag-processor has parsed every one of ``dag_ids`` (import errors fail)."""
        wanted = set(dag_ids)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            errors = self.request("GET", "/importErrors")["import_errors"]
            if errors:
                raise AssertionError(f"DAG import errors: {errors}")
            known = {d["dag_id"] for d in self.request("GET", "/dags", params={"limit": 100})["dags"]}
            if wanted <= known:
                return
            time.sleep(1)
        raise TimeoutError(f"DAGs not parsed after {timeout}s: {sorted(wanted - known)}")

    def unpause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": False})

    def pause(self, dag_id: str) -> dict:
        return self.request("PATCH", f"/dags/{dag_id}", json={"is_paused": True})

    def task(self, dag_id: str, task_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/tasks/{task_id}")

    # -- runs ---------------------------------------------------------------------------------

    def trigger(self, dag_id: str, conf: Mapping[str, Any] | None = None) -> dict:
        """Start a run now with ``conf`` as its params, as the UI's Trigger form does."""
        return self.request(
            "POST", f"/dags/{dag_id}/dagRuns", json={"logical_date": None, "conf": dict(conf or {})}
        )

    def runs(self, dag_id: str) -> list[dict]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns", params={"limit": 100, "order_by": "run_after"})[
            "dag_runs"
        ]

    def run(self, dag_id: str, run_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}")

    def wait_for_run(
        self, dag_id: str, run_id: str, states: Iterable[str] = ("success", "failed"), timeout: float = 180.0
    ) -> dict:
        wanted = set(states)
        deadline = time.monotonic() + timeout
        run: dict = {}
        while time.monotonic() < deadline:
            run = self.run(dag_id, run_id)
            if run["state"] in wanted:
                return run
            time.sleep(1)
        raise TimeoutError(
            f"{dag_id} {run_id} still {run.get('state')} after {timeout}s: {self.task_states(dag_id, run_id)}"
        )

    def task_instances(self, dag_id: str, run_id: str) -> list[dict]:
        return self.request(
            "GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances", params={"limit": 100}
        )["task_instances"]

    def task_states(self, dag_id: str, run_id: str) -> dict[str, str | None]:
        return {
            (ti["task_id"] if ti["map_index"] < 0 else f"{ti['task_id']}[{ti['map_index']}]"): ti["state"]
            for ti in self.task_instances(dag_id, run_id)
        }

    def failure_report(self, dag_id: str, run_id: str) -> str:
        """The task states of a run and the log of every task that did not succeed."""
        parts = [f"{dag_id} {run_id}: {self.task_states(dag_id, run_id)}"]
        for ti in self.task_instances(dag_id, run_id):
            if ti["state"] not in ("success", "skipped"):
                parts.append(
                    f"--- {ti['task_id']} ({ti['state']}, try {ti['try_number']}):\n"
                    + "\n".join(
                        self.log(dag_id, run_id, ti["task_id"], max(1, ti["try_number"])).splitlines()[-40:]
                    )
                )
        return "\n".join(parts)

    def task_instance(self, dag_id: str, run_id: str, task_id: str) -> dict:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}")

    def wait_for_task_state(
        self, dag_id: str, run_id: str, task_id: str, state: str, timeout: float = 120.0
    ) -> dict:
        deadline = time.monotonic() + timeout
        ti: dict = {}
        while time.monotonic() < deadline:
            ti = self.task_instance(dag_id, run_id, task_id)
            if ti["state"] == state:
                return ti
            if ti["state"] in ("success", "failed", "upstream_failed") and state not in ("success", "failed"):
                break
            time.sleep(0.5)
        raise AssertionError(
            f"{task_id} is {ti.get('state')}, not {state}:\n{self.failure_report(dag_id, run_id)}"
        )

    def set_task_state(self, dag_id: str, run_id: str, task_id: str, state: str) -> Any:
        """Mark a task instance, as the UI's "Mark as failed/success" does."""
        return self.request(
            "PATCH", f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}", json={"new_state": state}
        )

    def links(self, dag_id: str, run_id: str, task_id: str) -> dict[str, str | None]:
        return self.request("GET", f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/links")[
            "extra_links"
        ]

    def xcom(self, dag_id: str, run_id: str, task_id: str, key: str = "return_value") -> Any:
        entry = self.request(
            "GET",
            f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/xcomEntries/{key}",
            params={"deserialize": True, "stringify": False},
        )
        return entry["value"]

    def log_events(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> list[Any]:
        """The task log as the UI reads it: JSON events, the trigger's lines included."""
        resp = self.http.get(
            f"/dags/{dag_id}/dagRuns/{_q(run_id)}/taskInstances/{task_id}/logs/{try_number}",
            params={"full_content": True},
            headers={"Accept": "application/json"},
        )
        if resp.status_code == 404:
            return []
        resp.raise_for_status()
        content = resp.json().get("content") or []
        return content if isinstance(content, list) else [content]

    def log(self, dag_id: str, run_id: str, task_id: str, try_number: int = 1) -> str:
        """The task log as text: one event a line (its message, or the raw event)."""
        lines = []
        for event in self.log_events(dag_id, run_id, task_id, try_number):
            if isinstance(event, dict):
                lines.append(str(event.get("event", event)))
            else:
                lines.append(str(event))
        return "\n".join(lines)


def _q(run_id: str) -> str:
    return quote(run_id, safe="")
