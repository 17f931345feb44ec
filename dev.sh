#!/usr/bin/env bash
# Set up and run Clockwork for development, from a fresh clone, re-runnable.
#
#   ./dev.sh            install, start the embedded database, load the demo data
#                       (or scrape the local Slurm testbed when it runs), then
#                       serve the dashboard on http://127.0.0.1:5000
#   ./dev.sh --no-serve the same, without serving (ends with everything up)
#   ./dev.sh --reset    drop the demo data and load it again
#   ./dev.sh stop       stop the embedded database
#
# The data is kept in var/dev-db between runs. The development login is on and
# answers only requests from loopback.
set -euo pipefail
cd "$(dirname "$0")"
. ./env.sh

serve=1 reset=0
for arg in "$@"; do
  case "$arg" in
    --no-serve) serve=0 ;;
    --reset) reset=1 ;;
    stop) python -m test_common.embedded_db down --dir "$CW_VAR/dev-db"; exit 0 ;;
    -h | --help) sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "dev.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

cw_install
mkdir -p "$CW_VAR/dev"

cw_say "starting the embedded database (data in var/dev-db)"
uri=$(python -m test_common.embedded_db up --dir "$CW_VAR/dev-db")

# A development configuration, written once; edit it freely (it is git-ignored).
config="$CW_VAR/dev/clockwork.toml"
if [ ! -f "$config" ]; then
  secret=$(python -c 'import secrets; print(secrets.token_urlsafe(32))')
  cat >"$config" <<TOML
# Development configuration written by dev.sh. See clockwork.example.toml.
[database]
name = "clockwork_dev"

[web]
secret_key = "$secret"
dev_login = true

[clusters.mila]
display_name = "Mila"
fetch = "file"
report_dir = "$CW_VAR/dev/reports/mila"

[clusters.narval]
display_name = "Narval"
fetch = "file"
report_dir = "$CW_VAR/dev/reports/narval"

[clusters.beluga]
display_name = "Béluga"
fetch = "file"
report_dir = "$CW_VAR/dev/reports/beluga"

[clusters.testcluster]
display_name = "Local Slurm testbed"
fetch = "local"
[clusters.testcluster.submit]
backend = "local"
output_roots = ["/var/spool/slurm-ci/jobs", "/tmp"]
TOML
fi
export CLOCKWORK_CONFIG="$config" MONGODB_URI="$uri"

load_args=(--uri "$uri" --db clockwork_dev --jobs "${CLOCKWORK_DEMO_JOBS:-20000}" --users 100)
[ $reset = 1 ] && load_args+=(--replace)
cw_say "loading the demo data set (reused when already there)"
python scripts/load_data.py "${load_args[@]}"

if bash scripts/slurm_testbed.sh status >/dev/null 2>&1; then
  cw_say "the Slurm testbed runs: scraping it"
  python -m slurm_state scrape --cluster testcluster || cw_say "the scrape failed (see above); the demo data is still there"
fi

cat <<INFO

  Clockwork development setup
    database    $uri  (embedded SecantusDB, data in var/dev-db; ./dev.sh stop)
    config      $config
    web app     http://127.0.0.1:5000   (development login: /login/dev, e.g. admin@example.org)
    scraper     python -m slurm_state scrape --all
    tests       ./test.sh

INFO
if [ $serve = 1 ]; then
  cw_say "serving on http://127.0.0.1:5000 (Ctrl-C to stop)"
  exec flask --app clockwork_web run --host 127.0.0.1 --port 5000
fi
cw_say "database up and loaded; not serving (--no-serve)"
