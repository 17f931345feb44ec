"""The background processes' loop: one pass, periods, and stopping on a signal."""

from __future__ import annotations

import os
import signal
import threading
import time

from clockwork_core.periodic import run_periodically


def test_once_runs_one_pass_and_returns_its_status() -> None:
    calls: list[int] = []
    assert run_periodically(lambda: calls.append(1) or 3, loop=False, every=60) == 3
    assert calls == [1]


def test_loop_runs_until_the_iteration_bound() -> None:
    calls: list[int] = []
    status = run_periodically(lambda: calls.append(1) or 0, loop=True, every=0, iterations=4)
    assert status == 0
    assert len(calls) == 4


def test_sigterm_ends_the_wait_at_once_and_restores_the_handler() -> None:
    before = signal.getsignal(signal.SIGTERM)
    timer = threading.Timer(0.2, os.kill, (os.getpid(), signal.SIGTERM))
    started = time.monotonic()
    timer.start()
    try:
        status = run_periodically(lambda: 0, loop=True, every=30)
    finally:
        timer.cancel()
    assert status == 0
    assert time.monotonic() - started < 10  # not the 30 s period
    assert signal.getsignal(signal.SIGTERM) == before
