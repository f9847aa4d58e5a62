"""``BacalhauJobTrigger``: watch one Bacalhau job from the triggerer until it ends."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from functools import cached_property
from typing import Any

from airflow.providers.common.compat.version_compat import AIRFLOW_V_3_0_PLUS
from airflow.triggers.base import BaseTrigger, TriggerEvent
from airflow.utils.state import TaskInstanceState

from airflow_provider_bacalhau.waiting import Sleep, make_event, watch_job

#: Used when no deadline is given: a trigger must end on its own (``dag.test()`` waits for it).
DEFAULT_WAIT_SECONDS = 24 * 3600.0
#: The triggerer gives ``on_kill`` 30 s by default; stopping the job must fit in it.
ON_KILL_STOP_SECONDS = 20.0
#: Airflow >= 3.3 calls a trigger's ``on_kill`` when a user kills its task. Older triggerers only
#: cancel the trigger (then ``cleanup``), as they also do when they stop or hand it to another one.
TRIGGERER_CALLS_ON_KILL = hasattr(BaseTrigger, "on_kill")


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
    :param namespace: the job's Bacalhau namespace (where it is read and stopped); None: the
        connection's. The operators pass the job's, so the worker and the triggerer ask alike.
    :param poll_interval: seconds between two looks at the job.
    :param deadline: unix time (seconds) after which a ``timeout`` event is fired; default 24 hours
        from when the trigger was built.
    :param stop_on_kill: stop the job when the user kills the deferred task (Airflow >= 3.3 calls
        :meth:`on_kill`; on older versions :meth:`cleanup` tells a kill from a triggerer restart).
    :param stop_reason: the reason recorded on the job when it is stopped that way.
    :param stream_logs: log the running executions' container output while waiting (the logs
        WebSocket, best effort); the event then says what was streamed. Off by default, so
        triggers serialized before this argument existed behave as they did.
    """

    def __init__(
        self,
        job_id: str,
        bacalhau_conn_id: str = "bacalhau_default",
        namespace: str | None = None,
        poll_interval: float = 10.0,
        deadline: float | None = None,
        stop_on_kill: bool = True,
        stop_reason: str = "",
        stream_logs: bool = False,
    ) -> None:
        super().__init__()
        if not job_id or not isinstance(job_id, str):
            raise ValueError(f"job_id: must be a non-empty string, got {job_id!r}")
        if float(poll_interval) <= 0:
            raise ValueError(f"poll_interval: must be > 0 seconds, got {poll_interval!r}")
        self.job_id = job_id
        self.bacalhau_conn_id = bacalhau_conn_id
        if namespace is not None and not isinstance(namespace, str):
            raise ValueError(f"namespace: must be a string or None, got {namespace!r}")
        self.namespace = namespace or None
        self.poll_interval = float(poll_interval)
        self.deadline = float(deadline) if deadline is not None else time.time() + DEFAULT_WAIT_SECONDS
        self.stop_on_kill = bool(stop_on_kill)
        self.stop_reason = stop_reason or ""
        self.stream_logs = bool(stream_logs)
        self._fired = False

    def serialize(self) -> tuple[str, dict[str, Any]]:
        return (
            f"{type(self).__module__}.{type(self).__qualname__}",
            {
                "job_id": self.job_id,
                "bacalhau_conn_id": self.bacalhau_conn_id,
                "namespace": self.namespace,
                "poll_interval": self.poll_interval,
                "deadline": self.deadline,
                "stop_on_kill": self.stop_on_kill,
                "stop_reason": self.stop_reason,
                "stream_logs": self.stream_logs,
            },
        )

    @cached_property
    def hook(self) -> Any:
        """The trigger's one hook: the connection is read once, for the watch and ``on_kill``."""
        from airflow_provider_bacalhau.hooks.bacalhau import BacalhauHook

        return BacalhauHook(bacalhau_conn_id=self.bacalhau_conn_id)

    async def _client(self, max_retries: int) -> Any:
        # The hook hands out the event loop's shared pool: never closed here.
        return await self.hook.get_async_client(max_retries=max_retries, namespace=self.namespace)

    async def run(self) -> AsyncIterator[TriggerEvent]:
        try:
            event = await self._watch()
        except Exception as exc:  # any surprise ends the wait visibly, never silently
            self.log.exception("Watching Bacalhau job %s failed", self.job_id)
            event = make_event(
                "error", self.job_id, f"watching the job failed: {exc}", namespace=self.namespace
            )
        self._fired = True
        yield TriggerEvent(event)

    async def _watch(self) -> dict[str, Any]:
        """Drive the shared waiting loop (:func:`watch_job`) with the async client; between reads,
        wait on the event loop's shared job list (:mod:`~airflow_provider_bacalhau.waiting.poller`).
        When the poller has read the changed job already, its answer is the read."""
        from airflow_provider_bacalhau.waiting import poller

        # The loop retries transient errors itself, between polls: no retries inside a poll.
        client = await self._client(max_retries=0)
        follower = self._log_follower(client) if self.stream_logs else None
        watch = watch_job(self.job_id, self.poll_interval, self.deadline, self.log, self.namespace)
        changes = await poller.watch(client, self.poll_interval, self.deadline)
        step = next(watch)
        try:
            while True:
                if isinstance(step, Sleep):
                    await changes.wait(step.seconds, self.deadline)
                    step = watch.send(None)
                    continue
                answer: Any = changes.take_answer()
                if answer is None:
                    try:
                        answer = await client.get_job(self.job_id)
                    except Exception as exc:  # judged by the loop: transient or not
                        answer = exc
                changes.saw(answer)
                if follower is not None:
                    follower.observe(answer)
                step = watch.send(answer)
        except StopIteration as done:
            event = done.value
            if follower is not None:
                event["streamed"] = await follower.close()
            return event
        finally:
            changes.close()
            if follower is not None:
                follower.cancel()  # a no-op after close(); stops the streams if the wait was cancelled

    def _log_follower(self, client: Any) -> Any:
        """Live container output on this event loop, beside the waiting loop (never blocking it)."""
        from airflow_provider_bacalhau.waiting import retry_delay
        from airflow_provider_bacalhau.waiting.live_logs import LiveLogs
        from airflow_provider_bacalhau.waiting.log_follower import LogFollower, stream_opener

        return LogFollower(
            LiveLogs(self.poll_interval),
            stream_opener(client.config, self.job_id, self.namespace),
            lambda line: self.log.info("%s", line),
            lambda failures: retry_delay(failures, self.poll_interval),
        )

    async def on_kill(self) -> None:
        """Stop the job when a user kills the deferred task (called by Airflow >= 3.3 only)."""
        if self._fired or not self.stop_on_kill:
            return
        reason = self.stop_reason or "the Airflow task was killed while deferred"
        try:
            client = await self._client(max_retries=1)
            await asyncio.wait_for(client.stop_job(self.job_id, reason=reason), ON_KILL_STOP_SECONDS)
            self.log.info("Stopped Bacalhau job %s: %s", self.job_id, reason)
        except Exception:
            self.log.warning("Could not stop Bacalhau job %s on kill", self.job_id, exc_info=True)

    async def cleanup(self) -> None:
        """On Airflow < 3.3, stop the job when the deferred task was killed (3.3+ calls on_kill).

        The triggerer runs this whenever the trigger leaves it: after a user kill, but also when the
        triggerer stops or the trigger moves to another triggerer. The job is stopped only when the
        task instance is no longer deferred (:meth:`safe_to_cancel`), as KubernetesPodOperator does.
        """
        await super().cleanup()
        if TRIGGERER_CALLS_ON_KILL or self._fired or not self.stop_on_kill:
            return
        try:
            safe = await self.safe_to_cancel()
        except Exception:  # unknown is not killed: a running job is never stopped on a guess
            self.log.warning(
                "Could not read the task state of Bacalhau job %s: leaving it running",
                self.job_id,
                exc_info=True,
            )
            return
        if not safe:
            self.log.info(
                "Bacalhau job %s keeps running: its task is still deferred (triggerer restart or handover)",
                self.job_id,
            )
            return
        await self.on_kill()

    async def safe_to_cancel(self) -> bool:
        """Whether the task instance left the deferred state (killed, cleared or marked by a user)."""
        return await self._task_state() != TaskInstanceState.DEFERRED

    async def _task_state(self) -> Any:
        from asgiref.sync import sync_to_async

        ti = self.task_instance  # attached by the triggerer
        if ti is None:
            raise RuntimeError("the triggerer attached no task instance to this trigger")
        if not AIRFLOW_V_3_0_PLUS:
            return await sync_to_async(_task_state_from_db)(ti.dag_id, ti.task_id, ti.run_id, ti.map_index)
        # Airflow 3's triggerer has no DB access: it asks the API server, as tasks do.
        from airflow.sdk.execution_time.task_runner import RuntimeTaskInstance

        states = await sync_to_async(RuntimeTaskInstance.get_task_states)(
            dag_id=ti.dag_id, task_ids=[ti.task_id], run_ids=[ti.run_id], map_index=ti.map_index
        )
        # The API keys mapped instances as "<task_id>_<map_index>".
        key = f"{ti.task_id}_{ti.map_index}" if ti.map_index is not None and ti.map_index >= 0 else ti.task_id
        try:
            return states[ti.run_id][key]
        except KeyError:
            raise LookupError(f"no task instance {ti.dag_id}.{key} in run {ti.run_id}") from None


def _task_state_from_db(dag_id: str, task_id: str, run_id: str, map_index: int) -> Any:
    """Airflow 2: the triggerer reads the metadata DB."""
    from airflow.models.taskinstance import TaskInstance
    from airflow.utils.session import create_session
    from sqlalchemy import select

    with create_session() as session:
        ti = session.scalar(
            select(TaskInstance).where(
                TaskInstance.dag_id == dag_id,
                TaskInstance.task_id == task_id,
                TaskInstance.run_id == run_id,
                TaskInstance.map_index == map_index,
            )
        )
        if ti is None:
            raise LookupError(f"no task instance {dag_id}.{task_id}[{map_index}] in run {run_id}")
        return ti.state
