"""The live log's sans-IO part: which executions, replays skipped, caps, the line format; and the
completion step leaving out what was streamed."""

from __future__ import annotations

import logging

import pytest

from airflow_provider_bacalhau.client.logs import LogChunk
from airflow_provider_bacalhau.waiting.live_logs import (
    LiveLogs,
    format_line,
    short_id,
    streamed_from_event,
)

E1 = "e-78faf114-6a45-457e-825c-40fd2fad768f"
E2 = "e-0badcafe-6a45-457e-825c-40fd2fad768f"


def answer(*executions: tuple[str, int], count: int = 1, state: str = "Running") -> dict:
    return {
        "Job": {"ID": "j-1", "State": {"StateType": state}, "Version": 1, "Count": count},
        "Executions": {
            "Items": [{"ID": eid, "JobVersion": 1, "ComputeState": {"StateType": s}} for eid, s in executions]
        },
    }


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def out(text: str) -> LogChunk:
    return LogChunk("stdout", text)


def err(text: str) -> LogChunk:
    return LogChunk("stderr", text)


def test_short_ids_and_the_one_line_format():
    assert short_id(E1) == "e-78faf114"  # as pkg/util/idgen ShortUUID
    assert short_id("e-1") == "e-1"
    assert format_line("stdout", "hello") == "stdout | hello"
    assert format_line("stderr", "oops", E1) == "[e-78faf114] stderr | oops"


def test_follows_executions_once_they_run_and_only_once():
    live = LiveLogs(10)
    assert live.observe(answer((E1, 3))) == []  # asked to bid: not on a node yet
    assert live.observe(answer((E1, 5))) == [E1]  # bid accepted: the node's reader waits for the file
    assert live.observe(answer((E1, 6))) == []
    assert live.observe(answer((E1, 7))) == []  # already followed
    assert live.observe(RuntimeError("poll failed")) == []
    assert live.observe(answer((E1, 9), state="Completed")) == []
    assert live.executions[E1].terminal


def test_lines_are_split_marked_and_partial_lines_wait():
    live = LiveLogs(10)
    live.observe(answer((E1, 6)))
    live.connected(E1)
    assert live.accept(E1, out("one\ntw")) == ["stdout | one"]
    assert live.accept(E1, err("bad\n")) == ["stderr | bad"]
    assert live.accept(E1, out("o\r\nthree")) == ["stdout | two"]
    assert live.finish() == ["stdout | three"]


def test_a_reconnect_replays_from_the_start_and_nothing_is_logged_twice():
    live = LiveLogs(10)
    live.observe(answer((E1, 6)))
    live.connected(E1)
    logged = live.accept(E1, out("a\n")) + live.accept(E1, err("x\n")) + live.accept(E1, out("b\nc"))
    # The connection breaks; v1.9.3 replays the whole file on the next one (same frames), then more.
    live.connected(E1)
    for chunk in (out("a\n"), err("x\n"), out("b\nc"), out("d\n"), err("y\n")):
        logged += live.accept(E1, chunk)
    # A third connection whose chunks are cut differently still skips by characters per stream.
    live.connected(E1)
    for chunk in (out("a\nb\ncd"), out("\ne\n"), err("x\ny\nz\n")):
        logged += live.accept(E1, chunk)
    assert logged == [
        "stdout | a",
        "stderr | x",
        "stdout | b",
        "stdout | cd",
        "stderr | y",
        "stdout | e",
        "stderr | z",
    ]
    assert live.summary() == {E1: {"stdout": 9, "stderr": 6, "complete": False}}


def test_a_second_execution_brings_the_prefix():
    live = LiveLogs(10)
    live.observe(answer((E1, 6)))
    live.connected(E1)
    assert live.accept(E1, out("alone\n")) == ["stdout | alone"]
    assert live.observe(answer((E1, 10), (E2, 6))) == [E2]  # a retry after a failure
    live.connected(E2)
    assert live.accept(E2, out("again\n")) == ["[e-0badcafe] stdout | again"]
    fresh = LiveLogs(10)
    fresh.observe(answer((E1, 6), count=3))  # Count > 1: several executions from the start
    fresh.connected(E1)
    assert fresh.accept(E1, out("hi\n")) == ["[e-78faf114] stdout | hi"]


