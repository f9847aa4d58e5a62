"""``BacalhauJobTrigger``: watch one Bacalhau job from the triggerer until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from typing import Any

import httpx
from airflow.triggers.base import BaseTrigger, TriggerEvent

from airflow_provider_bacalhau.operators._completion import event_from_response, make_event, retry_delay
from airflow_provider_bacalhau.operators._completion import is_transient as _is_transient_api_error

#: Used when no deadline is given: a trigger must end on its own (``dag.test()`` waits for it).
DEFAULT_WAIT_SECONDS = 24 * 3600.0


def is_transient(exc: BaseException) -> bool:
    """Worth another try: no answer, rate limited, a server-side error, a transport failure."""
    return _is_transient_api_error(exc) or isinstance(exc, (httpx.TransportError, asyncio.TimeoutError))


class BacalhauJobTrigger(BaseTrigger):
    """Poll a Bacalhau job until it is terminal, then fire exactly one event.

    The event payload is ``{"status": "success"|"failed"|"timeout"|"error", "job_id", "message",
    "job"}`` where ``job`` is the ``GET /jobs/{id}?include=executions`` answer (execution copies of
    the spec removed), so the task finishes without another request. The outcome is decided by
    :class:`~airflow_provider_bacalhau.spec.JobStatus`. Transient API errors are retried with
    backoff until the deadline; other errors end the wait with an ``error`` event.

    All triggers in one triggerer event loop share the hook's single HTTP connection pool.

    :param job_id: the job ID (or name) to watch.
    :param bacalhau_conn_id: the Airflow connection to the Bacalhau API.
    :param poll_interval: seconds between two looks at the job.
    :param deadline: unix time (seconds) after which a ``timeout`` event is fired; default 24 hours
        from when the trigger was built.
    :param stop_on_kill: stop the job when the user kills the deferred task (Airflow >= 3.3 calls
        :meth:`on_kill`).
    :param stop_reason: the reason recorded on the job when it is stopped that way.
    """

    def __init__(
        self,
        job_id: str,
        bacalhau_conn_id: str = "bacalhau_default",
        poll_interval: float = 10.0,
        deadline: float | None = None,
        stop_on_kill: bool = True,
        stop_reason: str = "",
    ) -> None:
        super().__init__()
        if not job_id or not isinstance(job_id, str):
            raise ValueError(f"job_id: must be a non-empty string, got {job_id!r}")
        if float(poll_interval) <= 0:
            raise ValueError(f"poll_interval: must be > 0 seconds, got {poll_interval!r}")
        self.job_id = job_id
        self.bacalhau_conn_id = bacalhau_conn_id
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else time.time() + DEFAULT_WAIT_SECONDS
        self.stop_on_kill = bool(stop_on_kill)
        self.stop_reason = stop_reason or ""
        self._fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            "airflow_provider_bacalhau.triggers.job.BacalhauJobTrigger",
            {
                "job_id": self.job_id,
                "bacalhau_conn_id": self.bacalhau_conn_id,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stop_on_kill": self.stop_on_kill,
                "stop_reason": self.stop_reason,
            },
        )

    async def _client(self) -> Any:
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        # The hook hands out the event loop's shared pool: never closed here.
        return await BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id).get_async_client()

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._watch()
        except Exception as exc:  # any surprise ends the wait visibly, never silently
            self.log.exception("Watching Bacalhau job %s failed", self.job_id)
            event = make_event("error", self.job_id, f"watching the job failed: {exc}")
        self._fired = True
        yield TriggerEvent(event)

    async def _watch(self) -> dict[str, Any]:
        from airflow_provider_bacalhau.spec import JobStatus

        client = await self._client()
        last_state: str | None = None
        last_response: dict | None = None
        errors_in_a_row = 0
        while True:
            try:
                response = await client.get_job(self.job_id)
            except Exception as exc:
                if not is_transient(exc):
                    return make_event("error", self.job_id, f"cannot read Bacalhau job {self.job_id}: {exc}",
                                      last_response)
                errors_in_a_row += 1
                delay = retry_delay(errors_in_a_row, self.poll_interval)
                self.log.warning("Bacalhau job %s: transient API error (%s); retry %d in %.1fs",
                                 self.job_id, exc, errors_in_a_row, delay)
                if time.time() + delay >= self.deadline:
                    return self._timeout_event(last_state, last_response)
                await asyncio.sleep(delay)
                continue
            errors_in_a_row = 0
            last_response = response
            status = JobStatus.from_api(response)
            if status.is_terminal:
                self.log.info("Bacalhau job %s is terminal: %s", self.job_id, _state(status))
                return event_from_response(response)
            state = _state(status)
            if state != last_state:
                self.log.info("Bacalhau job %s is %s%s", self.job_id, state,
                              f" ({status.message})" if status.message else "")
                last_state = state
            remaining = self.deadline - time.time()
            if remaining <= 0:
                return self._timeout_event(last_state, last_response)
            await asyncio.sleep(min(self.poll_interval, remaining))

    def _timeout_event(self, state: str | None, response: dict | None) -> dict[str, Any]:
        where = f"still {state}" if state else "not observed"
        return make_event("timeout", self.job_id,
                          f"Bacalhau job {self.job_id} {where} at the wait's deadline", response)

    async def on_kill(self) -> None:
        """Stop the job when a user kills the deferred task (called by Airflow >= 3.3 only)."""
        if self._fired or not self.stop_on_kill:
            return
        reason = self.stop_reason or "the Airflow task was killed while deferred"
        try:
            client = await self._client()
            await client.stop_job(self.job_id, reason=reason)
            self.log.info("Stopped Bacalhau job %s: %s", self.job_id, reason)
        except Exception:
            self.log.warning("Could not stop Bacalhau job %s on kill", self.job_id, exc_info=True)


def _state(status: Any) -> str:
    return str(getattr(status.state, "value", status.state))
