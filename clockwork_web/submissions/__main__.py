"""``python -m clockwork_web.submissions [--once | --loop --every 30]``.

Sends the submissions left PENDING while their cluster was unreachable and
refreshes the state of unfinished ones (from the scraped jobs, else Slurm).
"""

from __future__ import annotations

import argparse
import logging

from clockwork_core.config import load_config_or_exit
from clockwork_core.db import get_database
from clockwork_core.periodic import run_periodically
from clockwork_web.submissions.service import retry_pending, sync_states

log = logging.getLogger("clockwork_web.submissions")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m clockwork_web.submissions")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument("--once", action="store_true", help="one pass, then exit (default)")
    mode.add_argument("--loop", action="store_true", help="run until SIGTERM/SIGINT")
    parser.add_argument("--every", type=float, default=30.0, help="seconds between passes")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    config = load_config_or_exit()
    db = get_database(config.database)

    def one_pass() -> int:
        sent = retry_pending(db, config)
        changed = sync_states(db, config)
        log.info("submissions: %d sent, %d changed state", sent, changed)
        return 0

    return run_periodically(one_pass, loop=args.loop, every=max(args.every, 1.0))


if __name__ == "__main__":
    raise SystemExit(main())
