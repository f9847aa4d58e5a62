"""The benchmarks' held-jobs devstack ends its executions in start order, at their times, from one
thread, and lets a cancelled one go at once (benchmarks/triggers_devstack.py ``Ender``); its data
directory is on tmpfs and gone afterwards (``scratch_data_dir``)."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "benchmarks"))

from triggers_devstack import TMPFS, Ender, scratch_data_dir  # noqa: E402


def _hold(ender: Ender, count: int) -> list[tuple[threading.Event, threading.Event, list[float]]]:
    held = []
    for index in range(count):
        cancel = threading.Event()
        wake = ender.hold(index, cancel)
        woke: list[float] = []

        def wait(wake=wake, woke=woke):
            wake.wait()
            woke.append(time.time())

        threading.Thread(target=wait, daemon=True).start()
        held.append((wake, cancel, woke))
    return held


def test_nothing_ends_before_the_release_then_each_at_its_time_in_start_order():
    ender = Ender(concurrency=4)
    ender.start()
    held = _hold(ender, 4)
    time.sleep(0.3)
    assert not any(wake.is_set() for wake, _, _ in held)
    at = time.time() + 0.2
    ender.release(at, spread=1.0)  # index k ends at at + k / 4
    for wake, _, _ in held:
        assert wake.wait(5)
    time.sleep(0.05)
    ends = [woke[0] for _, _, woke in held]
    assert ends == sorted(ends)
    for index, end in enumerate(ends):
        # never before its time; the upper bound only has to tell a schedule from "all at once"
        assert at + index / 4 - 0.01 <= end <= at + index / 4 + 1.0, (index, end - at)


def test_a_cancelled_execution_wakes_within_a_scan_and_the_others_stay_held():
    ender = Ender(concurrency=2)
    ender.start()
    (first_wake, first_cancel, _), (second_wake, _, _) = _hold(ender, 2)
    first_cancel.set()
    assert first_wake.wait(Ender.CANCEL_SCAN_SECONDS * 3)
    time.sleep(Ender.CANCEL_SCAN_SECONDS * 2)
    assert not second_wake.is_set()


def test_an_execution_started_after_the_release_gets_its_end_too():
    ender = Ender(concurrency=10)
    ender.start()
    ender.release(time.time() - 10, spread=1.0)  # every end is in the past
    ((wake, _, _),) = _hold(ender, 1)
    assert wake.wait(2)


def test_the_scratch_data_dir_is_on_tmpfs_and_removed_after():
    with scratch_data_dir() as path:
        (path / "executions" / "e-1").mkdir(parents=True)
        if TMPFS.is_dir():
            assert path.parent == TMPFS
    assert not path.exists()
