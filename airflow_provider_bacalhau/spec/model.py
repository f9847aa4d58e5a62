"""``Task`` and ``Job``: the Bacalhau job model, its validation and its API JSON."""

from __future__ import annotations

import copy
import os
import posixpath
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from airflow_provider_bacalhau.errors import SpecError
from airflow_provider_bacalhau.spec._common import (
    as_list,
    as_mapping,
    check_env_name,
    check_int,
    check_str_map,
    check_text,
    warn_once,
)
from airflow_provider_bacalhau.spec.engines import DockerEngine, Engine, engine_from_spec
from airflow_provider_bacalhau.spec.parts import (
    Constraint,
    Network,
    Resources,
    ResultPath,
    Timeouts,
)
from airflow_provider_bacalhau.spec.publishers import Publisher, publisher_from_spec
from airflow_provider_bacalhau.spec.sources import InputSource, S3Source

JOB_TYPES = ("batch", "ops", "daemon", "service")


def _listify(value: Any) -> Any:
    if value is None:
        return []
    return list(value) if isinstance(value, tuple) else value


def _mapify(value: Any) -> Any:
    return {} if value is None else value


@dataclass
class Task:
    """The one task of a job.

    :param engine: what runs (``DockerEngine``, ``WasmEngine``, ``NoopEngine`` or a spec mapping).
    :param name: task name, ``main`` by default.
    :param publisher: where results go; None publishes nothing.
    :param env: environment variables (upper-case names; not ``BACALHAU_*``).
    :param meta: free-form string map.
    :param input_sources: ``InputSource`` list.
    :param result_paths: ``ResultPath`` list.
    :param resources: ``Resources`` requested.
    :param network: ``Network`` settings.
    :param timeouts: ``Timeouts`` in seconds.
    """

    engine: Engine | None = None
    name: str = "main"
    publisher: Publisher | None = None
    env: dict[str, str] = field(default_factory=dict)
    meta: dict[str, str] = field(default_factory=dict)
    input_sources: list[InputSource] = field(default_factory=list)
    result_paths: list[ResultPath] = field(default_factory=list)
    resources: Resources | None = None
    network: Network | None = None
    timeouts: Timeouts | None = None

    def __post_init__(self) -> None:
        engine: Any = self.engine  # a spec mapping is accepted too
        if isinstance(engine, Mapping):
            self.engine = engine_from_spec(engine)
        publisher: Any = self.publisher
        if isinstance(publisher, Mapping):
            self.publisher = publisher_from_spec(publisher)
        self.env, self.meta = _mapify(self.env), _mapify(self.meta)
        self.input_sources = [
            InputSource.from_dict(i) if isinstance(i, Mapping) else i for i in _listify(self.input_sources)
        ]
        self.result_paths = [
            ResultPath.from_dict(r) if isinstance(r, Mapping) else r for r in _listify(self.result_paths)
        ]

    def to_dict(self) -> dict[str, Any]:
        # No engine fails here (AttributeError), as it always did; validate() names the field.
        out: dict[str, Any] = {"Name": self.name, "Engine": cast("Engine", self.engine).to_spec()}
        if self.publisher is not None:
            out["Publisher"] = self.publisher.to_spec()
        if self.env:
            out["Env"] = dict(self.env)
        if self.meta:
            out["Meta"] = dict(self.meta)
        if self.input_sources:
            out["InputSources"] = [i.to_dict() for i in self.input_sources]
        if self.result_paths:
            out["ResultPaths"] = [r.to_dict() for r in self.result_paths]
        for key, part in (
            ("Resources", self.resources),
            ("Network", self.network),
            ("Timeouts", self.timeouts),
        ):
            if part:
                out[key] = part.to_dict()
        return out

    def validate(self, path: str = "Task") -> None:
        check_text(self.name, f"{path}.Name", required=True)
        if self.engine is None:
            raise SpecError(f"{path}.Engine", "a task needs an Engine (e.g. Type docker)")
        if not hasattr(self.engine, "to_spec"):
            raise SpecError(f"{path}.Engine", "must be an engine object or {Type, Params}", self.engine)
        self.engine.validate(f"{path}.Engine")
        if self.publisher is not None:
            self.publisher.validate(f"{path}.Publisher")
        check_str_map(self.env, f"{path}.Env")
        for name, value in self.env.items():
            check_env_name(name, f"{path}.Env.{name}")
            if not value:
                raise SpecError(f"{path}.Env.{name}", "environment variable values must not be empty", value)
        check_str_map(self.meta, f"{path}.Meta")
        self._validate_inputs(path)
        self._validate_results(path)
        for key, part, cls in (
            ("Resources", self.resources, Resources),
            ("Network", self.network, Network),
            ("Timeouts", self.timeouts, Timeouts),
        ):
            if part is not None:
                if not isinstance(part, cls):
                    raise SpecError(f"{path}.{key}", f"must be a {cls.__name__}", part)
                part.validate(f"{path}.{key}")

    def _validate_inputs(self, path: str) -> None:
        # Go refuses exact duplicates only (pkg/models/task.go validateInputSources) and wants a
        # Target that is not blank (input_source.go). Docker also refuses a relative or a
        # repeated mount destination, so with the docker engine those fail on every node.
        docker = isinstance(self.engine, DockerEngine)
        targets: dict[str, int] = {}
        cleaned: dict[str, int] = {}
        aliases: dict[str, int] = {}
        for i, item in enumerate(as_list(self.input_sources, f"{path}.InputSources")):
            ipath = f"{path}.InputSources[{i}]"
            if not isinstance(item, InputSource):
                raise SpecError(ipath, "must be an InputSource", item)
            item.validate(ipath)
            _mount_target(self, item.target, f"{ipath}.Target", docker)
            if item.target in targets:
                raise SpecError(
                    f"{ipath}.Target",
                    f"same Target as InputSources[{targets[item.target]}]; targets must be unique",
                    item.target,
                )
            targets[item.target] = i
            _repeated_mount(self, cleaned, item.target, i, f"{ipath}.Target", "InputSources", docker)
            if item.alias:
                if item.alias in aliases:
                    raise SpecError(
                        f"{ipath}.Alias", f"same Alias as InputSources[{aliases[item.alias]}]", item.alias
                    )
                aliases[item.alias] = i

    def _validate_results(self, path: str) -> None:
        docker = isinstance(self.engine, DockerEngine)
        names: dict[str, int] = {}
        paths: dict[str, int] = {}
        cleaned: dict[str, int] = {}
        for i, item in enumerate(as_list(self.result_paths, f"{path}.ResultPaths")):
            rpath = f"{path}.ResultPaths[{i}]"
            if not isinstance(item, ResultPath):
                raise SpecError(rpath, "must be a ResultPath", item)
            item.validate(rpath)
            if item.name in names:
                raise SpecError(f"{rpath}.Name", f"same Name as ResultPaths[{names[item.name]}]", item.name)
            if item.path in paths:
                raise SpecError(f"{rpath}.Path", f"same Path as ResultPaths[{paths[item.path]}]", item.path)
            names[item.name], paths[item.path] = i, i
            _repeated_mount(self, cleaned, item.path, i, f"{rpath}.Path", "ResultPaths", docker)
        if self.result_paths and self.publisher is None:
            warn_once(
                self,
                "%s.ResultPaths is set but there is no Publisher: Bacalhau rejects "
                "this unless the network has a default publisher",
                path,
            )


