# Shared environment of dev.sh, test.sh and cov.sh. Source it: `. ./env.sh`.
# Defines the paths, puts the project's virtual environment first on PATH, and
# provides cw_install, which creates/updates .venv from the pinned requirements
# (only when they changed since the last install).

CW_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
export CW_ROOT
export CW_VAR="$CW_ROOT/var"
export CW_VENV="$CW_ROOT/.venv"
export PATH="$CW_VENV/bin:$PATH"
export PYTHONPATH="$CW_ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONDONTWRITEBYTECODE=1
export PIP_DISABLE_PIP_VERSION_CHECK=1

cw_say() { printf '\033[1m[clockwork]\033[0m %s\n' "$*" >&2; }

# cw_python: a Python >= 3.11 to build the virtual environment with.
cw_python() {
  local py
  for py in python3.13 python3.12 python3.11 python3; do
    if command -v "$py" >/dev/null 2>&1 &&
      "$py" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
      command -v "$py"
      return 0
    fi
  done
  return 1
}

# cw_install: create .venv and install the pinned requirements (idempotent).
cw_install() {
  local stamp="$CW_VENV/.clockwork-installed" want
  want=$(cat "$CW_ROOT/requirements.txt" "$CW_ROOT/requirements-dev.txt" \
    "$CW_ROOT/clockwork_tools/pyproject.toml" 2>/dev/null | sha256sum | cut -d' ' -f1)
  if [ -x "$CW_VENV/bin/python" ] && [ "$(cat "$stamp" 2>/dev/null)" = "$want" ]; then
    return 0
  fi
  if [ ! -x "$CW_VENV/bin/python" ]; then
    local py
    py=$(cw_python) || { cw_say "Python 3.11+ is needed (none found on PATH)"; return 1; }
    if ! "$py" -c 'import venv, ensurepip' 2>/dev/null && command -v apt-get >/dev/null &&
      [ "$(id -u)" = 0 ]; then
      cw_say "installing python3-venv"
      apt-get install -y -q python3-venv >/dev/null
    fi
    cw_say "creating the virtual environment in .venv ($("$py" --version))"
    "$py" -m venv "$CW_VENV" || return 1
  fi
  cw_say "installing the pinned dependencies (requirements-dev.txt, clockwork_tools)"
  "$CW_VENV/bin/python" -m pip install -q --upgrade pip >/dev/null 2>&1 || true
  "$CW_VENV/bin/python" -m pip install -q -r "$CW_ROOT/requirements-dev.txt" 2> >(grep -v 'is ignored' >&2) ||
    return 1
  if [ -f "$CW_ROOT/clockwork_tools/pyproject.toml" ]; then
    "$CW_VENV/bin/python" -m pip install -q -e "$CW_ROOT/clockwork_tools" 2> >(grep -v 'is ignored' >&2) ||
      return 1
  fi
  echo "$want" >"$stamp"
}
