#!/usr/bin/env bash
# Re-extract the messages, merge them into the catalogues and compile the .mo files.
#   scripts/update_translations.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYBABEL=${PYBABEL:-.venv/bin/pybabel}
"$PYBABEL" extract -F babel.cfg -k _l -k lazy_gettext --no-location --sort-output \
  -o clockwork_web/translations/messages.pot .
"$PYBABEL" update -i clockwork_web/translations/messages.pot -d clockwork_web/translations --no-fuzzy-matching
"$PYBABEL" compile -d clockwork_web/translations --statistics