def _mount_target(task: Task, target: str, path: str, docker: bool) -> None:
    if posixpath.isabs(target):
        return
    if docker:
        raise SpecError(
            path, "must be an absolute path (start with '/'): Docker mounts the input there", target
        )
    warn_once(task, "%s: %r is not an absolute path; engines other than docker may accept it", path, target)


def _repeated_mount(
    task: Task, seen: dict[str, int], value: str, index: int, path: str, what: str, docker: bool
) -> None:
    """'/a' and '/a/' pass Go's exact comparison but are one mount point for Docker."""
    clean = posixpath.normpath(value) if value else value
    if clean in seen:
        message = f"same path as {what}[{seen[clean]}] once cleaned"
        if docker:
            raise SpecError(path, f"{message}; Docker refuses a repeated mount point", value)
        warn_once(task, "%s: %r is the %s", path, value, message)
    seen[clean] = index


@dataclass(init=False)
class Job:
    """A Bacalhau job with one task.

    :param task: the task (or pass ``tasks=[task]``).
    :param name: job name; since v1.8 an upsert key within the namespace.
    :param namespace: namespace; empty means the server's default.
    :param type: ``batch`` (default), ``ops``, ``daemon`` or ``service``.
    :param priority: scheduling priority.
    :param count: executions wanted (always sent; v1.5/v1.6 default it to 0).
    :param constraints: ``Constraint`` list for node selection.
    :param labels: string map (filterable in job lists).
    :param meta: string map (``bacalhau.org/*`` keys are the server's).
    :param tasks: alternative to ``task``; Bacalhau runs exactly one.
    """

    name: str
    namespace: str
    type: str
    priority: int
    count: int
    constraints: list[Constraint]
    labels: dict[str, str]
    meta: dict[str, str]
    tasks: list[Task]

    def __init__(
        self,
        task: Task | None = None,
        *,
        name: str = "",
        namespace: str = "",
        type: str = "batch",
        priority: int = 0,
        count: int = 1,
        constraints: Sequence[Constraint | Mapping[str, Any]] | None = None,
        labels: Mapping[str, str] | None = None,
        meta: Mapping[str, str] | None = None,
        tasks: Sequence[Task] | None = None,
    ) -> None:
        if task is not None and tasks:
            raise SpecError("Tasks", "give either task or tasks, not both")
        self.tasks = [task] if task is not None else list(tasks or [])
        self.name, self.namespace, self.type = name, namespace, type
        self.priority, self.count = priority, count
        self.constraints = [
            Constraint.from_dict(c) if isinstance(c, Mapping) else c for c in (constraints or [])
        ]
        # non-mappings are kept as given so validate() can name the field
        self.labels = dict(labels) if isinstance(labels, Mapping) else (labels or {})
        self.meta = dict(meta) if isinstance(meta, Mapping) else (meta or {})

    @property
    def task(self) -> Task:
        """The (only) task."""
        if not self.tasks:
            raise SpecError("Tasks", "the job has no task")
        return self.tasks[0]

    @classmethod
    def docker(
        cls,
        image: str,
        *,
        entrypoint: Sequence[str] | None = None,
        parameters: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        inputs: Sequence[InputSource] | None = None,
        publisher: Publisher | None = None,
        result_paths: Sequence[ResultPath] | None = None,
        resources: Resources | None = None,
        network: Network | None = None,
        timeouts: Timeouts | None = None,
        working_directory: str = "",
        task_name: str = "main",
        **job_fields: Any,
    ) -> Job:
        """A job running one Docker task; ``job_fields`` are Job's keyword arguments."""
        engine = DockerEngine(
            image, list(entrypoint or []), list(parameters or []), working_directory=working_directory
        )
        task = Task(
            engine,
            task_name,
            publisher,
            dict(env or {}),
            {},
            list(inputs or []),
            list(result_paths or []),
            resources,
            network,
            timeouts,
        )
        return cls(task, **job_fields)

    # --- loading (see loading.py) -----------------------------------------------------------
    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> Job:
        """Load what ``bacalhau job run`` accepts, keys in any case; ``{"Job": {...}}`` too."""
        from airflow_provider_bacalhau.spec.loading import job_from_mapping

        job = job_from_mapping(mapping)
        job.validate()
        return job

    @classmethod
    def from_yaml(cls, text: str) -> Job:
        """Load a YAML (or JSON) job spec from text."""
        from airflow_provider_bacalhau.spec.loading import parse_text

        return cls.from_dict(parse_text(text))

    @classmethod
    def from_file(cls, path: str | os.PathLike[str]) -> Job:
        """Load a ``.yaml``, ``.yml`` or ``.json`` job file."""
        from airflow_provider_bacalhau.spec.loading import read_file

        data, where = read_file(path)
        try:
            return cls.from_dict(data)
        except SpecError as exc:
            raise SpecError(exc.field, f"{exc.message} [in {where}]", exc.value) from exc

    def copy(self) -> Job:
        """An independent copy, with the warnings already logged for this job remembered.

        Not ``from_dict(to_dict())``: that round trip parses and validates again and would
        repeat every warning.
        """
        return copy.deepcopy(self)

    # --- output -----------------------------------------------------------------------------
    def to_dict(self, *, validate: bool = True) -> dict[str, Any]:
        """The exact JSON for the API's ``Job`` field (validated first unless told not to)."""
        if validate:
            self.validate()
        out: dict[str, Any] = {}
        if self.name:
            out["Name"] = self.name
        if self.namespace:
            out["Namespace"] = self.namespace
        out["Type"] = self.type
        if self.priority:
            out["Priority"] = self.priority
        out["Count"] = self.count
        if self.constraints:
            out["Constraints"] = [c.to_dict() for c in self.constraints]
        if self.labels:
            out["Labels"] = dict(self.labels)
        if self.meta:
            out["Meta"] = dict(self.meta)
        out["Tasks"] = [t.to_dict() for t in self.tasks]
        return out

    def validate(self) -> None:
        """Raise :class:`SpecError` (naming the field) for anything Bacalhau would reject or
        silently mishandle; log warnings for parameters Bacalhau would ignore."""
        check_text(self.name, "Name")
        check_text(self.namespace, "Namespace")
        jtype = check_text(self.type, "Type", required=True)
        if jtype not in JOB_TYPES:
            if jtype.strip().lower() in JOB_TYPES:
                raise SpecError("Type", f"job type must be lower case: use {jtype.strip().lower()!r}", jtype)
            raise SpecError("Type", f"unknown job type; known: {', '.join(JOB_TYPES)}", jtype)
        check_int(self.priority, "Priority", minimum=None)
        count = check_int(self.count, "Count", minimum=None)
        if count < 0:
            raise SpecError("Count", "must be >= 0", count)
        if jtype in ("daemon", "ops") and count > 1:
            raise SpecError(
                "Count", f"{jtype} jobs run on every matching node and cannot have Count > 1", count
            )
        for i, constraint in enumerate(as_list(self.constraints, "Constraints")):
            if not isinstance(constraint, Constraint):
                raise SpecError(f"Constraints[{i}]", "must be a Constraint", constraint)
            constraint.validate(f"Constraints[{i}]")
        check_str_map(self.labels, "Labels")
        check_str_map(self.meta, "Meta")
        tasks = as_list(self.tasks, "Tasks")
        if not tasks:
            raise SpecError("Tasks", "missing job tasks: a job needs exactly one task")
        if len(tasks) > 1:
            # Accepted with a warning by SanitizeSubmission (pkg/models/job.go), which drops the
            # extra tasks: the job still runs.
            warn_once(
                self, "%s: Bacalhau runs only the first task and drops the other %d", "Tasks", len(tasks) - 1
            )
        if not isinstance(tasks[0], Task):
            raise SpecError("Tasks[0]", "must be a Task", tasks[0])
        tasks[0].validate("Tasks[0]")
        if jtype in ("ops", "daemon"):
            self._refuse_s3_inputs(jtype, tasks[0])

    @staticmethod
    def _refuse_s3_inputs(jtype: str, task: Task) -> None:
        """Job.Normalize sets Count to 0 for ops and daemon jobs (pkg/models/job.go), and the S3
        storage then calls PartitionObjects with 0 partitions, which fails with "job
        partitions/count must be greater than 0" (pkg/s3/partitioning.go): on every node."""
        for i, item in enumerate(task.input_sources):
            if isinstance(item.source, S3Source):
                raise SpecError(
                    f"Tasks[0].InputSources[{i}].Source.Type",
                    f"an s3 input cannot be used in a {jtype} job: Bacalhau sets "
                    f"Count to 0 for {jtype} jobs and the node's S3 input then fails "
                    f"('job partitions/count must be greater than 0'); use a batch "
                    f"or service job, or a urlDownload input",
                    item.source.TYPE,
                )


def coerce_job(value: Any) -> Job:
    """A ``Job`` from a Job, a mapping or YAML text (what operators accept as ``job``)."""
    if isinstance(value, Job):
        return value
    if isinstance(value, str):
        from airflow_provider_bacalhau.spec.loading import parse_text

        return Job.from_dict(as_mapping(parse_text(value, "job"), "job"))
    return Job.from_dict(as_mapping(value, "job"))
