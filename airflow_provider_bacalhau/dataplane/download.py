"""HTTP side of fetching results: s3managed presigned URLs and the local publisher's URLs.

A local-publisher (``urlDownload``) result lives on the compute node that ran the job, served at
the node's own address: ``http://<Publishers.Types.Local.Address>:<Port>/<executionID>.tar.gz``,
by default ``http://127.0.0.1:6001/...`` (v1.9.3 pkg/config/defaults.go,
pkg/publisher/local/publisher.go). Airflow reaches it only when it runs where that address leads,
so fetching one is best effort: :func:`download_node_url` turns any failure into a
:class:`ResultUnreachableError` that says so.

Presigned URLs carry a signature in their query string, so it is kept out of every log line:
ours print :func:`safe_url`, and httpx's own request log gets a filter (httpx logs each URL at
INFO; Airflow 3 silences that logger, Airflow 2 lets it reach the task log).
"""

from __future__ import annotations

import hashlib
import logging
import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_bacalhau.dataplane.archive import MiB
from airflow_provider_bacalhau.errors import ResultDownloadError, ResultUnreachableError

_SIGNED_QUERY = re.compile(r"signature|credential|token", re.IGNORECASE)


def safe_url(url: str) -> str:
    """A URL without its query string: presigned signatures must not reach a log."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}{parts.path}"


def _hide_signature(arg: Any) -> Any:
    text = str(arg)
    if text.startswith(("http://", "https://")) and _SIGNED_QUERY.search(urlsplit(text).query):
        return safe_url(text)
    return arg


class _HideSignedQueries(logging.Filter):
    """Drop the query string of signed URLs from log records; levels and other records stay."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(_hide_signature(arg) for arg in record.args)
        return True


def hide_signed_queries_in_httpx_log() -> None:
    """Add the filter to the ``httpx`` logger once (calling again changes nothing)."""
    httpx_log = logging.getLogger("httpx")
    if not any(isinstance(f, _HideSignedQueries) for f in httpx_log.filters):
        httpx_log.addFilter(_HideSignedQueries())


#: What a refused GET most likely means, by HTTP status; no bytes came, so none is a checksum error.
_REFUSALS = {
    400: "the server rejected the request",
    401: "the server wants credentials this URL does not carry",
    403: "access denied: a presigned URL that has expired, or whose signature is no longer valid",
    404: "no such result at this URL (deleted, or never published there)",
    410: "the result is gone from this URL",
}


def _refusal(url: str, answer: Any) -> ResultDownloadError:
    """A clear error for an HTTP refusal. An expired presigned URL is a 403 whose S3 error body
    says ``Request has expired`` (AWS and SeaweedFS alike): name it, since /results hands out a
    fresh one on every call."""
    status = answer.status_code
    body = b""
    try:
        for chunk in answer.iter_bytes():  # an error body is small: read a hint's worth
            body += chunk
            if len(body) >= 4096:
                break
    except Exception:  # noqa: BLE001 - the body is only a hint
        pass
    text = body[:4096].decode("utf-8", "replace")
    code = re.search(r"<Code>([^<]*)</Code>", text)
    message = re.search(r"<Message>([^<]*)</Message>", text)
    s3_said = f" ({code.group(1)}: {message.group(1) if message else ''})" if code else ""
    if status == 403 and "expired" in text.lower():
        reason = (
            "the presigned URL has expired; an s3managed result gets a new URL from "
            "/results on every fetch, so retry the task"
        )
    else:
        reason = _REFUSALS.get(
            status,
            "the server refused the download" if status < 500 else "the server failed; a retry may succeed",
        )
    return ResultDownloadError(
        f"GET {safe_url(url)} answered HTTP {status}{s3_said}: {reason}", url=safe_url(url), status=status
    )


def download_url(url: str, path: Path, *, timeout: Any = 60.0) -> str:
    """GET ``url`` into ``path``; returns the hex SHA-256 of the bytes received.

    :raises ResultDownloadError: the server answered with an HTTP error (expired URL, no such
        result...): no bytes were received, so this is no integrity error.
    """
    import httpx

    hide_signed_queries_in_httpx_log()
    sha = hashlib.sha256()
    with httpx.stream("GET", url, follow_redirects=True, timeout=timeout) as answer:
        if answer.status_code >= 400:
            raise _refusal(url, answer)
        with open(path, "wb") as out:
            for chunk in answer.iter_bytes(MiB):
                sha.update(chunk)
                out.write(chunk)
    return sha.hexdigest()


def download_node_url(url: str, path: Path) -> str:
    """:func:`download_url` for a local-publisher URL, best effort: an unreachable node, a refused
    connection, a timeout or an HTTP error becomes a :class:`ResultUnreachableError` naming the URL
    (without its query) and the way out."""
    import httpx

    shown = safe_url(url)
    try:
        # A short connect timeout: a node address that leads nowhere should fail fast, not hang.
        return download_url(url, path, timeout=httpx.Timeout(60.0, connect=10.0))
    except (httpx.HTTPError, ResultDownloadError) as exc:  # not local disk errors: those are ours
        reason = str(exc).replace(url, shown) or type(exc).__name__
        raise ResultUnreachableError(
            f"could not download the urlDownload result {shown} ({reason}). A urlDownload result "
            f"comes from Bacalhau's local publisher, which serves it from the compute node's own "
            f"address (Publishers.Types.Local.Address and Port, default 127.0.0.1:6001); Airflow "
            f"can reach it only when it runs where that address leads, so fetching or re-staging "
            f"it from Airflow is best effort. Publish with the s3 publisher (or s3managed) to "
            f"fetch or chain results from Airflow; or chain it with restage=False, which hands "
            f"the URL to the next job as is (its node must reach that address, and the job must "
            f"extract the archive).",
            url=shown,
        ) from exc


def managed_url(job_id: str, execution_id: str, bacalhau_client: Any) -> str:
    """Ask ``/results`` now for the presigned URL: it expires, so never keep one around."""
    if bacalhau_client is None:
        raise ValueError(
            "bacalhau_client: an s3managed result is read through the Bacalhau "
            "API (/results); pass a BacalhauClient"
        )
    urls = []
    for item in bacalhau_client.get_results(job_id):
        params = {str(k).lower(): v for k, v in (item.get("Params") or {}).items()}
        if params.get("presignedurl"):
            urls.append(str(params["presignedurl"]))
    chosen = [u for u in urls if execution_id and execution_id in urlsplit(u).path]
    if not chosen and len(urls) == 1 and not execution_id:
        chosen = urls
    if not chosen:
        raise ValueError(
            f"result: job {job_id} has no presigned result URL for execution "
            f"{execution_id or '?'} in /results"
        )
    return chosen[0]
