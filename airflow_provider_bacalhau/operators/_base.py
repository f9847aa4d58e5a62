"""The shared flow of the Bacalhau job operators: submit once, wait, finish in one place.

``execute``: build the job, then find this task instance's job in the job's namespace (an ID kept by
an earlier try in Airflow 3.3's task state store, else the job name); re-attach to it while it runs,
reuse it when it already succeeded, submit a new version when it failed or belongs to another task
instance (its Meta names the submitting task instance), or submit it fresh. Then push the job ID
and the Web UI link to XCom, look once, and finish at once, defer to :class:`BacalhauJobTrigger`,
or poll in the worker. Every path ends in :meth:`JobCompletionMixin.execute_complete`
(:mod:`airflow_provider_bacalhau.waiting`, the one waiting path).
"""

from __future__ import annotations

import time
from datetime import timedelta
from typing import Any, ClassVar

from airflow.providers.common.compat.sdk import AirflowException, AirflowFailException, BaseOperator

from airflow_provider_bacalhau.errors import BacalhauApiError, SpecError
from airflow_provider_bacalhau.failures import (
    BacalhauInputError,
    BacalhauInvalidArgumentError,
    BacalhauInvalidInputError,
    BacalhauJobError,
    TemplateErrorsFailMixin,
)
from airflow_provider_bacalhau.links.job import BacalhauJobLink
from airflow_provider_bacalhau.operators._arguments import bucket_name, positive_seconds
from airflow_provider_bacalhau.operators._lineage import JobLineageMixin
from airflow_provider_bacalhau.operators._naming import (
    TASK_INSTANCE_META,
    job_name_for_context,
    task_instance_key,
)
from airflow_provider_bacalhau.operators._node_support import check_mode, check_node_support
from airflow_provider_bacalhau.waiting import (
    DEFAULT_TIMEOUT_SECONDS,
    DEFER_TIMEOUT_PADDING_SECONDS,
    JOB_ID_KEY,
    UNLIMITED_WAIT_SECONDS,
    default_deferrable,
    event_from_response,
    is_transient,
    task_label,
    wait_in_worker,
)
from airflow_provider_bacalhau.waiting.completion import JobCompletionMixin, job_accepted


