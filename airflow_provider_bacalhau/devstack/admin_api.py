"""The devstack's admin routes under ``/devstack/v1``: faults, auth, restart, reset and a raw job
list, which tests use to shape and inspect the stand-in. Bacalhau has none of them."""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request

from airflow_provider_bacalhau.devstack import auth as authz
from airflow_provider_bacalhau.devstack.faults import Faults
from airflow_provider_bacalhau.devstack.store import ApiError


def register(app: FastAPI, state: Any) -> None:
    @app.get("/devstack/v1/faults")
    def get_faults() -> dict:
        return state.faults.to_dict()

    @app.put("/devstack/v1/faults")
    async def put_faults(request: Request) -> dict:
        try:
            state.faults = Faults.from_config(await request.json())
        except (ValueError, TypeError) as exc:
            raise ApiError(400, f"invalid fault configuration: {exc}", "BadRequest", "Devstack") from exc
        return state.faults.to_dict()

    @app.delete("/devstack/v1/faults")
    def clear_faults() -> dict:
        state.faults = Faults()
        return state.faults.to_dict()

    @app.get("/devstack/v1/auth")
    def get_auth() -> dict:
        return state.auth.to_dict()

    @app.put("/devstack/v1/auth")
    async def put_auth(request: Request) -> dict:
        try:
            state.auth = authz.AuthConfig.from_config(await request.json())
        except (ValueError, TypeError) as exc:
            raise ApiError(400, f"invalid auth configuration: {exc}", "BadRequest", "Devstack") from exc
        return state.auth.to_dict()

    @app.delete("/devstack/v1/auth")
    def clear_auth() -> dict:
        state.auth = authz.AuthConfig()
        return state.auth.to_dict()

    @app.post("/devstack/v1/restart")
    def restart() -> dict:
        state.restart_soon()
        return {"Restarting": True}

    @app.post("/devstack/v1/reset")
    def reset() -> dict:
        with state.store.lock:
            for job_id in list(state.store.jobs):
                state.scheduler.stop_for_update(job_id)
            state.store.delete_all()
        return {"Reset": True}

    @app.get("/devstack/v1/jobs")
    def all_jobs() -> dict:
        with state.store.lock:
            return {
                "Items": sorted((dict(j) for j in state.store.jobs.values()), key=lambda j: j["CreateTime"])
            }
