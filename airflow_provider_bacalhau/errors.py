"""Every exception the provider raises, in one place.

Plain Python on purpose: ``spec`` and ``client`` import this module and must stay free of Airflow.
The task failures that must be ``AirflowException`` subclasses (:class:`BacalhauJobError`,
:class:`BacalhauJobFailedError`, :class:`BacalhauJobTimeoutError`,
:class:`BacalhauSensorTimeoutError`, :class:`BacalhauInputError`,
:class:`BacalhauInvalidInputError`, :class:`BacalhauInvalidArgumentError`) are defined in
:mod:`airflow_provider_bacalhau.failures`, the Airflow layer, and importable from here too: they
are looked up on first use (PEP 562), so importing this module never imports Airflow.
"""

from __future__ import annotations

from typing import Any

#: Defined in ``failures.py`` (they subclass AirflowException); handed out by ``__getattr__``.
_AIRFLOW_FAILURES = frozenset(
    {
        "BacalhauJobError",
        "BacalhauJobFailedError",
        "BacalhauJobTimeoutError",
        "BacalhauSensorTimeoutError",
        "BacalhauInputError",
        "BacalhauInvalidInputError",
        "BacalhauInvalidArgumentError",
    }
)


def __getattr__(name: str) -> Any:
    if name in _AIRFLOW_FAILURES:
        from airflow_provider_bacalhau import failures

        return getattr(failures, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


class SpecError(ValueError):
    """A job spec (or a builder argument) is invalid. ``field`` is the dotted path, e.g.
    ``Tasks[0].InputSources[1].Source.Params.Bucket``."""

    def __init__(self, field: str, message: str, value: Any = None) -> None:
        self.field = field
        self.value = value
        self.message = message
        shown = "" if value is None else f" (got {value!r})"
        super().__init__(f"{field}: {message}{shown}")


class BacalhauApiError(Exception):
    """The Bacalhau API answered with an error, or could not be reached.

    ``status`` is the HTTP status (``None`` when no answer came); ``code``, ``message``, ``hint``,
    ``request_id`` and ``component`` are Bacalhau's error-body fields when it sent them.
    The text never holds credentials.
    """

    #: Set by the client on a transport error (no answer): whether a retry may help.
    transport_retryable: bool

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        code: str | None = None,
        hint: str | None = None,
        request_id: str | None = None,
        component: str | None = None,
        method: str | None = None,
        path: str | None = None,
    ) -> None:
        self.message = message
        self.status = status
        self.code = code
        self.hint = hint
        self.request_id = request_id
        self.component = component
        self.method = method
        self.path = path
        super().__init__(self._describe())

    def _describe(self) -> str:
        where = f"{self.method} {self.path}: " if self.method and self.path else ""
        parts = [f"{where}{self.message}"]
        if self.status is not None:
            parts.append(f"HTTP {self.status}")
        if self.code:
            parts.append(f"Code {self.code}")
        if self.request_id:
            parts.append(f"RequestID {self.request_id}")
        text = " | ".join(parts)
        return f"{text} (hint: {self.hint})" if self.hint else text

    @property
    def is_not_found(self) -> bool:
        return self.status == 404

    @property
    def is_no_changes(self) -> bool:
        """Re-submitting an identical named job (v1.8+) answers HTTP 500 'no changes detected'."""
        return "no changes detected" in (self.message or "")


class BacalhauLogsError(BacalhauApiError):
    """A job's log stream could not be read: the server sent an error frame (``server_error``,
    e.g. no such execution, or the node no longer has its logs), or the WebSocket failed."""

    def __init__(self, message: str, *, server_error: bool = False, status: int | None = None) -> None:
        self.server_error = server_error
        super().__init__(message, status=status)


class ResultIntegrityError(Exception):
    """A fetched result does not match what was published (checksum mismatch, unsafe archive)."""


class ResultUnreachableError(ConnectionError):
    """A ``urlDownload`` result (Bacalhau's local publisher) could not be downloaded from the
    compute node's own address. ``url`` is the URL without its query string."""

    def __init__(self, message: str, *, url: str) -> None:
        self.url = url
        super().__init__(message)


class ResultDownloadError(Exception):
    """An HTTP download of a result was refused: ``status`` is the HTTP status (403 for an expired
    presigned URL, 404/410 for a result that is gone), ``url`` the URL without its query string.
    Not an integrity error: no bytes were received to check."""

    def __init__(self, message: str, *, url: str, status: int) -> None:
        self.url = url
        self.status = status
        super().__init__(message)


class S3DeleteError(Exception):
    """S3 refused to delete some objects: DeleteObjects answered with per-key ``Errors``.
    ``bucket`` is the bucket, ``failed`` maps each key left behind to S3's code and message."""

    def __init__(self, message: str, *, bucket: str, failed: dict[str, str]) -> None:
        self.bucket = bucket
        self.failed = failed
        super().__init__(message)


class S3AccessError(PermissionError):
    """S3 refused the Airflow AWS connection: wrong secret, unknown key, expired token, no access.

    ``conn_id`` names the connection, ``code`` is S3's error code; the text never holds a secret.
    """

    def __init__(self, message: str, *, conn_id: str | None, code: str) -> None:
        self.conn_id = conn_id
        self.code = code
        super().__init__(message)


class NodeSupportError(Exception):
    """No approved, connected compute node of the network reports what a job needs installed
    (its engine, an input source or its publisher). Raised before the submit when an operator's
    ``node_support_check`` is ``"fail"``; Bacalhau would accept the job and fail it with "not
    enough nodes". Retries apply: nodes may join."""
