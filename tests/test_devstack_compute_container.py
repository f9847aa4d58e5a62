"""The devstack compute node's container lifecycle on a real Docker Engine: timeouts, cancel,
environment and resource limits, image aliases, several executions at once.

Fixtures and helpers come from test_devstack_compute (inputs and publishers are tested there).
"""

from __future__ import annotations

import threading
import time

from test_devstack_compute import Recorder, bucket, docker_host, docker_job, node, run, s3  # noqa: F401


def _containers_of(docker_host: str, execution_id: str) -> list:
    import docker

    client = docker.DockerClient(base_url=docker_host, version="auto")
    try:
        return client.containers.list(
            all=True, filters={"label": f"bacalhau-devstack.execution={execution_id}"}
        )
    finally:
        client.close()


def test_execution_timeout_kills_the_container(node, docker_host, bucket):
    job = docker_job(
        "sleep 30",
        results=False,
        Timeouts={"ExecutionTimeout": 2},
        publisher={"Type": "s3", "Params": {"Bucket": bucket, "Key": "never"}},
    )
    started = time.monotonic()
    outcome, _, request = run(node, job)
    assert outcome.error == "Execution timed out after 2s"
    assert time.monotonic() - started < 15
    assert outcome.published_result is None
    assert _containers_of(docker_host, request.execution_id) == []


def test_cancel_kills_the_container(node, docker_host):
    recorder = Recorder()
    request = recorder.request(docker_job("sleep 30", results=False))
    box = {}
    worker = threading.Thread(target=lambda: box.setdefault("outcome", node.run(request)))
    worker.start()
    assert recorder.running.wait(20)
    recorder.cancel.set()
    worker.join(20)
    assert box["outcome"].error == "execution cancelled"
    assert _containers_of(docker_host, request.execution_id) == []


# --- s3managed ---------------------------------------------------------------------------------


def test_environment_merge_and_resource_limits(node):
    job = docker_job(
        "env | grep -E '^(FOO|BAR|BACALHAU_)' | sort; cat /sys/fs/cgroup/memory/memory.limit_in_bytes; pwd",
        image="busybox",
        results=False,
        Env={"FOO": "task", "BAR": "task"},
        Resources={"CPU": "500m", "Memory": "64mb"},
    )
    job["Tasks"][0]["Engine"]["Params"].update(EnvironmentVariables=["BAR=engine"], WorkingDirectory="/tmp")
    outcome, _, request = run(node, job)
    assert outcome.error is None, outcome.error
    assert outcome.run_output["Stdout"].splitlines() == [
        "BACALHAU_EXECUTION_ID=" + request.execution_id,
        "BACALHAU_JOB_ID=" + request.job_id,
        "BACALHAU_JOB_TYPE=batch",
        "BACALHAU_PARTITION_COUNT=1",
        "BACALHAU_PARTITION_INDEX=0",
        "BAR=engine",
        "FOO=task",
        "64000000",
        "/tmp",
    ]


def test_alias_is_reported_and_unknown_images_fail(node):
    outcome, recorder, _ = run(node, docker_job("echo ok", image="ubuntu:22.04", results=False))
    assert outcome.error is None and outcome.run_output["Stdout"] == "ok\n"
    notice = (
        "devstack: image 'ubuntu:22.04' is not available offline; running the local alias "
        "'bacalhau-devstack/busybox:latest' instead"
    )
    assert ("Preparing Environment", notice) in recorder.events
    assert (2, notice + "\n") in recorder.logs
    assert outcome.run_output["stderr"] == ""  # the notice is not part of the container's output

    outcome, _, _ = run(node, docker_job("true", image="python:3.12-slim", results=False))
    assert outcome.error.startswith(
        'failed to pull image "python:3.12-slim": no container registry is reachable'
    )


def test_memory_limit_exceeded_fails_the_execution(node):
    job = docker_job(
        "x=$(head -c 200000000 /dev/zero | tr '\\0' a); echo survived",
        results=False,
        Resources={"Memory": "16mb"},
    )
    outcome, _, _ = run(node, job)
    assert outcome.error == "memory limit exceeded"
    assert outcome.run_output["ErrorMsg"] == "memory limit exceeded" and outcome.run_output["ExitCode"] == 137


def test_several_executions_run_at_once(node):
    outcomes: dict[int, object] = {}

    def one(index: int) -> None:
        outcomes[index] = run(node, docker_job(f"sleep 1; echo {index}", results=False))[0]

    threads = [threading.Thread(target=one, args=(i,)) for i in range(4)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert {i: o.run_output["Stdout"] for i, o in outcomes.items()} == {i: f"{i}\n" for i in range(4)}
    assert time.monotonic() - started < 4.0  # overlapped: one after another takes over 4 s
