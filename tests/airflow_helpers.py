"""Shared helpers for tests that run real Airflow (SQLite metadata DB, ``dag.test()``).

Usage in a test module::

    from airflow_helpers import airflow_db, run_dag  # noqa: F401  (airflow_db is a fixture)

    def test_something(airflow_db, devstack_env):
        with DAG("my_dag", schedule=None, start_date=datetime(2024, 1, 1)) as dag:
            ...
        result = run_dag(dag)
        assert result.state == "success"
        assert result.ti_states["my_task"] == "success"
        assert result.xcom("my_task") == [...]

``run_dag`` writes the DAG to the metadata DB first: a DAG defined inside a test module is not in
any DAG bundle, and ``dag.test()`` would otherwise stop with "dag is not serialized".
The root conftest sets ``AIRFLOW_HOME`` (a temp dir) before Airflow is imported.
"""

from __future__ import annotations

import contextlib
import itertools
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

_DB_READY = False
_COUNTER = itertools.count(1)


def _airflow_version() -> tuple[int, int]:
    import airflow

    major, minor = airflow.__version__.split(".")[:2]
    return int(major), int(minor)


#: The Airflow these tests run on (the compatibility lanes run 2.11, 3.0 and 3.3: docs/compat.rst).
AIRFLOW_VERSION = _airflow_version()
AIRFLOW_V3 = AIRFLOW_VERSION >= (3, 0)


def requires_airflow(version: tuple[int, int], lacking: str) -> pytest.MarkDecorator:
    """Skip a test (or a module, as ``pytestmark``) on an Airflow older than ``version``;
    ``lacking`` says what the older versions do not have, for the skip reason."""
    return pytest.mark.skipif(
        version > AIRFLOW_VERSION,
        reason=f"needs Airflow >= {version[0]}.{version[1]} ({lacking}); this is "
        f"{AIRFLOW_VERSION[0]}.{AIRFLOW_VERSION[1]}",
    )


#: For tests on the real deployment (tests/airflow_deployment.py), which starts ``airflow api-server``.
needs_api_server = requires_airflow(
    (3, 0), "the api-server and its /api/v2 REST API, which the deployment harness drives; Airflow 2 has none"
)


def init_airflow_db() -> None:
    """Create the SQLite metadata DB once per process and register the DAG bundles (Airflow 3)."""
    global _DB_READY
    if _DB_READY:
        return
    from airflow.utils import db
    from airflow.utils.session import create_session

    db.initdb()
    if AIRFLOW_V3:
        from airflow.dag_processing.bundles.manager import DagBundlesManager

        with create_session() as session:
            DagBundlesManager().sync_bundles_to_db(session=session)
    _DB_READY = True


@pytest.fixture(scope="session")
def airflow_db() -> None:
    """Session fixture: an initialised Airflow metadata DB."""
    init_airflow_db()


def unique_dag_id(prefix: str) -> str:
    """DAG ids must not clash between tests sharing one DB (run ids embed time, not the test)."""
    return f"{prefix}_{next(_COUNTER)}"


def sync_dag(dag: Any) -> None:
    """Write ``dag`` to the metadata DB as the DAG processor would."""
    init_airflow_db()
    if not AIRFLOW_V3:  # Airflow 2's dag.test() runs a DAG object: the DagModel row is enough
        dag.sync_to_db()
        return
    from airflow.dag_processing.collection import update_dag_parsing_results_in_db
    from airflow.serialization.serialized_objects import LazyDeserializedDAG
    from airflow.utils.session import create_session

    with create_session() as session:
        if AIRFLOW_VERSION < (
            3,
            1,
        ):  # 3.0: the DAG object itself is written (no LazyDeserializedDAG.from_dag)
            from airflow.models.dag import DAG as SchedulerDAG
            from airflow.models.serialized_dag import SerializedDagModel
            from airflow.serialization.serialized_objects import SerializedDAG

            scheduler_dag = SerializedDAG.deserialize_dag(SerializedDAG.serialize_dag(dag))
            SchedulerDAG.bulk_write_to_db("dags-folder", None, [scheduler_dag], session=session)
            SerializedDagModel.write_dag(dag, bundle_name="dags-folder", session=session)
            return
        update_dag_parsing_results_in_db(
            "dags-folder", None, [LazyDeserializedDAG.from_dag(dag)], {}, None, set(), session=session
        )


