"""Live container output in the task log, against the devstack with real Docker jobs: in Airflow
runs (``dag.test()``, deferrable and in the worker), through broken, stalled and absent streams."""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator
from datetime import datetime

import pytest
from airflow.providers.common.compat.sdk import DAG
from airflow_helpers import airflow_db, run_dag, unique_dag_id  # noqa: F401  (airflow_db: fixture)
from devstack_helpers import busybox_job

from airflow_provider_bacalhau.client.aio import close_shared_http_clients
from airflow_provider_bacalhau.operators import BacalhauDockerJobOperator
from airflow_provider_bacalhau.triggers.job import BacalhauJobTrigger
from airflow_provider_bacalhau.waiting.log_follower import DRAIN_SECONDS

pytestmark = pytest.mark.docker

LOGS = "GET /api/v1/orchestrator/jobs/{id}/logs"
#: Prints ``tick <i> <uptime>`` once a second: /proc/uptime is the host kernel's clock, so the
#: delay from print to log line can be measured here (10 ms resolution).
TICKS = (
    'for i in $(seq 1 {n}); do echo "tick $i $(cut -d" " -f1 /proc/uptime)"; '
    'echo "warn $i" >&2; sleep {pause}; done'
)


def uptime() -> float:
    with open("/proc/uptime") as handle:
        return float(handle.read().split()[0])


