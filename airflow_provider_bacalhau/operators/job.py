"""Operators that run a Bacalhau job: from a spec (dict, ``Job`` or job file) or from Docker arguments.

Both share :class:`BaseBacalhauJobOperator`: deterministic job names (retries never duplicate a
job), the Web UI link and job ID in XCom before waiting, deferrable or in-worker waiting, one
completion path, and the published results (``PublishedResult.to_dict()`` list) as return value,
ready to be the next task's ``inputs``.
"""

from __future__ import annotations

import os
from typing import Any, ClassVar

from airflow_provider_bacalhau.operators._base import BaseBacalhauJobOperator
from airflow_provider_bacalhau.operators._building import build_docker_job
from airflow_provider_bacalhau.waiting import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFER_TIMEOUT_PADDING_SECONDS,
    JOB_ID_KEY,
)

__all__ = [
    "DEFAULT_TIMEOUT_SECONDS",
    "DEFER_TIMEOUT_PADDING_SECONDS",
    "JOB_ID_KEY",
    "BacalhauDockerJobOperator",
    "BacalhauJobOperator",
    "BaseBacalhauJobOperator",
]

JOB_FILE_EXTENSIONS = (".yaml", ".yml", ".json")


class BacalhauJobOperator(BaseBacalhauJobOperator):
    """Run any Bacalhau job.

    ``job`` is a mapping, a :class:`~airflow_provider_bacalhau.spec.Job`, or the path of a
    ``.yaml``/``.yml``/``.json`` job file (relative to the DAG folder or ``template_searchpath``).
    A job file is a Jinja template: ``{{ params.x }}``, ``{{ ds }}``... are rendered before the
    YAML/JSON is parsed, so parameters of a run triggered from the UI reach the job. Only ``job``
    may name a template file: a templated value of another field that ends in ``.json`` (say an
    ``s3://.../x.json`` input) stays a plain value.

    The job's ``Name`` is replaced by one derived from the task instance unless ``job_name`` is
    given (see :class:`BaseBacalhauJobOperator`).

    :param job: the job spec (mapping, ``Job``, YAML/JSON text or job file path).
    """

    template_fields: ClassVar[tuple[str, ...]] = ("job", *BaseBacalhauJobOperator.template_fields)
    # No template_ext: Airflow would take *every* templated string ending in .json/.yaml for a file
    # name (an s3://.../x.json input too). The job file is read and rendered here, explicitly.
    template_ext: ClassVar[tuple[str, ...]] = ()
    template_fields_renderers: ClassVar[dict[str, str]] = {"job": "yaml"}

    def __init__(self, *, job: Any, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.job = job
        #: The job file's name, kept for messages once its text has replaced ``job``.
        self.job_file: str | None = job.strip() if _is_job_file_name(job) else None

    def build_job(self, context: Any) -> Any:
        from airflow_provider_bacalhau.errors import SpecError
        from airflow_provider_bacalhau.spec import coerce_job

        job = self.job
        try:
            if _is_job_file_name(job):  # not read at parse time (say a job built outside a DagBag)
                job = self._read_job_file(job.strip(), context)
            return coerce_job(job)
        except SpecError as exc:
            if not self.job_file or "[in " in exc.message:
                raise
            raise SpecError(exc.field, f"{exc.message} [in job file {self.job_file}]", exc.value) from exc

    def template_error_location(self) -> str:
        return f"job file {self.job_file}" if self.job_file else super().template_error_location()

    def _read_job_file(self, path: str, context: Any) -> Any:
        """The job file's text, rendered with ``context``; a ``Job`` for an absolute path that the
        template loader does not know (read as it is, not rendered)."""
        import jinja2

        from airflow_provider_bacalhau.errors import SpecError
        from airflow_provider_bacalhau.spec import Job

        text = self._job_file_source(path)
        if text is not None:
            self.log.info("Rendering job file %s", path)
            try:
                return self.render_template(text, context)
            except jinja2.TemplateError as exc:
                line = f" at line {exc.lineno}" if getattr(exc, "lineno", None) else ""
                raise SpecError(
                    "job", f"Jinja template error{line}: {exc.__class__.__name__}: {exc}", path
                ) from exc
        if os.path.isfile(path):  # an absolute path Jinja's loader could not find: not templated
            self.log.info("Reading job file %s (outside the template search path: not rendered)", path)
            return Job.from_file(path)
        raise SpecError(
            "job",
            "job file not found in the DAG folder, the DAG's template_searchpath, or as an absolute path",
            path,
        )

    def _job_file_source(self, path: str) -> str | None:
        """The text of ``path`` through the DAG's template loader (DAG folder, template_searchpath)."""
        env = self.get_template_env()
        if env.loader is None:
            return None
        try:
            return env.loader.get_source(env, path)[0]
        except Exception:  # jinja2.TemplateNotFound, or a path the loader refuses
            self.log.debug("job file %s not found by the template loader", path, exc_info=True)
            return None

    def resolve_template_files(self) -> None:
        """Read the job file at DAG parse time, so Airflow renders (and shows) its text like any
        templated field (only ``job``: other fields never name a template file)."""
        if _is_job_file_name(self.job):
            text = self._job_file_source(self.job.strip())
            if text is not None:
                self.job = text
        self.prepare_template()


def _is_job_file_name(job: Any) -> bool:
    return isinstance(job, str) and "\n" not in job.strip() and job.strip().endswith(JOB_FILE_EXTENSIONS)


class BacalhauDockerJobOperator(BaseBacalhauJobOperator):
    """Run a Docker container as a Bacalhau job, described by arguments.

    :param image: Docker image (required).
    :param entrypoint: overrides the image's entrypoint (a list, or one string).
    :param parameters: the command (Docker ``Cmd``), a list or one string.
    :param env: environment variables for the container, ``{"NAME": "value"}`` or
        ``["NAME=value"]`` (Docker engine ``EnvironmentVariables``; not ``BACALHAU_*``).
    :param working_dir: absolute working directory in the container.
    :param publisher: where results go: a spec publisher, ``{"Type", "Params"}``, a flat mapping
        like ``{"type": "s3", "bucket": "b", "key": "out/{jobID}/", "encoding": "plain"}``,
        ``"s3managed"``, ``"local"`` or ``"s3://bucket/prefix/"``. None publishes nothing. An s3
        publisher without an Endpoint gets the compute-side ``s3_endpoint``/``s3_region``.
    :param result_paths: ``{"name": "/path"}`` or a list of ``ResultPath``; default
        ``{"outputs": "/outputs"}`` when a publisher is set.
    :param resources: ``Resources`` or a mapping such as ``{"cpu": "1", "memory": "1gb"}`` (kept
        as ``job_resources``: ``resources`` on an operator means Airflow executor resources).
    :param timeouts: ``Timeouts`` or a mapping such as ``{"execution_timeout": 600}`` (seconds).
    :param count: number of executions (batch jobs).
    :param constraints: node constraints, ``Constraint`` or ``{"key", "operator", "values"}``.
    :param labels: job labels.
    :param network: ``Network``, a mapping, or a type word (``"None"``, ``"HTTP"``, ``"Bridge"``...).
    :param job_type: ``batch`` (default) or ``ops``.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "image",
        "entrypoint",
        "parameters",
        "env",
        "working_dir",
        "publisher",
        "result_paths",
        "job_resources",
        "timeouts",
        "count",
        "constraints",
        "labels",
        "network",
        *BaseBacalhauJobOperator.template_fields,
    )

    def __init__(
        self,
        *,
        image: str,
        entrypoint: list[str] | str | None = None,
        parameters: list[str] | str | None = None,
        env: dict[str, str] | list[str] | None = None,
        working_dir: str | None = None,
        publisher: Any = None,
        result_paths: Any = None,
        resources: Any = None,
        timeouts: Any = None,
        count: int = 1,
        constraints: Any = None,
        labels: dict[str, str] | None = None,
        network: Any = None,
        job_type: str = "batch",
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.image = image
        self.entrypoint = entrypoint
        self.parameters = parameters
        self.env = env
        self.working_dir = working_dir
        self.publisher = publisher
        self.result_paths = result_paths
        # BaseOperator.resources means executor resources: keep Bacalhau's under another attribute.
        self.job_resources = resources
        self.timeouts = timeouts
        self.count = count
        self.constraints = constraints
        self.labels = labels
        self.network = network
        self.job_type = job_type

    def build_job(self, context: Any) -> Any:
        return build_docker_job(
            image=self.image,
            entrypoint=self.entrypoint,
            parameters=self.parameters,
            env=self.env,
            working_dir=self.working_dir,
            publisher=self.publisher,
            result_paths=self.result_paths,
            resources=self.job_resources,
            timeouts=self.timeouts,
            count=self.count,
            constraints=self.constraints,
            labels=self.labels,
            namespace=self.namespace,
            network=self.network,
            job_type=self.job_type,
            compute_s3=self.compute_s3_view(),
        )
