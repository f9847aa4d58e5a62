"""The one request/response core of the Bacalhau clients (sans-IO).

Every endpoint is written once, here, as a generator that *yields* what it needs done and
*receives* the result: it yields an :class:`httpx.Request` and gets back the
:class:`httpx.Response` (or the transport exception, as a value), or yields a :class:`Sleep` and
gets ``None``. The sync and async clients only run that loop (``client.sync`` / ``client.aio``),
so URL building, retries, error mapping and the submit-deduplication rule exist once.
"""

from __future__ import annotations

import dataclasses
import email.utils
import inspect
import logging
import time
from collections.abc import Callable, Generator, Iterable, Mapping
from typing import Any, TypeVar, cast
from urllib.parse import quote

import httpx

from airflow_provider_bacalhau import __version__
from airflow_provider_bacalhau.client.config import ClientConfig
from airflow_provider_bacalhau.client.responses import (
    decode_json,
    dumps,
    error_from_response,
    error_from_transport,
    is_retryable_transport_error,
    never_reached_server,
)
from airflow_provider_bacalhau.client.retrying import RETRY_STATUSES, Sleep, backoff_delay
from airflow_provider_bacalhau.errors import BacalhauApiError

log = logging.getLogger("airflow_provider_bacalhau.client")

T = TypeVar("T")
Op = Generator[Any, Any, T]  # yields httpx.Request | Sleep, receives httpx.Response | Exception | None

JOBS = "/api/v1/orchestrator/jobs"
NODES = "/api/v1/orchestrator/nodes"
AGENT = "/api/v1/agent"
# A submit answered with one of these may still have been applied by the server.
AMBIGUOUS_STATUSES = frozenset({502, 503, 504})

#: The endpoint methods; the sync and async clients expose each under the same name.
ENDPOINTS = (
    "submit_job",
    "get_job",
    "list_executions",
    "get_history",
    "get_results",
    "stop_job",
    "list_jobs",
    "list_nodes",
    "alive",
    "version",
    "node_info",
)


def job_path(job_id_or_name: str, *suffix: str) -> str:
    if not job_id_or_name or not str(job_id_or_name).strip():
        raise ValueError("job_id_or_name: must not be empty")
    # Names are free text on the server: escape every path segment (slashes included).
    return "/".join([JOBS, quote(str(job_id_or_name), safe=""), *suffix])


def job_payload(job: Any, namespace: str | None) -> dict[str, Any]:
    """The JSON of the ``Job`` field from a spec ``Job`` (anything with ``to_dict()``) or a mapping."""
    payload: dict[str, Any]
    if hasattr(job, "to_dict"):
        payload = job.to_dict()
    elif isinstance(job, Mapping):
        payload = dict(job)
    else:
        raise ValueError(f"job: expected a Job or a dict, got {type(job).__name__}")
    if "Job" in payload and "Tasks" not in payload:
        raise ValueError("job: pass the job itself, not a {'Job': ...} request body")
    if namespace and not payload.get("Namespace"):
        payload["Namespace"] = namespace
    return payload


def _clean_params(params: Mapping[str, Any] | None) -> dict[str, Any]:
    return {k: v for k, v in (params or {}).items() if v is not None and v != ""}


def retry_after_seconds(response: httpx.Response) -> float | None:
    value = response.headers.get("Retry-After")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def _describe(outcome: Any) -> str:
    if isinstance(outcome, httpx.Response):
        return f"HTTP {outcome.status_code}"
    return type(outcome).__name__


def _retry_read(outcome: Any) -> bool:
    if isinstance(outcome, httpx.Response):
        return outcome.status_code in RETRY_STATUSES
    return is_retryable_transport_error(outcome)


def _retry_submit(outcome: Any) -> bool:
    # Only when the server surely did not act: no connection made, or the rate limiter refused it.
    if isinstance(outcome, httpx.Response):
        return outcome.status_code == 429
    return never_reached_server(outcome) and is_retryable_transport_error(outcome)


def _public(method: Callable[..., Any]) -> Callable[..., Any]:
    """Show the wrapped endpoint's real return type (``dict``, not ``Op[dict]``) to help()/IDEs."""
    target: Any = method  # a function made by functools.wraps: has __wrapped__, takes __signature__
    operation = target.__wrapped__
    returns = operation.__annotations__.get("return")
    if isinstance(returns, str) and returns.startswith("Op[") and returns.endswith("]"):
        returns = returns[3:-1]
    method.__annotations__ = {**operation.__annotations__, "return": returns}
    target.__signature__ = inspect.signature(operation).replace(return_annotation=returns)
    return method


