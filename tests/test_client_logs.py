"""The log reader's sans-IO core (frames, bounds, tails, requests), and both drivers against a
small real WebSocket server over TLS (the devstack has no TLS)."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest
from test_client_fake_api import TlsMaterial, tls_material  # noqa: F401

from airflow_provider_bacalhau.client import AsyncBacalhauClient, BacalhauClient, ClientConfig
from airflow_provider_bacalhau.client.logs import (
    LogChunk,
    LogRead,
    LogTail,
    build_log_request,
    parse_frame,
    tail,
)
from airflow_provider_bacalhau.errors import BacalhauApiError, BacalhauLogsError

SECRET = "k" * 24


def frame(kind: int, line: str) -> str:
    return json.dumps({"value": {"Type": kind, "Line": line}})


# --- frames --------------------------------------------------------------------------------------


def test_frames_give_stdout_and_stderr_chunks():
    assert parse_frame(frame(1, "a\nb")) == LogChunk("stdout", "a\nb")
    assert parse_frame(frame(2, "oops\n").encode()) == LogChunk("stderr", "oops\n")
    assert parse_frame('{"VALUE": {"type": 1, "line": "x"}}') == LogChunk("stdout", "x")  # Go's casing rule


@pytest.mark.parametrize(
    "message",
    [frame(0, ""), frame(1, ""), frame(3, "x"), '{"value": null}', '{"value": {"Type": 1, "Line": 5}}', "{}"],
)
def test_frames_without_output_are_skipped(message):
    assert parse_frame(message) is None


def test_an_error_frame_raises_with_the_server_text():
    with pytest.raises(BacalhauLogsError) as caught:
        parse_frame('{"value": {"Type": 0, "Line": ""}, "error": "unable to find execution e-1"}')
    assert caught.value.server_error and caught.value.message == "unable to find execution e-1"
    assert isinstance(caught.value, BacalhauApiError)


@pytest.mark.parametrize("message", ["not json", "[1, 2]", b"\xff\xfe"])
def test_garbage_frames_raise(message):
    with pytest.raises(BacalhauLogsError, match="frame"):
        parse_frame(message)


# --- bounds ---------------------------------------------------------------------------------------


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_read_cuts_at_max_bytes_and_says_so():
    read = LogRead(build_log_request(ClientConfig(), "j-1"), max_bytes=5)
    assert read.accept(frame(1, "abc")) == LogChunk("stdout", "abc") and read.ended is None
    assert read.accept(frame(2, "défg")) == LogChunk("stderr", "d")  # "é" would cross the bound: dropped
    assert read.ended == "max_bytes" and read.received <= 5


def test_read_deadline_counts_from_the_start():
    clock = Clock()
    read = LogRead(build_log_request(ClientConfig(), "j-1"), timeout=2, clock=clock)
    assert read.remaining() == 2 and not read.expired
    clock.now += 2.5
    assert read.expired and read.remaining() == pytest.approx(0.001)


@pytest.mark.parametrize("kwargs", [{"max_bytes": 0}, {"timeout": 0}, {"timeout": -1}])
def test_read_bounds_are_checked(kwargs):
    with pytest.raises(ValueError, match=next(iter(kwargs))):
        LogRead(build_log_request(ClientConfig(), "j-1"), **kwargs)


def test_transport_failures_never_show_credentials():
    read = LogRead(build_log_request(ClientConfig(api_key=SECRET), "j-1"))
    error = read.failure(OSError(f"refused with Bearer {SECRET}"))
    assert SECRET not in str(error) and "/api/v1/orchestrator/jobs/j-1/logs" in str(error)
    assert not error.server_error


# --- tails ----------------------------------------------------------------------------------------


def test_tail_keeps_the_last_lines_of_each_stream_across_chunk_boundaries():
    chunks = [LogChunk("stdout", f"line {i}\n") for i in range(30)]
    chunks += [LogChunk("stderr", "par"), LogChunk("stderr", "tial\nlast"), LogChunk("stdout", "end\n")]
    kept = tail(chunks, lines=3)
    assert kept.stdout == "line 28\nline 29\nend\n"
    assert kept.stderr == "partial\nlast"
    assert kept.cut


def test_tail_bytes_bound_and_a_huge_line():
    kept = LogTail(lines=5, max_bytes=10)
    kept.add(LogChunk("stdout", "aaaa\nbbbb\ncccc\n"))
    assert kept.stdout == "bbbb\ncccc\n"
    kept.add(LogChunk("stderr", "x" * 100))
    assert kept.stderr == "x" * 10  # the end of one huge line, never the whole of it
    kept.add(LogChunk("stderr", "\n"))
    assert kept.stderr == "x" * 9 + "\n" and kept.cut


def test_tail_of_nothing_is_falsy():
    kept = tail([])
    assert not kept and not kept.cut and kept.stdout == kept.stderr == ""


# --- requests -------------------------------------------------------------------------------------


def test_request_follows_the_client_config():
    config = ClientConfig(base_url="https://bacalhau.example:4443", api_key=SECRET, namespace="team-a")
    request = build_log_request(config, "my job/1", execution_id="e-1", follow=True, tail=True, job_version=2)
    assert request.url == (
        "wss://bacalhau.example:4443/api/v1/orchestrator/jobs/my%20job%2F1/logs"
        "?execution_id=e-1&follow=true&tail=true&job_version=2&namespace=team-a"
    )
    assert request.headers["Authorization"] == f"Bearer {SECRET}"
    assert request.ssl is not None and request.ssl.check_hostname
    assert SECRET not in repr(request)
    basic = build_log_request(ClientConfig(username="ann", password="p" * 12), "j-1", namespace="other")
    assert basic.url == "ws://127.0.0.1:1234/api/v1/orchestrator/jobs/j-1/logs?namespace=other"
    assert basic.headers["Authorization"].startswith("Basic ") and basic.ssl is None
    insecure = build_log_request(ClientConfig(base_url="https://h:1", verify=False), "j-1")
    assert insecure.ssl is not None and not insecure.ssl.check_hostname
    with pytest.raises(ValueError, match="job_id_or_name"):
        build_log_request(config, " ")


# --- both drivers against a real WebSocket server over TLS ----------------------------------------


@pytest.fixture
def wss_logs(tls_material: TlsMaterial):
    """A WebSocket server on 127.0.0.1 with TLS that sends two frames (and records the request)."""
    from websockets.sync.server import serve

    seen: list[dict] = []

    def handler(ws) -> None:
        seen.append({"path": ws.request.path, "auth": ws.request.headers.get("Authorization")})
        ws.send(frame(1, "hello\n"))
        ws.send(frame(2, "bye\n"))
        ws.close(1000)

    server = serve(handler, "127.0.0.1", 0, ssl=tls_material.server_context())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"https://127.0.0.1:{server.socket.getsockname()[1]}", seen
    finally:
        server.shutdown()
        thread.join(5)


def test_both_drivers_read_over_tls_with_the_ca_file_and_auth(wss_logs, tls_material: TlsMaterial):
    url, seen = wss_logs
    config = ClientConfig(base_url=url, verify=str(tls_material.cert_file), api_key=SECRET)
    with BacalhauClient(config) as client:
        stream = client.job_logs("j-1", "e-1")
        assert list(stream) == [LogChunk("stdout", "hello\n"), LogChunk("stderr", "bye\n")]
        assert stream.ended == "closed"

    async def read_async() -> list[LogChunk]:
        async with AsyncBacalhauClient(config) as client:
            return [chunk async for chunk in client.job_logs("j-1", "e-1")]

    assert asyncio.run(read_async()) == [LogChunk("stdout", "hello\n"), LogChunk("stderr", "bye\n")]
    assert (
        seen
        == [{"path": "/api/v1/orchestrator/jobs/j-1/logs?execution_id=e-1", "auth": f"Bearer {SECRET}"}] * 2
    )


def test_the_handshake_logged_at_debug_shows_no_credential(wss_logs, tls_material: TlsMaterial, caplog):
    """websockets logs each request header at DEBUG; found by tests/test_secrets.py at DEBUG."""
    url, seen = wss_logs
    caplog.set_level("DEBUG")
    for config in (
        ClientConfig(base_url=url, verify=str(tls_material.cert_file), api_key=SECRET),
        ClientConfig(base_url=url, verify=str(tls_material.cert_file), username="u", password=SECRET),
    ):
        with BacalhauClient(config) as client:
            assert len(list(client.job_logs("j-1"))) == 2

        async def read_async(config=config) -> int:
            async with AsyncBacalhauClient(config) as client:
                return len([chunk async for chunk in client.job_logs("j-1")])

        assert asyncio.run(read_async()) == 2
    client_records = [
        r for r in caplog.records if not r.name.startswith("websockets.server")
    ]  # the test's server
    handshake = [
        r.getMessage() for r in client_records if r.getMessage().lower().startswith("> authorization")
    ]
    assert handshake == ["> Authorization: ***"] * 4  # the header is logged, its value is not
    assert [entry["auth"].split()[0] for entry in seen] == ["Bearer", "Bearer", "Basic", "Basic"]
    assert not [r for r in client_records if SECRET in r.getMessage() or "dTpr" in r.getMessage()]


def test_default_verification_refuses_the_self_signed_server(wss_logs):
    url, _ = wss_logs
    with (
        BacalhauClient(ClientConfig(base_url=url)) as client,
        pytest.raises(BacalhauLogsError, match="CERTIFICATE_VERIFY_FAILED"),
    ):
        list(client.job_logs("j-1"))


def test_tail_of_one_long_non_ascii_line_is_not_empty():
    tail = LogTail(lines=5, max_bytes=64)
    tail.add(LogChunk("stderr", "é" * 60))  # 60 characters, 120 bytes
    assert tail.stderr and set(tail.stderr) == {"é"} and len(tail.stderr.encode("utf-8")) <= 64
    assert tail.cut