class BaseBacalhauJobOperator(TemplateErrorsFailMixin, JobLineageMixin, JobCompletionMixin, BaseOperator):
    """Shared parameters and flow; subclasses implement :meth:`build_job`.

    Lineage (:class:`~airflow_provider_bacalhau.operators._lineage.JobLineageMixin`): OpenLineage
    facets, hook lineage, and asset events for declared ``outlets`` (an ``AssetAlias`` gets each
    published result's real URI).

    :param bacalhau_conn_id: Airflow connection to the Bacalhau API.
    :param aws_conn_id: AWS connection used to resolve and stage ``inputs``.
    :param inputs: extra inputs, anything
        :func:`airflow_provider_bacalhau.dataplane.inputs.resolve_inputs` accepts (an upstream
        task's results, ``s3://`` URIs, staged inputs, InputSources...); appended to the task's
        InputSources.
    :param inputs_target: where ``inputs`` are mounted (see ``resolve_inputs``).
    :param staging_bucket: bucket for re-staging archives and s3managed results used as inputs.
    :param job_name: the Bacalhau job name; by default one derived from the task instance
        (``airflow-<dag>-<task>-<run>-<map index>``), which is what makes retries safe. A fixed
        name is shared by every run: template it (``report-{{ ds }}``) to keep runs apart.
    :param namespace: Bacalhau namespace of the job (and of the name lookup); default: the job
        spec's ``Namespace``, else the connection's namespace.
    :param wait_for_termination: wait for the job to end; if False, return None once submitted.
    :param deferrable: wait in the triggerer instead of the worker; default: the
        ``[operators] default_deferrable`` setting (read when the operator is built).
    :param poll_interval: seconds between two looks at the job.
    :param timeout: wall-clock limit of the wait (seconds or timedelta); the job is stopped when
        it is reached. None means no limit (the trigger still ends after a year).
    :param fail_on_nonzero_exit: fail when an execution exits non-zero (Bacalhau itself calls
        such a job Completed).
    :param s3_endpoint: S3 endpoint as the compute nodes reach it, for the S3 inputs (``s3://``
        URIs, re-staged results) and publishers this operator writes into the job; None: the
        Bacalhau connection's ``s3_endpoint`` extra; "": none (AWS or the nodes' default).
        Never taken from the AWS connection, which is Airflow's view of S3.
    :param s3_region: the region that goes with it; None: the connection's ``s3_region``.
    :param node_support_check: before submitting, look whether some compute node reports the
        job's engine, input sources and publisher as installed: ``"warn"`` (default) logs a
        warning, ``"fail"`` fails the task with
        :class:`~airflow_provider_bacalhau.errors.NodeSupportError` before submitting (retries
        apply), ``"off"`` skips the look. Best
        effort: when the nodes cannot be listed (e.g. no ``read:node`` capability) it is skipped.
    :param stream_logs: while waiting, log the running executions' container output as it comes
        (``stdout | ...`` lines; the logs WebSocket, best effort, capped per poll interval), in
        the worker and in the triggerer alike. False logs only the final output.
    """

    template_fields: ClassVar[tuple[str, ...]] = (
        "inputs",
        "inputs_target",
        "staging_bucket",
        "job_name",
        "namespace",
        "bacalhau_conn_id",
        "aws_conn_id",
        "s3_endpoint",
        "s3_region",
    )
    operator_extra_links = (BacalhauJobLink(),)
    ui_color = "#cfe8ff"

    def __init__(
        self,
        *,
        bacalhau_conn_id: str = "bacalhau_default",
        aws_conn_id: str | None = "aws_default",
        inputs: Any = None,
        inputs_target: str = "/inputs",
        staging_bucket: str | None = None,
        job_name: str | None = None,
        namespace: str | None = None,
        wait_for_termination: bool = True,
        deferrable: bool | None = None,
        poll_interval: float = 10.0,
        timeout: float | timedelta | None = DEFAULT_TIMEOUT_SECONDS,
        fail_on_nonzero_exit: bool = True,
        s3_endpoint: str | None = None,
        s3_region: str | None = None,
        node_support_check: str = "warn",
        stream_logs: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.bacalhau_conn_id = bacalhau_conn_id
        self.aws_conn_id = aws_conn_id
        self.inputs = inputs
        self.inputs_target = inputs_target
        self.staging_bucket = staging_bucket
        self.job_name = job_name
        self.namespace = namespace
        self.wait_for_termination = wait_for_termination
        self.deferrable = default_deferrable() if deferrable is None else bool(deferrable)
        self.poll_interval = positive_seconds(poll_interval, "poll_interval")
        self.timeout = positive_seconds(timeout, "timeout")
        self.fail_on_nonzero_exit = fail_on_nonzero_exit
        self.s3_endpoint = s3_endpoint
        self.s3_region = s3_region
        self.node_support_check = check_mode(node_support_check)
        self.stream_logs = bool(stream_logs)
        self._compute_s3: Any = None
        self.bacalhau_job_id: str | None = None
        #: The job's namespace once built (operator, else spec); None: the connection's.
        self.bacalhau_namespace: str | None = None
        self._kill_reason = ""
        self.bacalhau_job_ended = False

    # -- what subclasses provide ---------------------------------------------------------------
    def build_job(self, context: Any) -> Any:
        """The job to run, as a :class:`~airflow_provider_bacalhau.spec.Job` (inputs not yet added)."""
        raise NotImplementedError

    # -- clients (one cached hook: JobCompletionMixin.hook) ----------------------------------
    def compute_s3_view(self) -> Any:
        """S3 as the compute nodes see it: the connection's extras with this operator's overrides
        (read once per task instance)."""
        if self._compute_s3 is None:
            try:
                view = self.hook.compute_s3_view().overridden(self.s3_endpoint, self.s3_region)
            except ValueError as exc:  # a malformed connection or s3_endpoint: retrying won't help
                raise BacalhauInvalidArgumentError(str(exc)) from exc
            self._compute_s3 = view
        return self._compute_s3

    def get_bacalhau_client(self, namespace: str | None = None) -> Any:
        """A client asking in ``namespace`` (default: the job's, once built, else
        ``self.namespace``, else the connection's)."""
        return self.hook.get_client(namespace=namespace or self.bacalhau_namespace or self.namespace)

    # -- the flow ------------------------------------------------------------------------------
    def execute(self, context: Any) -> list[dict] | None:
        self._kill_reason = f"Airflow task {task_label(context)} was killed"
        self.compute_s3_view()  # settings errors first, before any S3 or API work
        job = self.prepare_job(context, self.job_name or job_name_for_context(context))
        # The job's namespace (operator, else spec), else the connection's: where the name lives,
        # and where on_kill, the stop after a timeout and the trigger look for the job.
        self.bacalhau_namespace = job.namespace or None
        with self.get_bacalhau_client() as client:
            job_id, known = self._submit_or_attach(context, client, job)
            self._announce(context, job_id, ended=known is not None)
            if not self.wait_for_termination:
                self.log.info("Not waiting for Bacalhau job %s (wait_for_termination=False)", job_id)
                return None
            # Deferrable: the job was just submitted (Pending) or just read running, and the
            # trigger reads it at once; one more read here would only hold the worker slot longer.
            response = known if self.deferrable else (known or self._look_once(client, job_id))
            from airflow_provider_bacalhau.spec import JobStatus

            if response is not None and JobStatus.from_api(response).is_terminal:
                return self.execute_complete(context, event_from_response(response, self.bacalhau_namespace))
            deadline = time.time() + (self.timeout or UNLIMITED_WAIT_SECONDS)
            if self.deferrable:
                self._defer(context, job_id, deadline)
            self.log.info(
                "Waiting for Bacalhau job %s in the worker (poll every %ss)", job_id, self.poll_interval
            )
            # The waiting loop retries transient errors between polls: none inside a poll. API
            # errors that last end the wait as an "error" event, which execute_complete reports.
            event = wait_in_worker(
                client.with_max_retries(0),
                job_id,
                self.poll_interval,
                deadline,
                self.log,
                self.bacalhau_namespace,
                stream_logs=self.stream_logs,
            )
        return self.execute_complete(context, event)

    def _look_once(self, client: Any, job_id: str) -> dict | None:
        """The job's state before waiting; None after a transient error (the wait retries)."""
        try:
            return client.get_job(job_id)
        except BacalhauApiError as exc:
            if not is_transient(exc):
                raise BacalhauJobError(f"Cannot read Bacalhau job {job_id}: {exc}", job_id=job_id) from exc
            self.log.warning("Bacalhau job %s: transient API error (%s); waiting anyway", job_id, exc)
            return None

    def _defer(self, context: Any, job_id: str, deadline: float) -> None:
        from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger

        trigger = BacalhauJobTrigger(
            job_id=job_id,
            bacalhau_conn_id=self.bacalhau_conn_id,
            namespace=self.bacalhau_namespace,
            poll_interval=self.poll_interval,
            deadline=deadline,
            stop_on_kill=True,
            stop_reason=self.stop_reason(context, "the task was killed while deferred"),
            stream_logs=self.stream_logs,
        )
        padded = deadline - time.time() + DEFER_TIMEOUT_PADDING_SECONDS
        self.log.info("Deferring: the triggerer watches Bacalhau job %s", job_id)
        self.defer(trigger=trigger, method_name="execute_complete", timeout=timedelta(seconds=padded))

    def _announce(self, context: Any, job_id: str, ended: bool) -> None:
        """Make the job findable before any waiting: XCom, the extra link, the task state store.
        ``ended``: an earlier try's job, found already ended (``on_kill`` must not stop it)."""
        self.bacalhau_job_id, self.bacalhau_job_ended = job_id, ended
        context["ti"].xcom_push(key=JOB_ID_KEY, value=job_id)
        url = None
        try:
            url = self.hook.job_url(job_id)
        except Exception:  # a link is a convenience
            self.log.debug("no Web UI link for %s", job_id, exc_info=True)
        BacalhauJobLink.persist(context, job_id, url)
        if url:
            self.log.info("Bacalhau job %s: %s", job_id, url)
        store = context.get("task_state_store")
        if store is not None:
            try:
                store.set(JOB_ID_KEY, job_id)
            except Exception:  # the name lookup still protects retries
                self.log.debug("could not record the job ID in the task state store", exc_info=True)

    # -- idempotency: one job per task instance ---------------------------------------------------
    def _find_previous(self, context: Any, client: Any, name: str) -> dict | None:
        """The job named ``name`` (an earlier try's, or another task instance's), if any."""
        candidates: list[str] = []
        store = context.get("task_state_store")
        first_try = getattr(context.get("ti"), "try_number", None) == 1  # it has stored nothing
        if store is not None and not first_try:
            try:
                stored = store.get(JOB_ID_KEY)
            except Exception:
                stored = None
            if isinstance(stored, str) and stored:
                candidates.append(stored)
        candidates.append(name)
        for ref in candidates:
            try:
                response = client.get_job(ref)
            except BacalhauApiError as exc:
                if exc.is_not_found:
                    continue
                raise AirflowException(f"Cannot look up Bacalhau job {ref!r}: {exc}") from exc
            if (response.get("Job") or {}).get("Name") == name:  # lookups also match ID prefixes
                return response
        return None

    def _submit_or_attach(self, context: Any, client: Any, job: Any) -> tuple[str, dict | None]:
        """Return the job ID to follow and, when already known, its terminal answer."""
        from airflow_provider_bacalhau.spec import JobStatus

        name = job.name
        previous = self._find_previous(context, client, name)
        force = False
        if previous is not None:
            status = JobStatus.from_api(previous)
            state = status.state.value
            owner = ((previous.get("Job") or {}).get("Meta") or {}).get(TASK_INSTANCE_META)
            if owner != job.meta[TASK_INSTANCE_META]:
                self.log.warning(
                    "Bacalhau job %s (name %s, %s) belongs to another task instance (%s): "
                    "submitting a new version for this one, which stops it if still "
                    "running; give each task instance its own job_name",
                    status.job_id,
                    name,
                    state,
                    owner or "not submitted by Airflow",
                )
                force = True
            elif not status.is_terminal:
                self.log.info(
                    "Re-attaching to Bacalhau job %s (%s, version %s) submitted by an earlier try",
                    status.job_id,
                    state,
                    status.version,
                )
                return status.job_id, None
            elif job_accepted(status, self.fail_on_nonzero_exit):
                self.log.info(
                    "Bacalhau job %s (%s) already completed for this task instance: "
                    "reusing its results without running it again",
                    status.job_id,
                    name,
                )
                return status.job_id, previous
            else:
                self.log.info(
                    "Bacalhau job %s ended %s in an earlier try: submitting a new version",
                    status.job_id,
                    state,
                )
                force = True  # an identical spec would be refused with "no changes detected"
        self._add_inputs(job, client)
        check_node_support(client, job, self.node_support_check, self.log)  # NodeSupportError
        try:
            answer = client.submit_job(job, force=force)
        except BacalhauApiError as exc:
            if exc.is_no_changes:
                return self._attach_unchanged(client, name, exc), None
            raise AirflowException(f"Submitting Bacalhau job {name!r} failed: {exc}") from exc
        for warning in answer.get("Warnings") or []:
            self.log.warning("Bacalhau: %s", warning)
        job_id = answer.get("JobID")
        if not job_id:
            raise AirflowException(f"Bacalhau accepted job {name!r} but returned no JobID: {answer!r}")
        self.log.info("Submitted Bacalhau job %s (name %s)", job_id, name)
        return job_id, None

    def _attach_unchanged(self, client: Any, name: str, cause: BacalhauApiError) -> str:
        """Bacalhau already holds this exact spec under ``name``: follow that job."""
        try:
            job_id = (client.get_job(name).get("Job") or {}).get("ID")
        except BacalhauApiError as exc:
            raise AirflowException(
                f"Submitting Bacalhau job {name!r} failed: {cause}; looking it up by name failed too: {exc}"
            ) from exc
        if not job_id:
            raise AirflowException(f"Submitting Bacalhau job {name!r} failed: {cause}")
        self.log.info(
            "Bacalhau already has job %s with this exact spec (name %s): re-attaching to it", job_id, name
        )
        return job_id

    def prepare_job(self, context: Any, name: str) -> Any:
        """Build the job (inputs not yet added), name it and mark it as this task instance's."""
        try:
            # A private copy (name, Meta and inputs are set on it). Not from_dict(to_dict()):
            # that would parse and validate again, logging every warning once more.
            job = self.build_job(context).copy()
            job.validate()  # a Job object passed as ``job`` is not validated before this
        except ValueError as exc:  # SpecError included
            # A bad spec does not get better by retrying: fail without retries.
            raise AirflowFailException(f"Invalid Bacalhau job spec: {exc}") from exc
        if job.name and job.name != name and not self.job_name:
            self.log.info(
                "Replacing the spec's Name %r with %r (one name per task instance keeps "
                "retries from duplicating the job; pass job_name= to choose)",
                job.name,
                name,
            )
        job.name = name
        if self.namespace:
            job.namespace = self.namespace
        job.meta = {**job.meta, TASK_INSTANCE_META: task_instance_key(context)}
        # Imported here: the list scan is the triggerer's, not needed to parse a DAG file.
        from airflow_provider_bacalhau.waiting.list_scan import WATCH_LABEL, WATCH_LABEL_VALUE

        # Lets one triggerer watch all its jobs through one list request per poll (waiting/list_scan.py).
        job.labels = {**job.labels, WATCH_LABEL: WATCH_LABEL_VALUE}
        return job

    def _add_inputs(self, job: Any, client: Any) -> None:
        """Append the resolved ``inputs`` and validate the whole job (before any submit)."""
        try:
            job.task.input_sources.extend(self._resolve_inputs(client))
            job.validate()
        except SpecError as exc:
            raise AirflowFailException(f"Invalid Bacalhau job spec: {exc}") from exc
        except ValueError as exc:  # a configuration error, e.g. a missing staging_bucket
            raise BacalhauInvalidInputError(f"Invalid inputs: {exc}", job_name=job.name) from exc
        except Exception as exc:  # S3 or Bacalhau I/O: a retry may succeed
            raise BacalhauInputError(f"Resolving inputs failed: {exc}", job_name=job.name) from exc

    def _resolve_inputs(self, client: Any) -> list:
        if self.inputs is None or self.inputs == [] or self.inputs == "":
            return []
        if not isinstance(self.inputs_target, str) or not self.inputs_target.startswith("/"):
            raise SpecError("inputs_target", "must be an absolute path in the container", self.inputs_target)
        if self.staging_bucket is not None:
            bucket_name(self.staging_bucket, "staging_bucket")
        from airflow_provider_bacalhau.dataplane.inputs import resolve_inputs

        return list(
            resolve_inputs(
                self.inputs,
                target=self.inputs_target,
                aws_conn_id=self.aws_conn_id,
                bacalhau_client=client,
                staging_bucket=self.staging_bucket,
                compute_s3=self.compute_s3_view(),
            )
        )

    # -- cancelling ----------------------------------------------------------------------------
    def on_kill(self) -> None:
        """Stop the Bacalhau job when the running task is killed on its worker (not once the
        task has seen it end: :meth:`JobCompletionMixin.stop_killed_job`)."""
        self.stop_killed_job(self._kill_reason or f"Airflow task {self.dag_id}.{self.task_id} was killed")
