"""``python -m clockwork_tools``: the ``clockwork`` command."""

import sys

from clockwork_tools._main import main

if __name__ == "__main__":
    sys.exit(main())