class Operations:
    """Bacalhau endpoints as sans-IO generators; subclasses provide the IO loop.

    A subclass sets ``_wrap`` (how to turn one generator function into a public method); every name
    in :data:`ENDPOINTS` is then wrapped for it, so no endpoint is written twice.
    """

    config: ClientConfig
    _http: Any  # the subclass's httpx client (sync or async)
    _wrap: Callable[[Callable[..., Any]], Callable[..., Any]]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        for name in ENDPOINTS:
            setattr(cls, name, _public(cls._wrap(getattr(Operations, name))))

    def with_max_retries(self, max_retries: int) -> Any:
        """A client of the same class on the same connection pool, with another retry budget
        (a caller that retries between calls itself passes 0). Closing it leaves the pool open."""
        client_class: Any = type(self)  # each subclass (sync, async) takes ``http_client``
        return client_class(dataclasses.replace(self.config, max_retries=max_retries), http_client=self._http)

    # -- building and sending ---------------------------------------------------------------

    def _request(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> httpx.Request:
        params = _clean_params(params)
        if self.config.namespace and method in ("GET", "DELETE") and path.startswith(JOBS):
            params.setdefault("namespace", self.config.namespace)
        headers = {
            "Accept": "application/json",
            "User-Agent": f"airflow-provider-bacalhau/{__version__}",
            **self.config.auth_headers(),
        }
        content = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            content = dumps(body)
        return httpx.Request(
            method,
            self.config.base_url + path,
            params=params,
            headers=headers,
            content=content,
            extensions={"timeout": httpx.Timeout(self.config.timeout).as_dict()},
        )

    def _delay(self, attempt: int, outcome: Any) -> float:
        cap = self.config.backoff_max
        if isinstance(outcome, httpx.Response):
            hinted = retry_after_seconds(outcome)
            if hinted is not None:
                return min(hinted, cap)
        return backoff_delay(attempt, self.config.backoff, cap)

    def _send(self, request: httpx.Request, should_retry: Callable[[Any], bool]) -> Op[Any]:
        """Send with retries; returns the last outcome (a response of any status, or an exception)."""
        path = request.url.raw_path.decode("ascii")
        attempt = 0
        while True:
            started = time.monotonic()
            outcome = yield request
            log.debug(
                "%s %s -> %s in %.3fs", request.method, path, _describe(outcome), time.monotonic() - started
            )
            if attempt >= self.config.max_retries or not should_retry(outcome):
                return outcome
            delay = self._delay(attempt, outcome)
            attempt += 1
            log.info(
                "Bacalhau %s %s failed (%s); retry %d/%d in %.2fs",
                request.method,
                request.url.path,
                _describe(outcome),
                attempt,
                self.config.max_retries,
                delay,
            )
            yield Sleep(delay)

    def _raise_for(self, outcome: Any, method: str, path: str) -> BacalhauApiError:
        if isinstance(outcome, httpx.Response):
            return error_from_response(outcome, method, path, self.config.secrets)
        error = error_from_transport(outcome, self.config.base_url, method, path, self.config.secrets)
        # For is_transient(); not chained as __cause__, whose text would reach tracebacks unredacted.
        error.transport_retryable = is_retryable_transport_error(outcome)
        return error

    def _call(
        self, method: str, path: str, params: Mapping[str, Any] | None = None, body: Any = None
    ) -> Op[dict[str, Any]]:
        """One idempotent call (reads, stop): retried on connection trouble, 429 and 502/503/504."""
        outcome = yield from self._send(self._request(method, path, params, body), _retry_read)
        if isinstance(outcome, httpx.Response) and outcome.status_code == 200:
            # Every endpoint answers a JSON object.
            return cast("dict[str, Any]", decode_json(outcome, method, path))
        raise self._raise_for(outcome, method, path)

    # -- endpoints ----------------------------------------------------------------------------

    def submit_job(self, job: Any, force: bool = False) -> Op[dict[str, Any]]:
        """Submit (or, for an existing ``Name`` on v1.8+, update) a job.

        Returns ``{"JobID", "EvaluationID", "Warnings"}``. Never creates a second job by retrying:
        the PUT is repeated only when it surely did not reach the server (no connection, or 429).
        After an ambiguous failure (read timeout, dropped connection, 502/503/504) a *named* job
        is looked up by name: if it exists it is taken as submitted and its ID returned with
        ``EvaluationID`` empty and a warning; if not, the PUT is repeated (safe because the name is
        an upsert key since v1.8). A job without a name is not retried after such a failure.
        The rule trusts the name: a job that already had this name before the call counts as this
        submit's job, and on v1.5-v1.7 servers (no lookup or upsert by name) the job is not found,
        so the resubmit could duplicate it there.
        """
        payload = job_payload(job, self.config.namespace)
        name = payload.get("Name") or None
        request = self._request("PUT", JOBS, body={"Job": payload, "Force": bool(force)})
        for round_ in range(self.config.max_retries + 1):
            outcome = yield from self._send(request, _retry_submit)
            if isinstance(outcome, httpx.Response) and outcome.status_code == 200:
                return cast("dict[str, Any]", decode_json(outcome, "PUT", JOBS))
            error = self._raise_for(outcome, "PUT", JOBS)
            if round_ and error.is_no_changes and name:
                # An earlier, ambiguous attempt did apply: this PUT just found it unchanged.
                found = yield from self._find_submitted(name, payload.get("Namespace"), error)
                if found is not None:
                    return found
            if isinstance(outcome, httpx.Response):
                ambiguous = outcome.status_code in AMBIGUOUS_STATUSES
            else:
                ambiguous = not never_reached_server(outcome)
            if not ambiguous:
                raise error
            if not name:
                raise BacalhauApiError(
                    f"{error.message}; the job may or may not have been created, and it is not "
                    "resubmitted because it has no Name (give jobs a Name to make submits retry-safe)",
                    status=error.status,
                    code=error.code,
                    request_id=error.request_id,
                    method="PUT",
                    path=JOBS,
                )
            found = yield from self._find_submitted(name, payload.get("Namespace"), error)
            if found is not None:
                return found
            if round_ >= self.config.max_retries:
                raise error
            yield Sleep(self._delay(round_, outcome))
        raise AssertionError("unreachable")  # pragma: no cover

    def _find_submitted(
        self, name: str, namespace: str | None, cause: BacalhauApiError
    ) -> Op[dict[str, Any] | None]:
        params = {"namespace": namespace} if namespace else None
        try:
            answer = yield from self._call("GET", job_path(name), params)
        except BacalhauApiError as exc:
            if exc.is_not_found:
                return None
            raise BacalhauApiError(
                f"{cause.message}; the submit outcome is unknown and looking the job up by name "
                f"failed: {exc.message}",
                status=cause.status,
                method="PUT",
                path=JOBS,
            ) from None
        found = answer.get("Job") or {}
        if found.get("Name") != name:  # the lookup also matches ID prefixes
            return None
        log.warning(
            "Bacalhau submit of job %r failed ambiguously (%s) but the job exists (%s): "
            "taking it as submitted",
            name,
            cause.message,
            found.get("ID"),
        )
        return {
            "JobID": found.get("ID"),
            "EvaluationID": "",
            "Warnings": [f"submit answer lost ({cause.message}); job found by name {name!r}"],
        }

    def get_job(
        self, job_id_or_name: str, include: Iterable[str] | None = ("executions",)
    ) -> Op[dict[str, Any]]:
        """``GET /jobs/{id}``; ``include`` from ``"executions"``, ``"history"``."""
        include_param = ",".join(include) if include else None
        return (yield from self._call("GET", job_path(job_id_or_name), {"include": include_param}))

    def list_executions(self, job_id_or_name: str, **filters: Any) -> Op[list[dict[str, Any]]]:
        """Executions of the latest job version (filters: ``order_by``, ``reverse``, ``job_version``...)."""
        answer = yield from self._call("GET", job_path(job_id_or_name, "executions"), filters)
        return list(answer.get("Items") or [])

    def get_history(
        self, job_id_or_name: str, next_token: str | None = None, **filters: Any
    ) -> Op[dict[str, Any]]:
        """One page of history ``{"Items", "NextToken"}``; follow ``NextToken`` until it is empty."""
        params = {**filters, "next_token": next_token}
        return (yield from self._call("GET", job_path(job_id_or_name, "history"), params))

    def get_results(self, job_id_or_name: str) -> Op[list[dict[str, Any]]]:
        """Published results, as rewritten by the server (pre-signed URLs; see the reference §2.5)."""
        answer = yield from self._call("GET", job_path(job_id_or_name, "results"))
        return list(answer.get("Items") or [])

    def stop_job(self, job_id_or_name: str, reason: str | None = None) -> Op[dict[str, Any]]:
        """Stop a job. The reason goes in the JSON body (what the server reads) and the query."""
        body = {"reason": reason} if reason else None
        return (yield from self._call("DELETE", job_path(job_id_or_name), {"reason": reason}, body))

    def list_jobs(self, **filters: Any) -> Op[dict[str, Any]]:
        """``{"Items", "NextToken"}``; filters: ``limit``, ``next_token``, ``labels``, ``order_by``..."""
        return (yield from self._call("GET", JOBS, filters))

    def list_nodes(self, **filters: Any) -> Op[list[dict[str, Any]]]:
        """The network's nodes as ``NodeState`` dicts (``Info``, ``Membership``, ``ConnectionState``).

        Filters: ``limit``, ``order_by``, ``reverse``, ``labels`` and the server's own spellings
        ``**{"filter-approval": "APPROVED", "filter-status": "CONNECTED"}`` (the Go request binds
        ``filter-approval``; the swagger's ``filter_approval`` is not read). v1.9.3 returns every
        node in one page (``listNodes`` in ``pkg/publicapi/endpoint/orchestrator/node.go``).
        Needs the ``read:node`` capability when auth is on.
        """
        answer = yield from self._call("GET", NODES, filters)
        return list(answer.get("Nodes") or [])

    def alive(self) -> Op[dict[str, Any]]:
        return (yield from self._call("GET", f"{AGENT}/alive"))

    def version(self) -> Op[dict[str, Any]]:
        return (yield from self._call("GET", f"{AGENT}/version"))

    def node_info(self) -> Op[dict[str, Any]]:
        return (yield from self._call("GET", f"{AGENT}/node"))