def test_lines_and_bytes_per_interval_are_capped_with_a_note():
    clock = Clock()
    live = LiveLogs(5, max_lines=3, max_bytes=1000, clock=clock)
    live.observe(answer((E1, 6)))
    live.connected(E1)
    shown = live.accept(E1, out("".join(f"{i}\n" for i in range(10))))
    assert shown == ["stdout | 0", "stdout | 1", "stdout | 2"]
    assert live.tick() == []  # the window is not over yet
    clock.now = 5.0
    [note] = live.tick()
    assert note.startswith("... 7 line(s) (70 bytes) of output not shown") and "3 lines" in note
    assert live.accept(E1, out("10\n")) == ["stdout | 10"]  # a new window
    by_bytes = LiveLogs(5, max_lines=100, max_bytes=25, clock=clock)
    by_bytes.observe(answer((E1, 6)))
    by_bytes.connected(E1)
    assert by_bytes.accept(E1, out("aaaaaaaaaa\nbbbbbbbbbb\n")) == ["stdout | aaaaaaaaaa"]
    assert by_bytes.finish()[-1].startswith("... 1 line(s) (19 bytes)")


def test_a_huge_line_is_logged_in_pieces():
    live = LiveLogs(10, max_line=4)
    live.observe(answer((E1, 6)))
    live.connected(E1)
    assert live.accept(E1, out("abcdefghij")) == ["stdout | abcd", "stdout | efgh"]
    assert live.accept(E1, out("k\n")) == ["stdout | ijk"]


def test_reconnects_go_on_while_the_execution_runs_and_stop_after_its_end():
    live = LiveLogs(10)
    live.observe(answer((E1, 6)))
    assert live.stream_ended(E1, "error") and live.stream_ended(E1, "closed")  # premature close
    live.observe(answer((E1, 9), state="Completed"))
    assert not live.stream_ended(E1, "closed")
    assert live.summary() == {E1: {"stdout": 0, "stderr": 0, "complete": True}}
    # A normal close seen before the poll saw the end still means the log was read to its end.
    early = LiveLogs(10)
    early.observe(answer((E1, 6)))
    assert early.stream_ended(E1, "closed")
    assert early.summary() == {}
    early.observe(answer((E1, 9), state="Completed"))
    assert early.summary() == {E1: {"stdout": 0, "stderr": 0, "complete": True}}
    other = LiveLogs(10)
    other.observe(answer((E1, 6)))
    other.observe(answer((E1, 10), state="Failed"))
    assert [other.stream_ended(E1, "error") for _ in range(4)] == [True, True, True, False]


def test_the_event_part_is_read_defensively():
    assert streamed_from_event({}) == {}
    assert streamed_from_event({"streamed": "junk"}) == {}
    assert streamed_from_event({"streamed": {E1: {"stdout": 3, "stderr": "x", "complete": 1}, 7: {}}}) == {
        E1: {"stdout": 3, "stderr": 0, "complete": False}
    }


def _status(stdout: str, stderr: str = "", state: int = 9):
    from airflow_provider_bacalhau.spec import JobStatus

    return JobStatus.from_api(
        {
            "Job": {"ID": "j-1", "State": {"StateType": "Completed"}, "Version": 1},
            "Executions": {
                "Items": [
                    {
                        "ID": E1,
                        "JobVersion": 1,
                        "ComputeState": {"StateType": state},
                        "RunOutput": {"Stdout": stdout, "stderr": stderr, "ExitCode": 0},
                    }
                ]
            },
        }
    )


@pytest.mark.parametrize(
    ("streamed", "expected"),
    [
        ({}, ["stdout of", "one\ntwo\nthree", "stderr of", "warn"]),
        (
            {E1: {"stdout": 8, "stderr": 5, "complete": True}},
            ["three", "left out", "stderr of " + E1 + ": shown"],
        ),
        (
            {E1: {"stdout": 14, "stderr": 5, "complete": True}},
            ["stdout of " + E1 + ": shown", "stderr of " + E1 + ": shown"],
        ),
    ],
)
def test_the_final_output_leaves_out_what_was_streamed(streamed, expected, caplog):
    from airflow_provider_bacalhau.waiting.completion import log_run_outputs

    log = logging.getLogger("test.live")
    with caplog.at_level(logging.INFO, logger="test.live"):
        log_run_outputs(_status("one\ntwo\nthree\n", "warn\n"), log, streamed)
    text = caplog.text
    for part in expected:
        assert part in text
    if streamed:
        assert "one\n" not in text and "two" not in text
