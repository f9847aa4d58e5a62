"""The devstack's compute node: runs one execution of a job the way Bacalhau v1.9.3 does.

Order of one run (``pkg/compute/executor.go``): check params, fetch inputs, start the container
with inputs and result paths mounted, wait (timeout/cancel kill it), write ``stdout``/``stderr``/
``exitCode`` to the results directory, publish. A non-zero exit code is not a failure; an
``error`` in the outcome is. Only ``docker`` and ``noop`` engines run; see docs/devstack/compute.rst.
"""

from __future__ import annotations

import logging
import os
import shutil
import threading
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field as dataclass_field
from pathlib import Path
from typing import Any

from airflow_provider_bacalhau.devstack import inputs as inputs_module
from airflow_provider_bacalhau.devstack import publishers as publishers_module
from airflow_provider_bacalhau.devstack.compute_common import (
    ComputeError,
    S3Clients,
    host_capacity,
    same_type,
)
from airflow_provider_bacalhau.devstack.compute_docker import (
    CANCELLED,
    ContainerSpec,
    DockerRunner,
    parse_cpu,
    parse_memory,
)
from airflow_provider_bacalhau.devstack.decode import field, items, strmap, text
from airflow_provider_bacalhau.devstack.engine import BUSYBOX_IMAGE

log = logging.getLogger(__name__)

#: Public image names (fnmatch patterns) the devstack maps onto its local busybox image, because
#: no registry is reachable. Images present in the engine are always used as they are.
DEFAULT_IMAGE_ALIASES: dict[str, str] = {
    pattern: BUSYBOX_IMAGE
    for pattern in (
        "busybox",
        "busybox:*",
        "busybox@*",
        "library/busybox",
        "library/busybox:*",
        "docker.io/busybox",
        "docker.io/busybox:*",
        "docker.io/library/busybox",
        "docker.io/library/busybox:*",
        "ubuntu*",
        "library/ubuntu*",
        "docker.io/ubuntu*",
        "docker.io/library/ubuntu*",
        "alpine*",
        "library/alpine*",
        "docker.io/alpine*",
        "docker.io/library/alpine*",
    )
}

ENGINE_TYPES = ("docker", "noop")
OUTPUT_PREVIEW = 2048  # bytes of each stream in RunOutput, as system.MaxStdoutReturnLength
EVENT_INPUTS, EVENT_PREPARE = "Downloading Inputs", "Preparing Environment"
EVENT_RUN, EVENT_PUBLISH = "Running Execution", "Publishing Results"


@dataclass
class ComputeSettings:
    """Configuration of the devstack compute node.

    :param data_dir: where execution directories (inputs, results) are created.
    :param node_id: the node ID (``{nodeID}`` in publisher keys).
    :param docker_host: Docker Engine URL; None disables the docker engine.
    :param image_aliases: public name pattern -> local image (see :data:`DEFAULT_IMAGE_ALIASES`).
    :param s3_default_endpoint: S3 server used when a job gives no Endpoint (treated as AWS).
    :param aws_access_key_id: the node's own S3 credentials (jobs never carry any).
    :param aws_secret_access_key: see ``aws_access_key_id``.
    :param region: default region when a job gives none.
    :param allow_listed_local_paths: ``glob:rw``/``glob:ro`` entries for ``local`` inputs.
    :param local_publisher_dir: where the ``local`` publisher writes ``<executionID>.tar.gz``.
    :param local_publisher_base_url: URL prefix under which those files are served.
    :param noop_delay: seconds a ``noop`` engine execution takes.
    :param s3_only_default: the node reaches S3 only at ``s3_default_endpoint`` (its own view);
        a job naming another Endpoint fails to connect, as a real node outside that network.
    """

    data_dir: Path
    node_id: str
    docker_host: str | None
    image_aliases: dict[str, str]
    s3_default_endpoint: str
    aws_access_key_id: str
    aws_secret_access_key: str
    region: str
    allow_listed_local_paths: list[str]
    local_publisher_dir: Path
    local_publisher_base_url: str
    noop_delay: float = 0.0
    s3_only_default: bool = False


