"""Dataset names for what Bacalhau jobs read and write: plain Python, no Airflow, no OpenLineage.

S3 follows the amazon provider (``airflow.providers.amazon.aws.assets.s3``, which hook lineage
goes through): namespace ``s3://<bucket>``, name the key or prefix without a trailing ``/`` (as
Airflow normalises an Asset URI; ``/`` for a whole bucket), Asset URI ``s3://<bucket>/<key>``.
The compute nodes' Endpoint is not part of the name, as in the amazon provider. Other kinds:

- an ``s3managed`` result: namespace ``bacalhau-s3managed://<orchestrator host:port>`` (the
  orchestrator owns the bucket, which the API does not name), name ``<job id>/<execution id>``;
- a URL input or a local-publisher result: ``<scheme>://<host>`` and the path, the query left
  out (it may hold a signature);
- an IPFS input or result: namespace ``ipfs``, name the CID;
- a local file or directory: namespace ``file``, name its absolute path (OpenLineage's naming).

Inline and local inputs are not datasets here (inline data may be anything, secrets included).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from airflow_provider_bacalhau.spec import JobStatus, PublishedResult
from airflow_provider_bacalhau.spec._common import get

#: Namespace scheme of s3managed results (see the module docstring).
S3MANAGED_SCHEME = "bacalhau-s3managed"


@dataclass(frozen=True)
class DatasetName:
    """One dataset: its OpenLineage ``namespace`` and ``name``, and its Asset URI when it has one."""

    namespace: str
    name: str
    uri: str | None = None


def s3_dataset(bucket: str, key: str) -> DatasetName:
    key = (key or "").strip("/")
    return DatasetName(f"s3://{bucket}", key or "/", f"s3://{bucket}/{key}")


def _url_dataset(url: str) -> DatasetName | None:
    parts = urlsplit(url)
    if not parts.scheme or not parts.hostname:
        return None
    host = parts.hostname + (f":{parts.port}" if parts.port else "")  # no user:password@
    path = parts.path or "/"
    return DatasetName(f"{parts.scheme}://{host}", path, f"{parts.scheme}://{host}{path}")


def orchestrator_host(base_url: str) -> str:
    """``host:port`` of the orchestrator's API URL, without any credentials in it."""
    parts = urlsplit(base_url)
    if not parts.hostname:
        return base_url
    return parts.hostname + (f":{parts.port}" if parts.port else "")


def source_dataset(source: Any) -> DatasetName | None:
    """An input source spec (``{"Type", "Params"}``) as a dataset; None for kinds that are none."""
    if not isinstance(source, Mapping):
        return None
    kind = str(get(source, "Type") or "").lower()
    params = get(source, "Params") or {}
    if not isinstance(params, Mapping):
        return None
    if kind == "s3" and get(params, "Bucket"):
        return s3_dataset(str(get(params, "Bucket")), str(get(params, "Key") or ""))
    if kind in ("urldownload", "url") and get(params, "URL"):
        return _url_dataset(str(get(params, "URL")))
    if kind == "ipfs" and get(params, "CID"):
        return DatasetName("ipfs", str(get(params, "CID")), f"ipfs://{get(params, 'CID')}")
    return None


def result_dataset(result: Any, orchestrator: str = "") -> DatasetName | None:
    """A published result (``PublishedResult`` or its XCom dict) as a dataset.

    :param orchestrator: ``host:port`` of the orchestrator, the namespace of s3managed results.
    """
    if not isinstance(result, PublishedResult):
        try:
            result = PublishedResult.from_dict(result)
        except ValueError:
            return None
    if result.type == "s3":
        return source_dataset({"Type": "s3", "Params": result.params})
    if result.type == "s3managed" and result.job_id:
        host = orchestrator or "unknown"
        name = f"{result.job_id}/{result.execution_id}" if result.execution_id else result.job_id
        return DatasetName(f"{S3MANAGED_SCHEME}://{host}", name, f"{S3MANAGED_SCHEME}://{host}/{name}")
    if result.type == "urlDownload":
        return _url_dataset(str(result.param("URL")))
    if result.type == "ipfs":
        return source_dataset({"Type": "ipfs", "Params": result.params})
    return None


def local_dataset(path: str | os.PathLike) -> DatasetName:
    absolute = os.path.abspath(os.fspath(path))
    return DatasetName("file", absolute, f"file://{absolute}")


def unique(names: Iterable[DatasetName | None]) -> list[DatasetName]:
    """Drop Nones and repeats, keeping the first order."""
    seen: dict[tuple[str, str], DatasetName] = {}
    for name in names:
        if name is not None:
            seen.setdefault((name.namespace, name.name), name)
    return list(seen.values())


def _tasks(response: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    job = get(response, "Job")
    job = job if isinstance(job, Mapping) else response
    tasks = get(job, "Tasks") or []
    return [t for t in tasks if isinstance(t, Mapping)] if isinstance(tasks, list) else []


def job_inputs(response: Mapping[str, Any]) -> list[DatasetName]:
    """The datasets a job read: its tasks' InputSources, as Bacalhau holds them (``GET /jobs/{id}``).

    These are the resolved inputs: a staged prefix, a chained result's prefix or its re-staged
    copy, an ``s3://`` URI.
    """
    sources = [
        get(item, "Source")
        for task in _tasks(response)
        for item in (get(task, "InputSources") or [])
        if isinstance(item, Mapping)
    ]
    return unique(source_dataset(s) for s in sources)


def job_outputs(status: JobStatus, orchestrator: str = "") -> list[DatasetName]:
    """What the job published: each completed execution's result, placeholders filled."""
    return unique(result_dataset(r, orchestrator) for r in status.results)


def job_images(response: Mapping[str, Any]) -> list[str]:
    images = []
    for task in _tasks(response):
        engine = get(task, "Engine") or {}
        params = get(engine, "Params") if isinstance(engine, Mapping) else None
        image = get(params, "Image") if isinstance(params, Mapping) else None
        if isinstance(image, str) and image:
            images.append(image)
    return images


def run_facet_fields(response: Mapping[str, Any], job_url: str | None, orchestrator: str) -> dict[str, Any]:
    """The fields of the ``bacalhau`` run facet: ids, version, executions, image, link.

    Only identifiers and states: never the spec's environment, parameters or credentials.
    """
    status = JobStatus.from_api(response)
    images = job_images(response)
    return {
        "jobId": status.job_id,
        "jobName": status.name,
        "namespace": status.namespace,
        "jobVersion": status.version,
        "jobType": status.type,
        "state": status.state.value,
        "image": images[0] if images else "",
        "jobUrl": job_url or "",
        "orchestrator": orchestrator,
        "executions": [
            {
                "executionId": e.id,
                "nodeId": e.node_id,
                "state": e.compute_state.label,
                "exitCode": e.run_output.exit_code,
            }
            for e in status.executions
        ],
    }
