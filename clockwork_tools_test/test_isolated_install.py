"""``clockwork_tools`` installs alone into a fresh virtual environment and works there.

A new venv, ``pip install`` of a copy of the package (its one dependency,
``requests``, comes from the package index), then: import it with no
server-side package around, and run the ``clockwork`` console script.
Takes 10-40 s, mostly pip.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "clockwork_tools"

CHECK = """
import importlib.util, sys
import clockwork_tools as cw
assert cw.Client and cw.ClockworkToolsClient and cw.current_job
for name in ("flask", "pymongo", "pydantic", "clockwork_web", "clockwork_core"):
    assert importlib.util.find_spec(name) is None, name + " should not be installed"
try:
    cw.Client(env={}, config_file="/nonexistent")
except cw.ConfigurationError as exc:
    print("configuration error as expected:", exc)
print("ok", cw.__version__, cw.__file__)
"""


def _clean_env(venv_dir: Path) -> dict[str, str]:
    env = {
        k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV", "PYTHONHOME")
    }
    env["PATH"] = f"{venv_dir / 'bin'}{os.pathsep}{env.get('PATH', '')}"
    env["PIP_DISABLE_PIP_VERSION_CHECK"] = "1"
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    return env


def test_installs_alone_in_a_fresh_venv(tmp_path: Path) -> None:
    source = tmp_path / "src" / "clockwork_tools"
    shutil.copytree(
        PACKAGE, source, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build")
    )
    venv_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True, clear=True).create(venv_dir)
    python = venv_dir / "bin" / "python"
    env = _clean_env(venv_dir)

    install = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(source)],
        env=env, cwd=tmp_path, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert install.returncode == 0, install.stdout + install.stderr

    freeze = subprocess.run([str(python), "-m", "pip", "freeze"], env=env, cwd=tmp_path,
                            capture_output=True, text=True, timeout=60, check=True)  # fmt: skip
    installed = {line.split("==")[0].lower() for line in freeze.stdout.split()}
    assert {"clockwork-tools", "requests"} <= installed | {n.replace("_", "-") for n in installed}
    assert not installed & {"flask", "pymongo", "pydantic", "werkzeug"}

    check = subprocess.run([str(python), "-c", CHECK], env=env, cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert check.returncode == 0, check.stderr
    assert "ok 0.1.0" in check.stdout and str(venv_dir) in check.stdout

    cli = subprocess.run([str(venv_dir / "bin" / "clockwork"), "--help"], env=env, cwd=tmp_path,
                         capture_output=True, text=True, timeout=60, check=False)  # fmt: skip
    assert cli.returncode == 0 and "usage: clockwork" in cli.stdout
    no_server = subprocess.run([str(venv_dir / "bin" / "clockwork"), "jobs"],
                               env={**env, "HOME": str(tmp_path), "XDG_CONFIG_HOME": str(tmp_path)},
                               cwd=tmp_path, capture_output=True, text=True, timeout=60,
                               check=False)  # fmt: skip
    assert no_server.returncode == 2 and "CLOCKWORK_URL" in no_server.stderr
    assert sys.version_info >= (3, 9)
