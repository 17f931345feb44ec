"""``python -m slurm_state`` (and the ``clockwork-scrape`` script): see :mod:`slurm_state.cli`."""

from __future__ import annotations

import sys

from slurm_state.cli import main as _main


def main() -> None:
    """Entry point: exit with the subcommand's status."""
    sys.exit(_main())


if __name__ == "__main__":
    main()
