"""The asyncio Bacalhau client and the shared connection pool used by triggers.

Many triggers (hundreds) run on one triggerer event loop. Each would otherwise open its own
connection pool; :func:`shared_http_client` hands them one ``httpx.AsyncClient`` per (event loop,
:class:`ClientConfig`). The registry is keyed weakly by the loop, so a finished loop's clients go
away with it.
"""

from __future__ import annotations

import asyncio
import functools
import weakref
from collections.abc import Callable
from typing import Any

import anyio
import httpx

from airflow_provider_bacalhau.client import logs
from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.core import Operations
from airflow_provider_bacalhau.client.retrying import Sleep
from airflow_provider_bacalhau.errors import BacalhauLogsError

_POOLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[ClientConfig, httpx.AsyncClient]] = (
    weakref.WeakKeyDictionary()
)

#: Requests in flight per connection pool; the rest wait at a gate in front of it. httpcore 1.0
#: rescans its whole queue on every change, so 1,000 triggers polling at once made its cost
#: quadratic: 119 of 1,000 triggers finished in 240 s at 97% CPU, and queued requests hit the pool
#: timeout. With this gate: all 1,000 in 37 s (benchmarks/triggers.py).
MAX_IN_FLIGHT = 20
_GATES: weakref.WeakKeyDictionary[httpx.AsyncClient, asyncio.Semaphore] = weakref.WeakKeyDictionary()


def _gate(http: httpx.AsyncClient) -> asyncio.Semaphore:
    gate = _GATES.get(http)
    if gate is None:
        gate = _GATES[http] = asyncio.Semaphore(MAX_IN_FLIGHT)
    return gate


def shared_http_client(config: ClientConfig) -> httpx.AsyncClient:
    """The ``httpx.AsyncClient`` shared by every client of this config on the running event loop."""
    pools = _POOLS.setdefault(asyncio.get_running_loop(), {})
    client = pools.get(config)
    if client is None or client.is_closed:
        client = pools[config] = _new_http_client(config)
    return client


async def close_shared_http_clients() -> None:
    """Close the shared pools of the running event loop (e.g. at shutdown or between tests)."""
    pools = _POOLS.pop(asyncio.get_running_loop(), {})
    for client in pools.values():
        await client.aclose()


def _new_http_client(config: ClientConfig) -> httpx.AsyncClient:
    # As many kept-alive connections as may be in flight: no churn after every burst.
    limits = httpx.Limits(max_connections=MAX_IN_FLIGHT, max_keepalive_connections=MAX_IN_FLIGHT)
    return httpx.AsyncClient(verify=config.ssl_context(), follow_redirects=False, limits=limits)


class AsyncBacalhauClient(Operations):
    """Asyncio client of the Bacalhau orchestrator API: the methods of
    :class:`~airflow_provider_bacalhau.client.BacalhauClient`, as ``async def``.

    :param config: where and how to connect (default: :meth:`ClientConfig.from_env`).
    :param http_client: an ``httpx.AsyncClient`` to use (not closed by :meth:`close`), e.g.
        :func:`shared_http_client`; by default the client makes its own.
    """

    @staticmethod
    def _wrap(operation: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(operation)
        async def method(self: AsyncBacalhauClient, *args: Any, **kwargs: Any) -> Any:
            return await self._run(operation(self, *args, **kwargs))

        return method

    def __init__(
        self, config: ClientConfig | None = None, *, http_client: httpx.AsyncClient | None = None
    ) -> None:
        self.config = config or ClientConfig.from_env()
        self._owns_http = http_client is None
        self._http = http_client or _new_http_client(self.config)

    async def _run(self, operation: Any) -> Any:
        reply: Any = None
        try:
            step = operation.send(None)
            while True:
                if isinstance(step, Sleep):
                    await anyio.sleep(step.seconds)
                    reply = None
                else:
                    try:
                        async with _gate(self._http):
                            reply = await self._http.send(step)
                    except httpx.TransportError as exc:
                        reply = exc
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
    ) -> logs.AsyncLogStream:
        """:meth:`BacalhauClient.job_logs <airflow_provider_bacalhau.client.BacalhauClient.job_logs>`,
        read with ``async for``."""
        return logs.AsyncLogStream(
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

    async def job_logs_tail(
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
        """:meth:`BacalhauClient.job_logs_tail
        <airflow_provider_bacalhau.client.BacalhauClient.job_logs_tail>`."""
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
            async for chunk in logs.aiter_logs(read):
                kept.add(chunk)
        except BacalhauLogsError as exc:
            error = exc
        return logs.keep_partial(kept, read, error)

    async def close(self) -> None:
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncBacalhauClient:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.close()
