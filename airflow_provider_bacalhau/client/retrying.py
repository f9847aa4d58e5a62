"""The clients' retry policy: the sleep instruction, the one backoff and the one transient-error rule.

Its own module so that the waiting loop (imported on every DAG parse through the operators, the
sensor and the trigger) gets the policy without the HTTP machinery of :mod:`.core`: httpx is only
looked at when an error might be one of its own.
"""

from __future__ import annotations

import random
import sys
from dataclasses import dataclass

from airflow_provider_bacalhau.errors import BacalhauApiError

#: Answers worth another try: the rate limiter, and a gateway or server that is briefly down.
RETRY_STATUSES = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Sleep:
    """Instruction to the IO loop: wait this many seconds, then resume."""

    seconds: float


def backoff_delay(attempt: int, first: float, cap: float) -> float:
    """The one backoff: ``first * 2**attempt`` capped at ``cap``, with jitter over its upper half
    (many clients, or triggers, that failed together do not retry together)."""
    base: float = min(cap, first * (2**attempt))
    return base / 2 + random.uniform(0, base / 2)


def is_transient(exc: BaseException) -> bool:
    """The one transient-error policy, for an error a client call raised: worth another try later.

    The same rule as the client's own retries: connection trouble (but not a certificate that does
    not verify), 429 and 502/503/504. Any other answer, a lasting 500 included (say an ambiguous
    name: ``MultipleJobsFound``), will not pass by waiting.
    """
    if isinstance(exc, BacalhauApiError):
        if exc.status is not None:
            return exc.status in RETRY_STATUSES
        return bool(getattr(exc, "transport_retryable", True))
    httpx = sys.modules.get("httpx")  # not loaded means this cannot be one of its errors
    if httpx is not None and isinstance(exc, httpx.HTTPError):
        from airflow_provider_bacalhau.client.responses import is_retryable_transport_error

        return is_retryable_transport_error(exc)
    return isinstance(exc, (TimeoutError, ConnectionError))