def sdk_task_instance(ti: Any) -> Any:
    """The Task SDK's view of a task instance row (Airflow 3), as a worker is handed it."""
    from airflow.sdk.api.datamodels._generated import TaskInstance as TaskInstanceSDK

    return TaskInstanceSDK(
        id=ti.id,
        task_id=ti.task_id,
        dag_id=ti.dag_id,
        run_id=ti.run_id,
        try_number=ti.try_number,
        map_index=ti.map_index,
        dag_version_id=ti.dag_version_id,
    )


def create_run(dag: Any) -> tuple[str, str]:
    """A running DagRun of ``dag`` (synced first) with its task instances, as the scheduler makes
    one; returns ``(dag_id, run_id)``."""
    from airflow.utils.session import create_session
    from airflow.utils.state import DagRunState
    from airflow.utils.timezone import utcnow
    from airflow.utils.types import DagRunType

    sync_dag(dag)
    now = utcnow()
    run_id = f"manual__{now.isoformat()}"
    with create_session() as session:
        if not AIRFLOW_V3:
            dag.create_dagrun(
                state=DagRunState.RUNNING,
                execution_date=now,
                run_id=run_id,
                run_type=DagRunType.MANUAL,
                data_interval=(now, now),
                session=session,
            )
            return dag.dag_id, run_id
        from airflow.utils.types import DagRunTriggeredByType

        try:
            from airflow.serialization.serialized_objects import DagSerialization as Serializer
        except ImportError:  # Airflow < 3.3
            from airflow.serialization.serialized_objects import SerializedDAG as Serializer
        scheduler_dag = Serializer.deserialize_dag(Serializer.serialize_dag(dag))
        if AIRFLOW_VERSION < (3, 1):
            scheduler_dag.create_dagrun(
                run_id=run_id,
                logical_date=now,
                data_interval=(now, now),
                run_after=now,
                run_type=DagRunType.MANUAL,
                triggered_by=DagRunTriggeredByType.TEST,
                state=DagRunState.RUNNING,
                session=session,
            )
        else:
            from airflow.models.dagrun import get_or_create_dagrun

            get_or_create_dagrun(
                dag=scheduler_dag,
                run_id=run_id,
                logical_date=now,
                data_interval=(now, now),
                run_after=now,
                conf=None,
                triggered_by=DagRunTriggeredByType.TEST,
                triggering_user_name="tests",
                start_date=now,
                session=session,
            )
    return dag.dag_id, run_id


@dataclass
class DagRunResult:
    """What a test needs after ``dag.test()``: states and XComs."""

    dag_run: Any
    state: str
    ti_states: dict[str, str] = field(default_factory=dict)
    _tis: dict[tuple[str, int], Any] = field(default_factory=dict)

    def xcom(self, task_id: str, key: str = "return_value", map_index: int = -1) -> Any:
        ti = self._tis[(task_id, map_index)]
        return ti.xcom_pull(task_ids=task_id, key=key, map_indexes=map_index)

    def ti(self, task_id: str, map_index: int = -1) -> Any:
        return self._tis[(task_id, map_index)]


def fresh_task_stream() -> None:
    """Airflow 2's ``dag.test()`` adds a stdout handler to ``airflow.task`` once per process, bound
    to whatever ``sys.stdout`` was then (an earlier test's capture): drop it so this test's output
    gets the task log lines. Airflow 3 logs through structlog and needs nothing."""
    if AIRFLOW_V3:
        return
    import sys

    task_logger = logging.getLogger("airflow.task")
    for handler in list(task_logger.handlers):
        if type(handler) is logging.StreamHandler and handler.stream is not sys.stdout:
            task_logger.removeHandler(handler)


