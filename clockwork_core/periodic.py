"""The loop of Clockwork's background processes (scraper, notifier, submitter).

Each runs one pass, then, in loop mode, waits for the next period and runs
again, until SIGTERM or SIGINT, which end the wait at once but never a pass in
progress (so a stop never leaves half a scrape or half a delivery behind).
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable


def run_periodically(
    one_pass: Callable[[], int],
    *,
    loop: bool,
    every: float,
    iterations: int | None = None,
) -> int:
    """Run ``one_pass`` once, or every ``every`` seconds; the last pass's exit status.

    The period is measured from the start of a pass, so passes do not drift.
    ``iterations`` bounds the number of passes in loop mode (tests, cron-like runs).
    """
    stop = threading.Event()
    previous = {
        sig: signal.signal(sig, lambda *_: stop.set()) for sig in (signal.SIGTERM, signal.SIGINT)
    }
    status = 0
    runs = 0
    try:
        while True:
            started = time.monotonic()
            status = one_pass()
            runs += 1
            if not loop or (iterations is not None and runs >= iterations):
                return status
            if stop.wait(max(0.0, started + every - time.monotonic())):
                return status
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
