"""The devstack's processes: the SeaweedFS S3 fixture, `up`/`env`/`down`, restart keeping state."""

from __future__ import annotations

import botocore.exceptions
import pytest


def test_s3_server_round_trip_and_reset(s3_server):
    client = s3_server.client()
    client.create_bucket(Bucket="stage")
    client.put_object(Bucket="stage", Key="a/b.txt", Body=b"hello", ChecksumAlgorithm="SHA256")
    head = client.head_object(Bucket="stage", Key="a/b.txt", ChecksumMode="ENABLED")
    assert head["ChecksumSHA256"]
    assert client.get_object(Bucket="stage", Key="a/b.txt")["Body"].read() == b"hello"
    assert s3_server.endpoint.startswith("http://127.0.0.1:")
    assert '"signature_version": "s3v4"' in s3_server.aws_conn_json()

    # As on AWS, and unlike SeaweedFS's defaults: no bucket made on upload, none deleted while full.
    with pytest.raises(botocore.exceptions.ClientError, match="NoSuchBucket"):
        client.put_object(Bucket="never-created", Key="k", Body=b"x")
    with pytest.raises(botocore.exceptions.ClientError, match="BucketNotEmpty"):
        client.delete_bucket(Bucket="stage")

    s3_server.keep_buckets.add("kept")
    s3_server.reset()
    try:
        with pytest.raises(botocore.exceptions.ClientError):
            client.head_bucket(Bucket="stage")
        client.head_bucket(Bucket="kept")
    finally:
        s3_server.keep_buckets.discard("kept")


def _cli(*args: str, home, timeout: float = 120):
    import os
    import subprocess
    import sys

    env = {**os.environ, "BACALHAU_DEVSTACK_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "airflow_provider_bacalhau.devstack", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_cli_up_env_restart_down_leaves_nothing_running(tmp_path):
    import json
    import shlex
    import subprocess

    import httpx

    from airflow_provider_bacalhau.devstack import procs, stack

    up = _cli(
        "up",
        "--no-engine",
        "--api-port",
        str(procs.free_port()),
        "--s3-port",
        str(procs.free_port()),
        home=tmp_path,
    )
    assert up.returncode == 0, up.stderr
    assert "NOT a Bacalhau replacement" in up.stdout
    exports = dict(
        shlex.split(line[len("export ") :])[0].split("=", 1)
        for line in up.stdout.splitlines()
        if line.startswith("export ")
    )
    state = stack.load_state(tmp_path)
    try:
        assert (
            exports["BACALHAU_API_PORT"] == str(state.api_port)
            and exports["BACALHAU_API_HOST"] == "127.0.0.1"
        )
        aws = json.loads(exports["AIRFLOW_CONN_AWS_DEFAULT"])
        assert aws["extra"]["endpoint_url"] == state.s3_endpoint and aws["extra"]["config_kwargs"] == {
            "signature_version": "s3v4"
        }
        assert json.loads(exports["AIRFLOW_CONN_BACALHAU_DEFAULT"])["port"] == state.api_port
        buckets = {b["Name"] for b in procs.s3_client(state.s3_endpoint).list_buckets()["Buckets"]}
        assert {stack.MANAGED_BUCKET, stack.RESULTS_BUCKET} <= buckets

        again = _cli("up", "--no-engine", home=tmp_path)  # idempotent: same stack, same exports
        assert again.returncode == 0 and f"export BACALHAU_API_PORT={state.api_port}" in again.stdout
        assert _cli("env", home=tmp_path).stdout.strip() == stack.env_lines(state)

        job = {"Job": {"Name": "kept", "Type": "batch", "Tasks": [{"Name": "t", "Engine": {"Type": "noop"}}]}}
        assert httpx.put(f"{state.api_url}/api/v1/orchestrator/jobs", json=job).status_code == 200
        restarted = _cli("restart", home=tmp_path)
        assert restarted.returncode == 0, restarted.stderr
        assert httpx.get(f"{state.api_url}/api/v1/orchestrator/jobs/kept").json()["Job"]["Name"] == "kept"
    finally:
        down = _cli("down", home=tmp_path)
    assert down.returncode == 0 and "stopped" in down.stdout
    assert not procs.pid_alive(state.server_pid) and not procs.pid_alive(state.s3_pid)
    with pytest.raises(httpx.ConnectError):  # nothing listens any more
        httpx.get(f"{state.api_url}/api/v1/agent/alive", timeout=5)
    leftovers = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True).stdout
    assert str(tmp_path) not in leftovers
    assert _cli("env", home=tmp_path).returncode == 1


