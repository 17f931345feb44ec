"""``python -m clockwork_web.notify [--once | --loop --every 10]``: run the notifier.

The configuration comes from ``$CLOCKWORK_CONFIG`` (``load_config_or_exit``).
Exits 0 after ``--once``; in ``--loop`` runs until SIGTERM or SIGINT, finishing
the delivery in progress first.
"""

from __future__ import annotations

import argparse
import logging

from clockwork_core.config import load_config_or_exit
from clockwork_core.db import get_database
from clockwork_core.periodic import run_periodically
from clockwork_web.notify.notifier import Notifier

log = logging.getLogger("clockwork_web.notify")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clockwork_web.notify")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (default)")
    mode.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config_or_exit()
    notifier = Notifier(get_database(config.database), config)

    def one_pass() -> int:
        counts = notifier.run_once()
        log.info(
            "notifier: %d events, %d delivered, %d sent, %d to retry, %d failed, %d unknown",
            counts.events,
            counts.delivered_events,
            counts.sent,
            counts.retry,
            counts.failed,
            counts.unknown,
        )
        return 1 if counts.errors else 0

    return run_periodically(one_pass, loop=args.loop, every=max(args.every, 0.1))


if __name__ == "__main__":
    raise SystemExit(main())
