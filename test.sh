#!/usr/bin/env bash
# Run every Clockwork test suite, from a fresh clone, re-runnable.
#
#   ./test.sh [pytest args...]
#
# 1. creates .venv and installs the pinned dependencies (env.sh: cw_install);
# 2. starts what the suites need and is missing: the Slurm testbed (root on
#    Debian only; elsewhere the live-Slurm tests are skipped with the reason),
#    sshd and Chromium packages, RabbitMQ if installed but stopped. The embedded
#    database is started by the test session itself (conftest.py) unless
#    CLOCKWORK_TEST_MONGODB_URI names a real MongoDB;
# 3. checks formatting (black, ruff);
# 4. runs pytest with coverage and prints one summary line.
# Exits non-zero on any failure. Environment: CLOCKWORK_SKIP_SLURM=1 skips the
# testbed; CLOCKWORK_TEST_MONGODB_URI uses a real MongoDB.
set -uo pipefail
cd "$(dirname "$0")" || exit 1
. ./env.sh
mkdir -p "$CW_VAR/log"
T0=$(date +%s)

cw_install || { cw_say "installing the dependencies failed"; exit 1; }

is_root_debian() { [ "$(id -u)" = 0 ] && [ -f /etc/debian_version ] && command -v apt-get >/dev/null; }

# ----------------------------------------------------------------- system packages
# sshd (live SSH fetch/submit tests) and Chromium (browser tests), Debian's packages.
if is_root_debian; then
  want=()
  [ -x /usr/sbin/sshd ] || want+=(openssh-server)
  command -v chromium >/dev/null || want+=(chromium)
  if [ ${#want[@]} -gt 0 ]; then
    cw_say "installing Debian packages: ${want[*]}"
    export DEBIAN_FRONTEND=noninteractive
    compgen -G '/var/lib/apt/lists/*_Packages*' >/dev/null || apt-get update -q >"$CW_VAR/log/apt.log" 2>&1
    apt-get install -y -q --no-install-recommends "${want[@]}" >>"$CW_VAR/log/apt.log" 2>&1 ||
      { apt-get update -q >>"$CW_VAR/log/apt.log" 2>&1 &&
        apt-get install -y -q --no-install-recommends "${want[@]}" >>"$CW_VAR/log/apt.log" 2>&1; } ||
      cw_say "could not install ${want[*]} (see var/log/apt.log); the tests that need them will be skipped"
  fi
fi

# ----------------------------------------------------------------- RabbitMQ
if ! (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && command -v rabbitmq-server >/dev/null &&
  [ "$(id -u)" = 0 ]; then
  cw_say "starting RabbitMQ"
  rabbitmq-server -detached >/dev/null 2>&1 || true
  for _ in $(seq 1 150); do (exec 3<>/dev/tcp/127.0.0.1/5672) 2>/dev/null && break; sleep 0.2; done
fi

# ----------------------------------------------------------------- Slurm testbed
slurm_note="live Slurm tests: run"
if [ -n "${CLOCKWORK_SKIP_SLURM:-}" ]; then
  export CLOCKWORK_SLURM_SKIP_REASON="CLOCKWORK_SKIP_SLURM is set"
else
  cw_say "starting the Slurm testbed (scripts/slurm_testbed.sh up; log: var/log/slurm_testbed.log)"
  bash scripts/slurm_testbed.sh up >"$CW_VAR/log/slurm_testbed.log" 2>&1
  rc=$?
  if [ $rc = 2 ]; then
    export CLOCKWORK_SLURM_SKIP_REASON="$(tail -n 1 "$CW_VAR/log/slurm_testbed.log")"
  elif [ $rc != 0 ]; then
    tail -n 25 "$CW_VAR/log/slurm_testbed.log" >&2
    cw_say "the Slurm testbed did not come up (exit $rc); see var/log/slurm_testbed.log"
    exit 1
  fi
fi
[ -n "${CLOCKWORK_SLURM_SKIP_REASON:-}" ] && slurm_note="live Slurm tests skipped: $CLOCKWORK_SLURM_SKIP_REASON"

# ----------------------------------------------------------------- format
lint_rc=0
cw_say "checking format (black, ruff)"
black --check -q . || { cw_say "black would reformat the files above (run: black .)"; lint_rc=1; }
ruff check -q . || { cw_say "ruff found the problems above"; lint_rc=1; }

# ----------------------------------------------------------------- tests
cw_say "running the test suites"
rm -f .coverage .coverage.*
python -m pytest --cov --cov-report= "$@" 2>&1 | tee "$CW_VAR/log/pytest.log"
test_rc=${PIPESTATUS[0]}
coverage combine -q >/dev/null 2>&1 || true
total_cov=$(coverage report --format=total 2>/dev/null || echo "?")

summary=$(grep -E '^=+ .*(passed|failed|error).* in [0-9.]+s' "$CW_VAR/log/pytest.log" | tail -n 1 | sed -E 's/^=+ //; s/ =+$//')
echo
echo "clockwork: ${summary:-no test result}; coverage ${total_cov}%; ${slurm_note}; $(($(date +%s) - T0)) s"
[ $lint_rc = 0 ] || echo "clockwork: FORMAT CHECK FAILED (black/ruff)"
[ $test_rc = 0 ] && [ $lint_rc = 0 ]