def test_down_removes_the_s3_data_unless_asked_to_keep_it(tmp_path):
    from airflow_provider_bacalhau.devstack import procs, stack

    def up():
        result = _cli("up", "--no-engine", "--api-port", "0", "--s3-port", "0", home=tmp_path)
        assert result.returncode == 0, result.stderr
        return stack.load_state(tmp_path)

    state = up()
    try:
        procs.s3_client(state.s3_endpoint).put_object(
            Bucket=stack.RESULTS_BUCKET, Key="kept.txt", Body=b"kept"
        )
        assert _cli("down", "--keep-data", home=tmp_path).returncode == 0
        assert (tmp_path / stack.S3_DATA).is_dir() and not procs.pid_alive(state.s3_pid)
        state = up()
        body = procs.s3_client(state.s3_endpoint).get_object(Bucket=stack.RESULTS_BUCKET, Key="kept.txt")[
            "Body"
        ]
        assert body.read() == b"kept"
    finally:
        assert _cli("down", home=tmp_path).returncode == 0
    assert not (tmp_path / stack.S3_DATA).exists()


def test_devstack_env_fixture_points_connections_at_the_stack(devstack_env):
    import json
    import os

    import httpx

    conn = json.loads(os.environ["AIRFLOW_CONN_BACALHAU_DEFAULT"])
    assert (conn["host"], conn["port"]) == (devstack_env.api_host, devstack_env.api_port)
    assert (
        json.loads(devstack_env.bacalhau_conn_json(password="k" * 20, namespace="x"))["extra"]["namespace"]
        == "x"
    )
    assert (
        json.loads(os.environ["AIRFLOW_CONN_AWS_DEFAULT"])["extra"]["endpoint_url"]
        == devstack_env.s3_endpoint
    )
    url = f"http://{os.environ['BACALHAU_API_HOST']}:{os.environ['BACALHAU_API_PORT']}/api/v1/agent/alive"
    assert httpx.get(url).json() == {"Status": "OK"}
    assert devstack_env.managed_bucket in {
        b["Name"] for b in devstack_env.s3_client().list_buckets()["Buckets"]
    }


def test_free_ports_are_below_the_ephemeral_range_and_bindable():
    """No outgoing connection can take a free_port() port before its server binds it (the lane
    airflow-2.11 lost a SeaweedFS start to that: ``bind: address already in use``)."""
    import socket

    from airflow_provider_bacalhau.devstack import procs

    floor = procs._ephemeral_floor()
    ports = {procs.free_port() for _ in range(50)}
    assert all(procs.PORT_FLOOR <= port < floor for port in ports), sorted(ports)
    assert len(ports) > 40  # chosen at random, not one after the other from a fixed start
    with socket.socket() as sock:
        sock.bind((procs.LOCALHOST, ports.pop()))


def test_a_marker_left_by_a_killed_engine_does_not_keep_the_next_one_running(tmp_path):
    """`devstack engine -- CMD` stops the engine it starts unless its own was already up; a marker
    whose dockerd was killed must not count as up (that left a dockerd running after the command)."""
    import os
    import subprocess

    from airflow_provider_bacalhau.devstack import engine

    marker = engine.started_marker(tmp_path)
    marker.parent.mkdir(parents=True)
    dead = subprocess.Popen(["true"])
    dead.wait()
    marker.write_text(str(dead.pid))
    assert not engine.own_engine_running(tmp_path)
    marker.write_text(str(os.getpid()))  # alive, but not a dockerd
    assert not engine.own_engine_running(tmp_path)