@dataclass
class ExecutionRequest:
    """One execution to run; callbacks report progress to the orchestrator side."""

    job: dict
    job_id: str
    execution_id: str
    presign_managed_put: Callable[[str, str], str] | None
    on_log: Callable[[int, str], None]
    on_event: Callable[[str, str], None]
    on_running: Callable[[], None]
    cancel: threading.Event
    partition_index: int = 0  # Execution.PartitionIndex (S3 partitioning, BACALHAU_PARTITION_INDEX)


@dataclass
class ExecutionOutcome:
    run_output: dict
    published_result: dict | None
    error: str | None = None


@dataclass
class _Plan:
    """What a run needs, decoded once from the job."""

    task: dict
    engine_type: str
    engine_params: dict
    publisher: dict
    timeout: float
    count: int
    extras: dict[str, Any] = dataclass_field(default_factory=dict)


class ComputeNode:
    """Single compute node of the devstack; :meth:`run` is blocking and thread-safe.

    :param settings: see :class:`ComputeSettings`.
    """

    def __init__(self, settings: ComputeSettings) -> None:
        self.settings = settings
        self._s3 = S3Clients(settings)
        self._docker = (
            DockerRunner(settings.docker_host, settings.image_aliases) if settings.docker_host else None
        )

    # --- capabilities -------------------------------------------------------------------------

    def node_info(self) -> dict:
        """``models.ComputeNodeInfo``: only *installed* plugins, keys lower-cased as the node's
        providers keep them (``pkg/lib/provider/mapped.go`` ``Keys``, ``utils.go`` ``sanitizeKey``).
        s3 input and publisher count as installed only with AWS credentials (``pkg/s3/utils.go``
        ``HasValidCredentials``); s3managed always (``pkg/publisher/s3managed/publisher.go``).
        Capacities are the host's; the devstack does not track what running executions use."""
        has_credentials = bool(self.settings.aws_access_key_id and self.settings.aws_secret_access_key)

        def installed(types: tuple[str, ...]) -> list[str]:
            return sorted({t.lower() for t in types if has_credentials or t != "s3"})

        engines = [e for e in ENGINE_TYPES if e != "docker" or self._docker is not None]
        capacity = host_capacity(Path(self.settings.data_dir))
        return {
            "ExecutionEngines": engines,
            "Publishers": installed(publishers_module.PUBLISHER_TYPES),
            "StorageSources": installed(inputs_module.SOURCE_TYPES),
            "MaxCapacity": capacity,
            "QueueCapacity": {},
            "AvailableCapacity": capacity,
            "MaxJobRequirements": capacity,
            "RunningExecutions": 0,
            "EnqueuedExecutions": 0,
            "address": "127.0.0.1",
        }

    def unsupported_reason(self, job: dict) -> str | None:
        """``does not support X`` for an engine, source or publisher type this node lacks."""
        task = _task(job)
        info = self.node_info()
        engine = text(field(task, "Engine"), "Type").strip()
        if not any(same_type(engine, known) for known in info["ExecutionEngines"]):
            return f"does not support {engine}"
        for input_source in items(task, "InputSources"):
            kind = inputs_module.source_type(field(input_source, "Source"))
            if not any(same_type(kind, known) for known in info["StorageSources"]):
                return f"does not support {kind}"
        publisher = publishers_module.publisher_type(field(task, "Publisher"))
        if publisher and not any(same_type(publisher, known) for known in info["Publishers"]):
            return f"does not support {publisher}"
        return None

    # --- one execution ------------------------------------------------------------------------

    def run(self, request: ExecutionRequest) -> ExecutionOutcome:
        work_dir = Path(self.settings.data_dir) / "executions" / request.execution_id
        results_dir = work_dir / "results"
        try:
            shutil.rmtree(work_dir, ignore_errors=True)
            (work_dir / "storage").mkdir(parents=True)
            results_dir.mkdir()
            return self._run(request, work_dir, results_dir)
        except ComputeError as exc:
            return ExecutionOutcome(_run_output(results_dir, -1, str(exc)), None, str(exc))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)

    def _run(self, request: ExecutionRequest, work_dir: Path, results_dir: Path) -> ExecutionOutcome:
        plan = self._plan(request.job)
        reason = self.unsupported_reason(request.job)
        if reason:
            raise ComputeError(reason)
        request.on_event(EVENT_INPUTS, "Downloading inputs")
        mounts = inputs_module.prepare_inputs(
            items(plan.task, "InputSources"),
            inputs_module.InputContext(
                clients=self._s3,
                storage_dir=work_dir / "storage",
                allow_listed_local_paths=list(self.settings.allow_listed_local_paths),
                partition_index=request.partition_index,
                partition_count=plan.count,
            ),
        )
        for result_path in items(plan.task, "ResultPaths"):
            host = results_dir / text(result_path, "Name")
            host.mkdir(parents=True, exist_ok=True)
            mounts.append(inputs_module.Mount(host, text(result_path, "Path"), read_only=False))
        if same_type(plan.engine_type, "noop"):
            exit_code, error = self._run_noop(request)
        else:
            exit_code, error = self._run_docker(request, plan, mounts, results_dir)
        for name in ("stdout", "stderr"):
            (results_dir / name).touch()
        (results_dir / "exitCode").write_text(str(exit_code))
        run_output = _run_output(results_dir, exit_code, error or "")
        if error:
            return ExecutionOutcome(run_output, None, error)
        published = None
        if publishers_module.publisher_type(plan.publisher):
            request.on_event(EVENT_PUBLISH, "Publishing results")
            published = publishers_module.publish(
                plan.publisher,
                results_dir,
                publishers_module.PublishContext(
                    clients=self._s3,
                    job_id=request.job_id,
                    execution_id=request.execution_id,
                    node_id=self.settings.node_id,
                    local_publisher_dir=Path(self.settings.local_publisher_dir),
                    local_publisher_base_url=self.settings.local_publisher_base_url,
                    presign_managed_put=request.presign_managed_put,
                ),
            )
        return ExecutionOutcome(run_output, published, None)

    def _plan(self, job: dict) -> _Plan:
        """Decode the job and raise the params errors the real node reports."""
        task = _task(job)
        engine = field(task, "Engine") or {}
        engine_params = field(engine, "Params") or {}
        engine_type = text(engine, "Type").strip()
        if same_type(engine_type, "docker"):
            problem = validate_docker_params(engine_params)
            if problem:
                raise ComputeError(problem)
        for input_source in items(task, "InputSources"):
            problem = inputs_module.validate_source(field(input_source, "Source") or {})
            if problem:
                raise ComputeError(problem)
        publisher = field(task, "Publisher") or {}
        problem = publishers_module.validate_publisher(publisher)
        if problem:
            raise ComputeError(problem)
        timeouts = field(task, "Timeouts") or {}
        timeout = _number(field(timeouts, "ExecutionTimeout")) or _number(field(timeouts, "TotalTimeout"))
        count_value = field(job, "Count")
        count = 1 if count_value is None else int(count_value)
        return _Plan(task, engine_type, engine_params, publisher, float(timeout), count)

    def _run_noop(self, request: ExecutionRequest) -> tuple[int, str | None]:
        request.on_event(EVENT_RUN, "Running execution")
        request.on_running()
        if self.settings.noop_delay > 0 and request.cancel.wait(self.settings.noop_delay):
            return -1, CANCELLED
        if request.cancel.is_set():
            return -1, CANCELLED
        return 0, None

    def _run_docker(
        self, request: ExecutionRequest, plan: _Plan, mounts: list, results_dir: Path
    ) -> tuple[int, str | None]:
        assert self._docker is not None  # unsupported_reason() said docker is available
        params = plan.engine_params
        request.on_event(EVENT_PREPARE, "Preparing environment")
        image = text(params, "Image")
        local_image, aliased = self._docker.resolve_image(image)
        if aliased:
            notice = (
                f"devstack: image {image!r} is not available offline; "
                f"running the local alias {local_image!r} instead"
            )
            request.on_event(EVENT_PREPARE, notice)
            request.on_log(2, notice + "\n")
        resources = field(plan.task, "Resources") or {}
        cpu, memory = text(resources, "CPU"), text(resources, "Memory")
        nano_cpus = None
        if cpu:
            # Docker refuses more CPUs than the host has; a real node would not bid instead.
            nano_cpus = int(min(parse_cpu(cpu), float(os.cpu_count() or 1)) * 1e9) or None
        spec = ContainerSpec(
            image=local_image,
            entrypoint=_string_list(field(params, "Entrypoint")),
            command=_string_list(field(params, "Parameters")),
            environment=self._environment(request, plan),
            working_dir=text(params, "WorkingDirectory"),
            mounts=mounts,
            network_mode=self._docker.network_mode(text(field(plan.task, "Network"), "Type")),
            nano_cpus=nano_cpus,
            mem_limit=parse_memory(memory) if memory else None,
            labels={
                "bacalhau-devstack.node": self.settings.node_id,
                "bacalhau-devstack.job": request.job_id,
                "bacalhau-devstack.execution": request.execution_id,
            },
        )
        request.on_event(EVENT_RUN, "Running execution")
        result = self._docker.run(
            spec,
            results_dir,
            on_log=request.on_log,
            on_running=request.on_running,
            cancel=request.cancel,
            timeout=plan.timeout,
        )
        return result.exit_code, result.error

    def _environment(self, request: ExecutionRequest, plan: _Plan) -> list[str]:
        """Task.Env, then the BACALHAU_* variables, then the engine's own (which win, as MergeSlices)."""
        merged: dict[str, str] = {}
        for name, value in strmap(plan.task, "Env").items():
            if value.startswith("env:"):
                raise ComputeError(
                    "failed to resolve task environment variables: host environment variable "
                    f"{value[4:]!r} is not in the compute node's allow list"
                )
            merged[name] = value
        merged.update(
            {
                "BACALHAU_EXECUTION_ID": request.execution_id,
                "BACALHAU_JOB_ID": request.job_id,
                "BACALHAU_JOB_TYPE": text(request.job, "Type"),
                "BACALHAU_PARTITION_INDEX": str(request.partition_index),
                "BACALHAU_PARTITION_COUNT": str(plan.count),
            }
        )
        for entry in _string_list(field(plan.engine_params, "EnvironmentVariables")) or []:
            name, _, value = entry.partition("=")
            merged[name] = value
        return [f"{name}={value}" for name, value in merged.items()]


