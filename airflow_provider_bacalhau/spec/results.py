"""``PublishedResult``: an execution's raw published result, JSON-safe so it can travel in XCom."""

from __future__ import annotations

import copy
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import as_mapping, get
from airflow_provider_bacalhau.spec.sources import S3Source

_ARCHIVE_SUFFIXES = (".tar.gz", ".tgz")
#: Bacalhau's spelling of each known result type, by its lowercase form.
_KNOWN_TYPES = {t.lower(): t for t in ("s3", "s3managed", "urlDownload", "ipfs")}


def _json_safe(value: Any, path: str) -> Any:
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError) as exc:
        raise SpecError(path, f"must be JSON-serialisable: {exc}") from exc


@dataclass
class PublishedResult:
    """What one execution published: ``{"Type": ..., "Params": {...}}`` plus job/execution ids.

    Built from the raw ``Execution.PublishedResult`` (not the rewritten ``/results`` form), for
    types ``s3``, ``s3managed``, ``urlDownload`` (local publisher) and ``ipfs``.

    :param type: result type; a known one in any case is stored in Bacalhau's spelling
        (``"S3"`` becomes ``"s3"``), so the checks below do not depend on case.
    :param params: the raw params, kept as reported.
    :param job_id: job that produced it.
    :param execution_id: execution that produced it.
    """

    type: str
    params: dict[str, Any] = field(default_factory=dict)
    job_id: str = ""
    execution_id: str = ""

    def __post_init__(self) -> None:
        self.params = _json_safe(dict(self.params or {}), "PublishedResult.Params")
        self.type = _KNOWN_TYPES.get(str(self.type).strip().lower(), str(self.type).strip())
        if self.type == "s3managed":  # its params carry the ids
            self.job_id = self.job_id or str(get(self.params, "JobID") or "")
            self.execution_id = self.execution_id or str(get(self.params, "ExecutionID") or "")

    @classmethod
    def from_api(
        cls, mapping: Mapping[str, Any], job_id: str = "", execution_id: str = ""
    ) -> PublishedResult:
        """From the raw ``Execution.PublishedResult`` (``{"Type", "Params"}``)."""
        mapping = as_mapping(mapping, "PublishedResult")
        rtype = get(mapping, "Type")
        if not isinstance(rtype, str) or not rtype.strip():
            raise SpecError("PublishedResult.Type", "missing result type", rtype)
        params = as_mapping(get(mapping, "Params") or {}, "PublishedResult.Params")
        return cls(rtype.strip(), copy.deepcopy(dict(params)), job_id, execution_id)

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> PublishedResult:
        """Inverse of :meth:`to_dict`; a bare ``{"Type", "Params"}`` is accepted too."""
        mapping = as_mapping(mapping, "PublishedResult")
        return cls.from_api(mapping, str(get(mapping, "JobID") or ""), str(get(mapping, "ExecutionID") or ""))

    def to_dict(self) -> dict[str, Any]:
        """``{"Type", "Params", "JobID", "ExecutionID"}``: plain JSON (what goes into XCom)."""
        return {
            "Type": self.type,
            "Params": copy.deepcopy(self.params),
            "JobID": self.job_id,
            "ExecutionID": self.execution_id,
        }

    def param(self, name: str, default: Any = "") -> Any:
        """A param by name, in any key case."""
        value = get(self.params, name)
        return default if value is None else value

    @property
    def is_s3(self) -> bool:
        return self.type == "s3"

    @property
    def is_archive(self) -> bool:
        """A single ``.tar.gz``: s3 gzip result, any s3managed result, a local-publisher URL."""
        if self.type == "s3managed":
            return True
        if self.type == "s3":
            return str(self.param("Key")).endswith(".tar.gz")
        if self.type == "urlDownload":
            return urlparse(str(self.param("URL"))).path.endswith(_ARCHIVE_SUFFIXES)
        return False

    def source_spec(self) -> dict[str, Any]:
        """This result as an input ``{"Type", "Params"}`` with empty values dropped (s3 only)."""
        if not self.is_s3:
            raise SpecError(
                "PublishedResult.Type",
                f"only an s3 result is usable as an input "
                f"source as-is; a {self.type} result must be "
                f"downloaded and re-staged first",
                self.type,
            )
        return S3Source.from_params(self.params, "PublishedResult.Params").to_spec()
