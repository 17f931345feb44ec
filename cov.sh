#!/usr/bin/env bash
# Print the combined coverage of the last ./test.sh run (or run the tests first
# with --run). An HTML report goes to htmlcov/ with --html.
set -euo pipefail
cd "$(dirname "$0")"
. ./env.sh
if [ "${1:-}" = "--run" ]; then shift; ./test.sh "$@" || true; fi
coverage combine -q >/dev/null 2>&1 || true
coverage report
if [ "${1:-}" = "--html" ]; then coverage html -q && echo "htmlcov/index.html"; fi
