"""The blocking Bacalhau client: the IO loop around :mod:`~airflow_provider_bacalhau.client.core`."""

from __future__ import annotations

import functools
import time
from typing import Any, Callable

import httpx

from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.core import Operations, Sleep


class BacalhauClient(Operations):
    """Blocking client of the Bacalhau orchestrator API (v1.5 to v1.9).

    Methods: ``submit_job``, ``get_job``, ``list_executions``, ``get_history``, ``get_results``,
    ``stop_job``, ``list_jobs``, ``list_nodes``, ``alive``, ``version``, ``node_info`` (see
    :class:`~airflow_provider_bacalhau.client.core.Operations` for their arguments). They return
    the API's JSON as dicts/lists and raise :class:`~airflow_provider_bacalhau.errors.BacalhauApiError`.

    :param config: where and how to connect (default: :meth:`ClientConfig.from_env`).
    :param http_client: an ``httpx.Client`` to use (not closed by :meth:`close`); by default the
        client makes its own with the TLS settings of ``config``.
    """

    @staticmethod
    def _wrap(operation: Callable) -> Callable:
        @functools.wraps(operation)
        def method(self: BacalhauClient, *args: Any, **kwargs: Any) -> Any:
            return self._run(operation(self, *args, **kwargs))

        return method

    def __init__(self, config: ClientConfig | None = None, *, http_client: httpx.Client | None = None) -> None:
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

    def close(self) -> None:
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> BacalhauClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