def validate_docker_params(params: Any) -> str | None:
    """The real node's ``EngineSpec.Validate`` messages."""
    if not text(params, "Image"):
        return "invalid docker engine param: 'Image' cannot be empty"
    working_dir = text(params, "WorkingDirectory")
    if working_dir and not working_dir.startswith("/"):
        return (
            f"invalid docker engine param: 'WorkingDirectory' (\"{working_dir}\") must contain absolute path"
        )
    for entry in _string_list(field(params, "EnvironmentVariables")) or []:
        name = entry.split("=", 1)[0]
        if name.upper().startswith("BACALHAU_"):
            return f"invalid docker engine param: environment variable '{name}' cannot start with BACALHAU_"
    return None


def _task(job: dict) -> dict:
    tasks = items(job, "Tasks")
    return tasks[0] if tasks and isinstance(tasks[0], dict) else {}


def _string_list(value: Any) -> list[str] | None:
    if value is None or value == []:
        return None
    if isinstance(value, str):
        return [value]
    return [str(v) for v in value]


def _number(value: Any) -> float:
    try:
        return float(value or 0)
    except (TypeError, ValueError):
        return 0.0


def _preview(path: Path) -> tuple[str, bool]:
    """First 2 KiB of a stream file and whether there was more."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as handle:
            head = handle.read(OUTPUT_PREVIEW)
    except FileNotFoundError:
        return "", False
    return head.decode("utf-8", errors="replace"), size > OUTPUT_PREVIEW


def _run_output(results_dir: Path, exit_code: int, error: str) -> dict:
    stdout, stdout_truncated = _preview(results_dir / "stdout")
    stderr, stderr_truncated = _preview(results_dir / "stderr")
    return {
        "Stdout": stdout,
        "StdoutTruncated": stdout_truncated,
        "stderr": stderr,
        "StderrTruncated": stderr_truncated,
        "ExitCode": exit_code,
        "ErrorMsg": error,
    }