def run_dag(dag: Any, *, run_conf: dict | None = None, **test_kwargs: Any) -> DagRunResult:
    """Sync ``dag`` to the DB, run it with ``dag.test()`` and collect states and XComs.

    ``ti_states`` is keyed by task id (``task_id[i]`` for mapped instances).
    """
    sync_dag(dag)
    fresh_task_stream()
    dag_run = dag.test(run_conf=run_conf, **test_kwargs)
    result = DagRunResult(dag_run=dag_run, state=str(getattr(dag_run.state, "value", dag_run.state)))
    for ti in dag_run.get_task_instances():
        index = ti.map_index if ti.map_index is not None else -1
        label = ti.task_id if index < 0 else f"{ti.task_id}[{index}]"
        result.ti_states[label] = str(getattr(ti.state, "value", ti.state))
        result._tis[(ti.task_id, index)] = ti
    return result


# -- minimal stand-ins, for the few tests where a real TaskInstance is impractical -----------------


class FakeTaskInstance:
    """Just what the Bacalhau operators use of a TaskInstance: identity and ``xcom_push``."""

    def __init__(
        self,
        dag_id: str = "dag",
        task_id: str = "task",
        run_id: str = "run-1",
        map_index: int = -1,
        try_number: int = 1,
    ) -> None:
        self.dag_id, self.task_id, self.run_id = dag_id, task_id, run_id
        self.map_index, self.try_number = map_index, try_number
        self.xcoms: dict[str, Any] = {}

    def xcom_push(self, key: str, value: Any) -> None:
        self.xcoms[key] = value


class FakeStateStore:
    """Airflow 3.3's ``task_state_store`` accessor, in memory (survives between tries of a test)."""

    def __init__(self) -> None:
        self.values: dict[str, Any] = {}
        self.reads = 0

    def get(self, key: str, default: Any = None) -> Any:
        self.reads += 1
        return self.values.get(key, default)

    def set(self, key: str, value: Any, **_: Any) -> None:
        self.values[key] = value


def fake_context(ti: FakeTaskInstance | None = None, store: FakeStateStore | None = None) -> dict:
    ti = ti or FakeTaskInstance()
    context: dict[str, Any] = {"ti": ti, "task_instance": ti, "run_id": ti.run_id}
    if store is not None:
        context["task_state_store"] = store
    return context


class LogRecorder(logging.Handler):
    """Collects what the provider logs, whatever Airflow did to logging.

    Airflow 3 operators and triggers log through structlog (not stdlib handlers, so ``caplog``
    misses them, and their output stream is bound when logging is first configured, so
    ``capsys`` may miss them too). This records structlog events and stdlib records alike.
    """

    DEFAULT_LOGGERS = ("airflow.task.operators", "airflow_provider_bacalhau")

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.entries: list[tuple[str, str]] = []  # (level, message)
        self._structlog: list[dict] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.entries.append((record.levelname.lower(), record.getMessage()))

    def _all(self) -> list[tuple[str, str]]:
        events = [(str(e.get("log_level", "")), str(e.get("event", ""))) for e in self._structlog]
        return self.entries + events

    def messages(self, level: str | None = None) -> list[str]:
        return [msg for lvl, msg in self._all() if level is None or lvl == level.lower()]

    @property
    def text(self) -> str:
        return "\n".join(self.messages())


@contextlib.contextmanager
def record_logs(*names: str) -> Iterator[LogRecorder]:
    """Record the provider's log lines (structlog and stdlib) inside the block."""
    try:
        from structlog.testing import capture_logs
    except ImportError:  # Airflow 2 does not use structlog
        capture_logs = None

    recorder = LogRecorder()
    loggers = [logging.getLogger(n) for n in (names or LogRecorder.DEFAULT_LOGGERS)]
    saved = [(lg, lg.level) for lg in loggers]
    for lg in loggers:
        lg.addHandler(recorder)
        if lg.getEffectiveLevel() > logging.INFO:
            lg.setLevel(logging.INFO)
    try:
        if capture_logs is None:  # Airflow 2: stdlib logging only
            yield recorder
        else:
            with capture_logs() as events:
                recorder._structlog = events
                yield recorder
    finally:
        for lg, level in saved:
            lg.removeHandler(recorder)
            lg.setLevel(level)
