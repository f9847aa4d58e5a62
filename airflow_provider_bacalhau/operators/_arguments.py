"""Checks of operator arguments, shared by the operators; each raises :class:`SpecError` naming
the argument.

A bad argument (or connection field) never gets better by retrying: run inside
:func:`~airflow_provider_bacalhau.failures.invalid_arguments_fail`, these checks fail the task at
once with :class:`~airflow_provider_bacalhau.failures.BacalhauInvalidArgumentError` (an
``AirflowFailException`` and a ``ValueError``), before anything is sent.
Templated arguments are checked when the task runs (they hold the rendered values then); the
spec rules themselves live in :mod:`airflow_provider_bacalhau.spec`.
"""

from __future__ import annotations

import os
from typing import Any

from airflow_provider_bacalhau.errors import SpecError


def positive_seconds(value: Any, field: str) -> float | None:
    """Seconds from a number or a ``timedelta`` (None stays None); must be > 0."""
    if value is None:
        return None
    if hasattr(value, "total_seconds"):
        seconds = value.total_seconds()
    elif isinstance(value, (int, float, str)) and not isinstance(value, bool):
        try:
            seconds = float(value)
        except ValueError:
            raise SpecError(field, "must be a number of seconds or a timedelta", value) from None
    else:
        raise SpecError(field, "must be a number of seconds or a timedelta", value)
    if not seconds > 0:
        raise SpecError(field, "must be > 0 seconds", value)
    return seconds


def bucket_name(value: Any, field: str) -> str:
    """A bare S3 bucket name (the rules every S3 shares, see ``spec.s3rules.check_bucket``)."""
    from airflow_provider_bacalhau.spec.s3rules import check_bucket

    check_bucket(value, field)
    return value


def local_paths(value: Any, field: str = "local_paths") -> list[str]:
    """One path (or glob) or a non-empty list of them."""
    items = [value] if isinstance(value, (str, os.PathLike)) else value
    if not isinstance(items, (list, tuple)) or not items:
        raise SpecError(field, "must be a path, a glob, or a non-empty list of them", value)
    for i, item in enumerate(items):
        if not isinstance(item, (str, os.PathLike)) or not os.fspath(item).strip():
            raise SpecError(f"{field}[{i}]", "must be a non-empty path", item)
    return [os.fspath(item) for item in items]


def optional_text(value: Any, field: str) -> str | None:
    """None or a string."""
    if value is not None and not isinstance(value, str):
        raise SpecError(field, "must be a string", value)
    return value