@contextlib.contextmanager
def timed_logs() -> Iterator[list[tuple[float, str]]]:
    """(host uptime when logged, message) of every provider log line, stdlib or structlog (Airflow
    3's task logging; Airflow 2 logs through the stdlib only and does not install structlog)."""
    try:
        import structlog
    except ImportError:
        structlog = None

    entries: list[tuple[float, str]] = []

    def capture(_logger, _method, event_dict):
        event, args = str(event_dict.get("event", "")), event_dict.get("positional_args")
        entries.append((uptime(), event % args if args else event))
        raise structlog.DropEvent

    class Handler(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            entries.append((uptime(), record.getMessage()))

    handler = Handler(level=logging.INFO)
    loggers = [logging.getLogger(n) for n in ("airflow.task.operators", "airflow_provider_bacalhau")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.addHandler(handler)
        lg.setLevel(logging.INFO)
    processors = structlog.get_config()["processors"] if structlog else []
    saved = processors.copy()
    if structlog:
        processors.clear()
        processors.append(capture)
        structlog.configure(processors=processors)
    try:
        yield entries
    finally:
        if structlog:
            processors.clear()
            processors.extend(saved)
            structlog.configure(processors=processors)
        for lg, level in zip(loggers, levels, strict=True):
            lg.removeHandler(handler)
            lg.setLevel(level)


def ticks(entries: list[tuple[float, str]]) -> list[tuple[int, float, float]]:
    """(i, printed at, logged at) for each streamed ``tick`` line, in log order."""
    found = []
    for logged, message in entries:
        match = re.fullmatch(r"stdout \| tick (\d+) ([\d.]+)", message)
        if match:
            found.append((int(match[1]), float(match[2]), logged))
    return found


def delays(found: list[tuple[int, float, float]]) -> list[float]:
    return sorted(logged - printed for _, printed, logged in found)


def seconds_since_the_end(client, job_id: str) -> float:
    """From the job's last state change (its end; the devstack shares this machine's clock) to
    now: what a stalled stream could add, free of the container's own start-up time under load."""
    return time.time() - client.get_job(job_id, include=None)["Job"]["ModifyTime"] / 1e9


#: The end is noticed within a poll (0.5 s here), then the follower drains for at most
#: DRAIN_SECONDS; plus 1.5 s for a loaded 2-core machine.
END_BOUND = 0.5 + DRAIN_SECONDS + 1.5


def percentile(values: list[float], share: float) -> float:
    return values[min(len(values) - 1, round(share * (len(values) - 1)))]


@pytest.mark.parametrize("deferrable", [True, False], ids=["deferrable", "in-worker"])
def test_lines_reach_the_task_log_while_the_job_runs(airflow_db, devstack_env, deferrable):
    with DAG(unique_dag_id("live_logs"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        BacalhauDockerJobOperator(
            task_id="ticks",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters=[TICKS.format(n=8, pause=1)],
            deferrable=deferrable,
            poll_interval=2,
            timeout=120,
        )
    with timed_logs() as entries:
        result = run_dag(dag)
    assert result.state == "success", result.ti_states
    found = ticks(entries)
    assert [i for i, _, _ in found] == list(range(1, 9)), [m for _, m in entries]  # each once, in order
    last_printed = found[-1][1]
    assert found[0][2] < last_printed - 3, "the first line was not logged while the container ran"
    messages = [m for _, m in entries]
    assert messages.count("stderr | warn 1") == 1 and "stderr | warn 8" in messages
    terminal = next(t for t, m in entries if "is terminal" in m)
    assert all(logged <= terminal for _, _, logged in found[:-1])
    # The final output does not repeat what was streamed.
    assert not any("tick 1" in m for m in messages if not m.startswith("stdout | "))
    assert any(re.fullmatch(r"stdout of e-\S+: shown in the live log above", m) for m in messages)
    streamed = delays([f for f in found if f[0] > 1])
    print(
        f"\ndeferrable={deferrable}: delay from print to task log, lines 2-8: median "
        f"{percentile(streamed, 0.5):.3f} s, max {streamed[-1]:.3f} s"
    )


def test_turned_off_only_the_final_output_is_logged(airflow_db, devstack_env):
    with DAG(unique_dag_id("live_logs_off"), schedule=None, start_date=datetime(2024, 1, 1)) as dag:
        BacalhauDockerJobOperator(
            task_id="ticks",
            image="busybox",
            entrypoint=["sh", "-c"],
            parameters=[TICKS.format(n=2, pause=1)],
            deferrable=True,
            poll_interval=0.5,
            timeout=120,
            stream_logs=False,
        )
    with timed_logs() as entries:
        result = run_dag(dag)
    assert result.state == "success"
    messages = [m for _, m in entries]
    assert not ticks(entries) and not any(" | " in m for m in messages)
    assert any(m.startswith("stdout of e-") and "tick 2" in m for m in messages)


@pytest.fixture
def anyio_backend():
    return "asyncio"


async def watch(job_id: str, poll_interval: float = 0.5) -> dict:
    trigger = BacalhauJobTrigger(
        job_id, poll_interval=poll_interval, deadline=time.time() + 90, stream_logs=True
    )
    try:
        [event] = [e.payload async for e in trigger.run()]
        return event
    finally:
        await close_shared_http_clients()


@pytest.mark.anyio
async def test_broken_streams_are_reconnected_without_a_duplicate_line(devstack_env, devstack, client):
    # Every other handshake refused (503), and every other stream cut after its first frame.
    devstack.set_faults(seed=3, routes={LOGS: {"error_rate": 0.35, "drop_rate": 0.35, "drop_after": True}})
    try:
        job_id = client.submit_job(busybox_job(TICKS.format(n=6, pause=0.5)))["JobID"]
        with timed_logs() as entries:
            event = await watch(job_id)
        rule = devstack._admin("GET", "/devstack/v1/faults")  # what was injected
    finally:
        devstack.clear_faults()
    assert event["status"] == "success", event["message"]
    assert [i for i, _, _ in ticks(entries)] == list(range(1, 7)), [m for _, m in entries]
    messages = [m for _, m in entries]
    assert [m for m in messages if m.startswith("stderr | warn")] == [
        f"stderr | warn {i}" for i in range(1, 7)
    ]
    assert rule["routes"][LOGS]["injected"] >= 2, rule  # the faults did happen
    assert any("live log of execution" in m and "reconnecting" in m for m in messages)
    # Every character of stdout was taken once (the last connection may itself have broken, so
    # "complete" is not asserted here).
    (execution,) = event["job"]["Executions"]["Items"]
    (streamed,) = event["streamed"].values()
    assert streamed["stdout"] == len(execution["RunOutput"]["Stdout"])


def test_a_failed_execution_streams_and_its_failure_still_explains_itself(devstack_env, client):
    from airflow.providers.common.compat.sdk import AirflowException
    from airflow_helpers import FakeTaskInstance, fake_context

    from airflow_provider_bacalhau.operators import BacalhauJobOperator

    # Fails when publishing (nothing listens on port 9), so Bacalhau keeps no RunOutput.
    job = busybox_job(
        "echo 'out: step 1'; sleep 1; echo 'err: quota' >&2; exit 3",
        publisher={
            "Type": "s3",
            "Params": {"Bucket": "results", "Key": "x/", "Endpoint": "http://127.0.0.1:9"},
        },
    )
    ti = FakeTaskInstance(dag_id="live_logs", task_id="fails", run_id=f"run-{time.time_ns()}")
    op = BacalhauJobOperator(task_id="fails", job=job, poll_interval=0.3, deferrable=False)
    with timed_logs() as entries, pytest.raises(AirflowException) as failed:
        op.execute(fake_context(ti))
    messages = [m for _, m in entries]
    # The node runs a failing job twice: two executions, so each line names its execution.
    assert any(re.fullmatch(r"\[e-\w{8}\] stdout \| out: step 1", m) for m in messages), messages
    assert any(re.fullmatch(r"\[e-\w{8}\] stderr \| err: quota", m) for m in messages)
    # The failure message keeps the cause and the output's tail (read from the logs endpoint, as
    # without the live log): it is what callbacks and the UI show.
    message = str(failed.value)
    assert "failed to publish result" in message and "err: quota" in message and "(logs endpoint" in message


@pytest.mark.anyio
@pytest.mark.parametrize(
    "fault",
    [{"latency": 60}, {"every": 1, "action": "drop"}, {"every": 1, "status": 500}],
    ids=["stalled", "absent", "erroring"],
)
async def test_a_stalled_or_absent_stream_neither_fails_nor_delays_the_end(
    devstack_env, devstack, client, fault
):
    devstack.set_faults(routes={LOGS: fault})
    try:
        job_id = client.submit_job(busybox_job("echo only-line; sleep 2"))["JobID"]
        with timed_logs() as entries:
            event = await watch(job_id, poll_interval=0.5)
        after_end = seconds_since_the_end(client, job_id)
    finally:
        devstack.clear_faults()
    assert event["status"] == "success", event["message"]
    assert after_end < END_BOUND, after_end
    messages = [m for _, m in entries]
    assert (
        "stdout | only-line" not in messages and f"Bacalhau job {job_id} is terminal: Completed" in messages
    )
    assert event["streamed"] == {}  # nothing shown live: the completion step shows the whole output


def test_the_worker_wait_ends_on_time_with_a_stalled_stream(devstack_env, devstack, client):
    from airflow_provider_bacalhau.waiting import wait_in_worker

    devstack.set_faults(routes={LOGS: {"latency": 60}})
    try:
        job_id = client.submit_job(busybox_job("echo only-line; sleep 2"))["JobID"]
        event = wait_in_worker(
            client, job_id, 0.5, time.time() + 60, logging.getLogger("test.live"), stream_logs=True
        )
        after_end = seconds_since_the_end(client, job_id)
    finally:
        devstack.clear_faults()
    assert event["status"] == "success" and event["streamed"] == {}
    assert after_end < END_BOUND, after_end


@pytest.mark.anyio
async def test_a_flood_of_output_is_capped_with_a_note(devstack_env, client):
    from airflow_provider_bacalhau.waiting.live_logs import MAX_LINES_PER_INTERVAL

    job_id = client.submit_job(busybox_job("seq 1 5000; sleep 1"))["JobID"]
    with timed_logs() as entries:
        event = await watch(job_id, poll_interval=8)  # one cap window holds all the output
    assert event["status"] == "success", event["message"]
    streamed = [m for _, m in entries if re.match(r"std(out|err) \| ", m)]
    assert len(streamed) == MAX_LINES_PER_INTERVAL  # stdout lines, and the devstack's image note on stderr
    numbers = [int(m.split(" | ")[1]) for m in streamed if m.startswith("stdout")]
    assert numbers == list(range(1, len(numbers) + 1)) and len(numbers) >= MAX_LINES_PER_INTERVAL - 2
    [note] = [m for _, m in entries if m.startswith("... ")]
    assert f"... {5000 - len(numbers)} line(s)" in note and "not shown" in note
