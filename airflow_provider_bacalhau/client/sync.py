"""The blocking Bacalhau client: the IO loop around :mod:`~airflow_provider_bacalhau.client.core`."""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from typing import Any

import httpx

from airflow_provider_bacalhau.client import logs
from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.core import Operations
from airflow_provider_bacalhau.client.retrying import Sleep
from airflow_provider_bacalhau.errors import BacalhauLogsError


class BacalhauClient(Operations):
    """Blocking client of the Bacalhau orchestrator API (v1.5 to v1.9).

    Methods: ``submit_job``, ``get_job``, ``list_executions``, ``get_history``, ``get_results``,
    ``stop_job``, ``list_jobs``, ``list_nodes``, ``alive``, ``version``, ``node_info`` (see
    :class:`~airflow_provider_bacalhau.client.core.Operations` for their arguments). They return
    the API's JSON as dicts/lists and raise :class:`~airflow_provider_bacalhau.errors.BacalhauApiError`.
    ``job_logs`` and ``job_logs_tail`` read the WebSocket logs endpoint (:mod:`.logs`).

    :param config: where and how to connect (default: :meth:`ClientConfig.from_env`).
    :param http_client: an ``httpx.Client`` to use (not closed by :meth:`close`); by default the
        client makes its own with the TLS settings of ``config``.
    """

    @staticmethod
    def _wrap(operation: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(operation)
        def method(self: BacalhauClient, *args: Any, **kwargs: Any) -> Any:
            return self._run(operation(self, *args, **kwargs))

        return method

    def __init__(
        self, config: ClientConfig | None = None, *, http_client: httpx.Client | None = None
    ) -> None:
        self.config = config or ClientConfig.from_env()
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(verify=self.config.ssl_context(), follow_redirects=False)

    def _run(self, operation: Any) -> Any:
        reply: Any = None
        try:
            step = operation.send(None)
            while True:
                if isinstance(step, Sleep):
                    time.sleep(step.seconds)
                    reply = None
                else:
                    try:
                        reply = self._http.send(step)
                    except httpx.TransportError as exc:
                        reply = exc  # handed to the core as a value: it decides, and raises cleanly
                step = operation.send(reply)
        except StopIteration as done:
            return done.value

    def job_logs(
        self,
        job_id_or_name: str,
        execution_id: str | None = None,
        *,
        follow: bool = False,
        tail: bool = False,
        job_version: int | None = None,
        namespace: str | None = None,
        max_bytes: int = logs.DEFAULT_MAX_BYTES,
        timeout: float | None = None,
    ) -> logs.LogStream:
        """A job's output from the WebSocket logs endpoint, as ``(stream, text)`` chunks.

        Iterate the answer once; it stops when the server closes, after ``max_bytes`` of output or
        after ``timeout`` seconds (default: the client's timeout), and raises
        :class:`~airflow_provider_bacalhau.errors.BacalhauLogsError` for an error frame or a
        broken stream. Pass ``execution_id`` for a failed or cancelled execution.
        See :func:`~airflow_provider_bacalhau.client.logs.build_log_request` for the rest.
        """
        return logs.LogStream(
            logs.open_read(
                self.config,
                job_id_or_name,
                execution_id,
                follow=follow,
                tail=tail,
                job_version=job_version,
                namespace=namespace,
                max_bytes=max_bytes,
                timeout=timeout,
            )
        )

    def job_logs_tail(
        self,
        job_id_or_name: str,
        execution_id: str | None = None,
        *,
        lines: int = 20,
        max_bytes: int = 2048,
        timeout: float = 5.0,
        read_limit: int = logs.DEFAULT_MAX_BYTES,
        job_version: int | None = None,
        namespace: str | None = None,
    ) -> logs.LogTail:
        """The last ``lines`` lines (``max_bytes`` at most) of each stream of an execution's output.

        v1.9.3 can only send a log from its start, so up to ``read_limit`` bytes are read within
        ``timeout`` seconds; ``cut`` on the answer says when more existed. A stream that breaks
        after some output gives that output (``error`` says what broke); with none, it raises.
        """
        read = logs.open_read(
            self.config,
            job_id_or_name,
            execution_id,
            job_version=job_version,
            namespace=namespace,
            max_bytes=read_limit,
            timeout=timeout,
        )
        kept, error = logs.LogTail(lines, max_bytes), None
        try:
            for chunk in logs.iter_logs(read):
                kept.add(chunk)
        except BacalhauLogsError as exc:
            error = exc
        return logs.keep_partial(kept, read, error)

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BacalhauClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
