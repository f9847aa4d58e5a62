"""BacalhauS3Hook: S3 I/O through an Airflow AWS connection, on top of the amazon ``S3Hook``.

It makes the boto3 clients (pools sized for parallel transfers) and the object store that
staging uploads through (obstore, Rust: a fraction of boto3's CPU per request), says what S3's
refusal of the connection's credentials means, and gives the endpoint and region. Staging, fetching and
re-staging live in :mod:`airflow_provider_bacalhau.dataplane` (``S3DataPlane(hook)``), above
this layer. Any S3-compatible store the connection reaches works (``endpoint_url`` in its extra:
MinIO, GCS HMAC, SeaweedFS). The connection's credentials stay on the Airflow side, and
``compute_s3`` names S3 as the compute nodes see it, for the specs the data plane returns.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import Any
from urllib.parse import urlsplit

from airflow.providers.common.compat.sdk import BaseHook

from airflow_provider_bacalhau.errors import S3AccessError
from airflow_provider_bacalhau.hooks._compute_s3 import ComputeS3View

# S3's answers to credentials it rejects, and what each means for the Airflow connection.
_ACCESS_ERRORS = {
    "SignatureDoesNotMatch": "its secret key does not match its access key id",
    "InvalidAccessKeyId": "S3 does not know its access key id",
    "InvalidToken": "its session token is invalid",
    "ExpiredToken": "its session token has expired",
    "AccessDenied": "its identity may not do this",
}
_MISSING = ("404", "NoSuchKey", "NotFound")
# obstore's errors carry S3's XML answer in their text: its code and message.
_STORE_CODE = re.compile(r"<Code>([^<]*)</Code>")
_STORE_MESSAGE = re.compile(r"<Message>([^<]*)</Message>")
_STORE_STATUS = re.compile(r"status code: (\d{3})")


#: Files in flight by default. Many small files wait on the server, not on this process's CPU
#: (obstore's requests are cheap): 64 staged 2,000 x 64 KiB faster than 16 or 32, with less server
#: CPU, in the same runs of ``benchmarks/staging.py --workers 16 32 64`` (docs/benchmarks.rst).
MAX_WORKERS = 64


class BacalhauS3Hook(BaseHook):
    """S3 I/O for Bacalhau pipelines, through an Airflow AWS connection.

    :param aws_conn_id: Airflow AWS connection (``endpoint_url``/``region_name`` in its extra for
        S3-compatible stores).
    :param max_workers: files transferred in parallel (the clients' pools are sized for it).
        Default :data:`MAX_WORKERS`.
    :param compute_s3: S3 as the compute nodes reach it: the Endpoint/Region of the source specs
        the data plane returns through this hook (staged and re-staged prefixes). Default: none
        (AWS or the nodes' default), never this AWS connection's endpoint, which is Airflow's
        view.
    """

    conn_name_attr = "aws_conn_id"
    default_conn_name = "aws_default"
    hook_name = "Bacalhau S3 (through an AWS connection)"

    def __init__(
        self,
        aws_conn_id: str | None = "aws_default",
        *,
        max_workers: int = MAX_WORKERS,
        compute_s3: ComputeS3View | None = None,
    ) -> None:
        super().__init__()
        self.compute_s3 = compute_s3 or ComputeS3View()
        self.aws_conn_id = aws_conn_id
        self.max_workers = max_workers

    @cached_property
    def s3_hook(self) -> Any:
        from airflow.providers.amazon.aws.hooks.s3 import S3Hook

        return S3Hook(aws_conn_id=self.aws_conn_id)

    def _make_client(self, **config_kwargs: Any) -> Any:
        from botocore.config import Config

        hook = self.s3_hook
        with self.explained_settings_errors():
            config = hook.config.merge(Config(max_pool_connections=self.max_workers + 4, **config_kwargs))
            return hook.get_client_type(region_name=hook.region_name, config=config)

    @contextmanager
    def explained_settings_errors(self) -> Iterator[None]:
        """Settings of the AWS connection that botocore or the amazon provider refuse become a
        ``ValueError`` naming the connection and the field (none of them holds a secret)."""
        from botocore.exceptions import InvalidRegionError

        where = f"AWS connection {self.aws_conn_id!r}"
        try:
            yield
        except InvalidRegionError as exc:
            raise ValueError(f"{where}: extra.region_name: {exc}") from None
        except ValueError as exc:
            if str(exc).startswith("Invalid endpoint"):  # botocore's words for a bad endpoint_url
                raise ValueError(f"{where}: extra.endpoint_url: {exc}") from None
            raise
        except (AttributeError, TypeError) as exc:  # e.g. config_kwargs given as a string
            raise ValueError(
                f"{where}: a setting in its extra has the wrong type (config_kwargs and "
                f"service_config are mappings): {exc.__class__.__name__}: {exc}"
            ) from None

    @cached_property
    def client(self) -> Any:
        """One boto3 S3 client for all threads, its pool sized for ``max_workers``."""
        return self._make_client()

    @cached_property
    def multipart_client(self) -> Any:
        # botocore checks a GET against a stored checksum unless that has AWS's "-N" suffix;
        # some S3-compatible stores keep a multipart composite without it, so such objects are read
        # unchecked by botocore and verified here against the composite instead.
        return self._make_client(response_checksum_validation="when_required")

    def object_store(self, bucket: str) -> Any:
        """An obstore ``S3Store`` for ``bucket`` with this connection's credentials, endpoint and
        region (all from the amazon provider's hook), storing a SHA-256 with every upload."""
        from obstore.store import S3Store

        hook = self.s3_hook
        endpoint = self.endpoint_url
        style = (hook.config.s3 or {}).get("addressing_style")
        options: Any = {
            "allow_http": endpoint.startswith("http://"),
            "pool_max_idle_per_host": str(self.max_workers + 4),
        }
        if hook.verify is False:
            options["allow_invalid_certificates"] = True
        config: dict[str, Any] = {
            "region": self.region_name or "us-east-1",
            "checksum_algorithm": "sha256",
            # One SHA-256 pass, not two: the signed x-amz-checksum-sha256
            # header, which S3 checks against the bytes, guards the body
            # as a signed payload hash would.
            "unsigned_payload": True,
            "virtual_hosted_style_request": style == "virtual" or (not endpoint and style != "path"),
        }
        if endpoint:
            config["endpoint"] = endpoint
        credentials = hook.get_session(region_name=hook.region_name).get_credentials()
        if credentials is None:
            config["skip_signature"] = True
        else:
            config["credential_provider"] = _StoreCredentials(credentials)
        return S3Store(bucket, client_options=options, **config)

    @staticmethod
    def client_error_from_store(exc: Exception, operation: str) -> Exception:
        """obstore's error as botocore's ``ClientError`` (S3's code and message), so that one
        handling (``explained_access_errors``, callers' ``ClientError`` checks) serves both."""
        from botocore.exceptions import ClientError

        text = str(exc)
        code = _STORE_CODE.search(text)
        if code is None:
            return exc
        message = _STORE_MESSAGE.search(text)
        status = _STORE_STATUS.search(text)
        return ClientError(
            {
                "Error": {"Code": code.group(1), "Message": message.group(1) if message else ""},
                "ResponseMetadata": {"HTTPStatusCode": int(status.group(1)) if status else 0},
            },
            operation,
        )

    @contextmanager
    def explained_access_errors(self, action: str, bucket: str) -> Iterator[None]:
        """Turn S3's refusal of this connection's credentials into an :class:`S3AccessError`
        that names the connection, the bucket and what to fix (S3's own text holds no secret)."""
        from botocore.exceptions import ClientError

        try:
            yield
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = str(error.get("Code", ""))
            if code not in _ACCESS_ERRORS:
                raise
            raise S3AccessError(
                f"S3 refused the AWS connection {self.aws_conn_id!r} while {action} "
                f"s3://{bucket}/: {_ACCESS_ERRORS[code]} ({code}: {error.get('Message', '')}). "
                f"Check the connection's credentials and the bucket's access rights.",
                conn_id=self.aws_conn_id,
                code=code,
            ) from exc

    @property
    def endpoint_url(self) -> str:
        """The connection's S3 endpoint, or "" for AWS itself."""
        with self.explained_settings_errors():
            endpoint = self.s3_hook.conn_config.get_service_endpoint_url("s3") or ""
        parts = urlsplit(endpoint)
        if endpoint and (parts.scheme not in ("http", "https") or not parts.hostname):
            # Checked here, not by the transfer engine: obstore's own error would not name the field.
            shown = f": {endpoint!r}" if "@" not in endpoint else ""  # never echo user:password@
            raise ValueError(
                f"AWS connection {self.aws_conn_id!r}: extra.endpoint_url: not an http(s) URL{shown}"
            )
        return endpoint

    @property
    def region_name(self) -> str:
        region = self.s3_hook.region_name
        if not region:
            return self.client.meta.region_name or ""
        from botocore.utils import validate_region_name

        with self.explained_settings_errors():  # obstore would take any text: check it as boto3 does
            validate_region_name(region)
        return region

    def object_exists(self, bucket: str, key: str) -> bool:
        """HEAD ``key``: True when it exists, False when S3 says there is no such object."""
        from botocore.exceptions import ClientError

        try:
            self.client.head_object(Bucket=bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                return False
            raise
        return True


class _StoreCredentials:
    """obstore's credential provider over the boto3 session's credentials: refreshable ones
    (assumed roles) stay fresh, because obstore asks again once a handed-out set expires."""

    def __init__(self, credentials: Any) -> None:
        self.credentials = credentials

    def __call__(self) -> dict[str, Any]:
        frozen = self.credentials.get_frozen_credentials()
        return {
            "access_key_id": frozen.access_key,
            "secret_access_key": frozen.secret_key,
            "token": frozen.token,
            "expires_at": datetime.now(UTC) + timedelta(minutes=5),
        }
