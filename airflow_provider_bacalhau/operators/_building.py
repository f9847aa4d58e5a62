"""Turn friendly operator arguments into spec objects (publisher, resources, timeouts...).

Everything here returns ``spec`` objects and raises :class:`SpecError` naming the argument, so a
bad argument fails the task before anything is submitted.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from airflow_provider_bacalhau.errors import SpecError

#: Where results are collected from when a publisher is set and ``result_paths`` is not.
DEFAULT_RESULT_PATHS = {"outputs": "/outputs"}
_PUBLISHER_WORDS = ("s3managed", "local", "ipfs", "noop")


def pascal_keys(mapping: Mapping[str, Any]) -> dict[str, Any]:
    """``{"execution_timeout": 5}`` -> ``{"ExecutionTimeout": 5}`` (spec matches keys in any case)."""
    return {"".join(p[:1].upper() + p[1:] for p in str(k).split("_")): v for k, v in mapping.items()}


def coerce_publisher(value: Any, field: str = "publisher") -> Any:
    """A spec publisher from an object, ``{"Type","Params"}``, a flat dict, a word or an s3 URI.

    Flat dict: ``{"type": "s3", "bucket": "b", "key": "out/{jobID}/", "encoding": "plain"}``.
    Words: ``"s3managed"``, ``"local"``, ``"ipfs"``, ``"noop"``. URI: ``"s3://bucket/prefix/"``.
    """
    from airflow_provider_bacalhau.spec import publisher_from_spec

    if value is None:
        return None
    if hasattr(value, "to_spec"):
        return value
    if isinstance(value, str):
        text = value.strip()
        if text.lower() in _PUBLISHER_WORDS:
            return publisher_from_spec({"Type": text.lower()}, field)
        if text.startswith("s3://"):
            from airflow_provider_bacalhau.dataplane.inputs import parse_s3_uri

            bucket, key = parse_s3_uri(text, field)
            return publisher_from_spec({"Type": "s3", "Params": {"Bucket": bucket, "Key": key}}, field)
        raise SpecError(field, "use s3managed, local, ipfs, noop, an s3://bucket/key URI or a mapping", value)
    if isinstance(value, Mapping):
        keys = {str(k).lower(): k for k in value}
        if "params" in keys or set(keys) <= {"type"}:
            return publisher_from_spec(value, field)
        if "type" not in keys:
            raise SpecError(f"{field}.type", "a publisher mapping needs a type (s3, s3managed, local...)")
        params = {k: v for k, v in value.items() if str(k).lower() != "type"}
        return publisher_from_spec({"Type": value[keys["type"]], "Params": pascal_keys(params)}, field)
    raise SpecError(field, f"unsupported publisher value of type {type(value).__name__}", value)


def place_s3_publisher(publisher: Any, compute_s3: Any) -> Any:
    """An s3 publisher without its own Endpoint gets S3 as the compute nodes see it.

    The node publishes with its own address and credentials (``pkg/publisher/s3/publisher.go``
    ``PublishResult`` builds its client from the spec's Endpoint/Region), so Airflow's AWS
    connection has no say here. A publisher that names an Endpoint is the user's and kept.
    """
    from dataclasses import replace

    from airflow_provider_bacalhau.spec import S3Publisher

    if compute_s3 is None or not isinstance(publisher, S3Publisher):
        return publisher
    placed = compute_s3.fill({"Endpoint": publisher.endpoint, "Region": publisher.region})
    return replace(publisher, endpoint=placed.get("Endpoint", ""), region=placed.get("Region", ""))


def coerce_result_paths(value: Any, has_publisher: bool, field: str = "result_paths") -> list:
    """``{"name": "/path"}`` or a list of ``ResultPath``/``{"Name","Path"}``; a default when publishing."""
    from airflow_provider_bacalhau.spec import ResultPath

    if value is None:
        value = DEFAULT_RESULT_PATHS if has_publisher else {}
    if isinstance(value, Mapping):
        return [ResultPath(str(name), str(path)) for name, path in value.items()]
    if isinstance(value, Sequence) and not isinstance(value, str):
        out = []
        for i, item in enumerate(value):
            if isinstance(item, ResultPath):
                out.append(item)
            elif isinstance(item, Mapping):
                out.append(ResultPath.from_dict(pascal_keys(item), f"{field}[{i}]"))
            else:
                raise SpecError(f"{field}[{i}]", "must be a ResultPath or {Name, Path}", item)
        return out
    raise SpecError(field, "must be a mapping name -> absolute path, or a list", value)


def coerce_part(value: Any, cls: type, field: str, word_key: str | None = None) -> Any:
    """``Resources``/``Timeouts``/``Network`` from the object, a mapping (any key style) or a word."""
    if value is None or isinstance(value, cls):
        return value
    if isinstance(value, str) and word_key:
        return cls.from_dict({word_key: value}, field)
    if isinstance(value, Mapping):
        return cls.from_dict(pascal_keys(value), field)
    raise SpecError(field, f"must be a {cls.__name__} or a mapping", value)


def coerce_constraints(value: Any, field: str = "constraints") -> list:
    from airflow_provider_bacalhau.spec import Constraint

    if not value:
        return []
    if isinstance(value, (str, Mapping)) or not isinstance(value, Sequence):
        raise SpecError(field, "must be a list of Constraint or {Key, Operator, Values}", value)
    out = []
    for i, item in enumerate(value):
        if isinstance(item, Constraint):
            out.append(item)
        elif isinstance(item, Mapping):
            out.append(Constraint.from_dict(pascal_keys(item), f"{field}[{i}]"))
        else:
            raise SpecError(f"{field}[{i}]", "must be a Constraint or {Key, Operator, Values}", item)
    return out


def as_str_list(value: Any, field: str) -> list[str]:
    """A list of strings; a single string becomes a one-item list."""
    if value is None:
        return []
    if isinstance(value, str):
        return [value]
    if isinstance(value, Sequence):
        return [str(v) for v in value]
    raise SpecError(field, "must be a string or a list of strings", value)


def build_docker_job(
    *,
    image: Any,
    entrypoint: Any,
    parameters: Any,
    env: Any,
    working_dir: Any,
    publisher: Any,
    result_paths: Any,
    resources: Any,
    timeouts: Any,
    count: Any,
    constraints: Any,
    labels: Any,
    namespace: Any,
    network: Any,
    job_type: str = "batch",
    task_name: str = "main",
    compute_s3: Any = None,
) -> Any:
    """A validated one-task Docker :class:`~airflow_provider_bacalhau.spec.Job`.

    ``compute_s3`` (a :class:`~airflow_provider_bacalhau.hooks._compute_s3.ComputeS3View`) places
    an s3 publisher that gives no Endpoint (see :func:`place_s3_publisher`).
    """
    from airflow_provider_bacalhau.spec import DockerEngine, Job, Network, Resources, Task, Timeouts

    if not isinstance(image, str) or not image.strip():
        raise SpecError("image", "a Docker image is required", image)
    if env is not None and not isinstance(env, (Mapping, list, tuple)):
        raise SpecError("env", "must be a mapping {NAME: value} or a list of 'NAME=value'", env)
    for name, value in env.items() if isinstance(env, Mapping) else ():
        if not isinstance(name, str) or not name.strip() or "=" in name:
            raise SpecError("env", "variable names must be non-empty strings without '='", name)
        if isinstance(value, (bool, Mapping, list, tuple)) or value is None:
            raise SpecError(f"env.{name}", "must be a string or a number", value)
    engine = DockerEngine(
        image.strip(),
        as_str_list(entrypoint, "entrypoint"),
        as_str_list(parameters, "parameters"),
        environment_variables=env or [],
        working_directory=working_dir or "",
    )
    if isinstance(count, str) and count.strip().isdigit():  # a rendered template gives text
        count = int(count)
    pub = place_s3_publisher(coerce_publisher(publisher), compute_s3)
    task = Task(
        engine,
        task_name,
        pub,
        result_paths=coerce_result_paths(result_paths, pub is not None),
        resources=coerce_part(resources, Resources, "resources"),
        network=coerce_part(network, Network, "network", word_key="Type"),
        timeouts=coerce_part(timeouts, Timeouts, "timeouts"),
    )
    if labels is not None and not isinstance(labels, Mapping):
        raise SpecError("labels", "must be a mapping of label names to values", labels)
    job = Job(
        task,
        namespace=namespace or "",
        type=job_type,
        count=1 if count is None else count,
        constraints=coerce_constraints(constraints),
        labels=dict(labels or {}),
    )
    job.validate()
    return job
