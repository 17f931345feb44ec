"""Every Python example of docs/client.md runs against the real server.

The blocks run in order, each in a fresh namespace, with ``CLOCKWORK_URL``,
``CLOCKWORK_TOKEN`` (and the original client's ``CLOCKWORK_EMAIL``) set for
the demo student, on a server that accepts submissions and holds a finished
submission with real output files.
"""

from __future__ import annotations

import contextlib
import getpass
import inspect
import io
import re
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

import clockwork_tools as cw
from test_common.webapp import STUDENT, LiveServer, live_server_submit  # noqa: F401

DOC = Path(__file__).resolve().parent.parent / "docs" / "client.md"
BLOCK = re.compile(r"^```python\n(.*?)^```", re.S | re.M)


def python_blocks() -> list[str]:
    return BLOCK.findall(DOC.read_text(encoding="utf-8"))


def test_every_client_method_has_an_example() -> None:
    code = "\n".join(python_blocks())
    methods = [
        name
        for name, _ in inspect.getmembers(cw.Client, inspect.isfunction)
        if not name.startswith("_") and name != "close"
    ]
    missing = [m for m in methods if f".{m}(" not in code]
    assert not missing, f"docs/client.md has no example for {missing}"
    for name in ("jobs_list", "jobs_one", "get_user_props", "set_user_props",
                 "delete_user_props", "nodes_list"):  # fmt: skip
        assert f".{name}(" in code


def _finished_submission(server: LiveServer, tmp_path: Path) -> None:
    out = tmp_path / "job" / "slurm-99.out"
    out.parent.mkdir()
    out.write_text("epoch 1 loss 0.5\nepoch 2 loss 0.25\n")
    now = datetime.now(UTC)
    # the student's account on the cluster owns the job (files need it, as for any user)
    server.db.users.update_one(
        {"email": STUDENT}, {"$set": {"cluster_accounts.testcluster": getpass.getuser()}}
    )
    server.db.submissions.insert_one(
        {"uuid": str(uuid.uuid4()), "user_email": STUDENT, "cluster_name": "testcluster",
         "username": getpass.getuser(), "source": "submit", "task": {"name": "generic"},
         "notification": None, "state": "COMPLETED", "slurm_state": "COMPLETED", "job_id": 99,
         "cwd": str(out.parent), "dirs": [], "stdout": str(out), "stderr": str(out),
         "attempts": 1, "next_attempt": None, "last_error": None, "created_at": now,
         "updated_at": now, "submitted_at": now, "history": []}
    )  # fmt: skip


def test_examples_run(
    live_server_submit: LiveServer,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    server = live_server_submit
    _finished_submission(server, tmp_path)
    for name in ("SLURM_JOB_ID", "SLURM_JOBID", "SLURM_CLUSTER_NAME", "CLOCKWORK_API_KEY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("CLOCKWORK_URL", server.url)
    monkeypatch.setenv("CLOCKWORK_TOKEN", server.token(STUDENT))
    monkeypatch.setenv("CLOCKWORK_EMAIL", STUDENT)
    monkeypatch.setenv("CLOCKWORK_CONFIG_FILE", str(tmp_path / "none.toml"))
    blocks = python_blocks()
    assert len(blocks) >= 15
    outputs: list[str] = []
    for number, code in enumerate(blocks, 1):
        printed = io.StringIO()
        namespace: dict[str, Any] = {"__name__": f"docs_example_{number}"}
        with contextlib.redirect_stdout(printed):
            try:
                example = compile(code, f"docs/client.md example {number}", "exec")
                exec(example, namespace)  # noqa: S102 - the docs' own examples
            except Exception as exc:  # name the example in the failure
                pytest.fail(f"example {number} failed: {exc!r}\n{code}")
        outputs.append(printed.getvalue())
    text = "\n".join(outputs)
    assert "404 not_found" in text and "bad parameter" in text
    assert "token OK for " + STUDENT in text
    assert "epoch 2 loss 0.25" in text and "saved" in text
    assert "already submitted: PENDING" in text and "CANCELLED" in text
    assert "not in a Slurm job" in text
