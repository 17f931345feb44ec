#!/usr/bin/env bash
# Start, check or stop the embedded MongoDB-compatible server (SecantusDB).
#   scripts/embedded_db.sh up [--dir DIR]      start (or find) it; prints the URI
#   scripts/embedded_db.sh status [--dir DIR]  exit 0 if it runs and answers, 3 if not
#   scripts/embedded_db.sh down [--dir DIR] [--purge]
# DIR defaults to var/embedded-db (or $CLOCKWORK_DB_DIR); the data is kept there.
set -euo pipefail
. "$(dirname "$0")/../env.sh"
exec "$CW_VENV/bin/python" -m test_common.embedded_db "$@"
