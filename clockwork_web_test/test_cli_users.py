"""The admin CLI: ``flask users ...`` and ``flask tokens ...``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from pymongo.database import Database

from clockwork_core.config import Config
from clockwork_web import create_app
from clockwork_web.auth import users


@pytest.fixture
def app(config: Config, db: Database[Any]) -> Flask:
    return create_app(config, {"TESTING": True})


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


def run(runner: FlaskCliRunner, *args: str, ok: bool = True) -> Any:
    result = runner.invoke(args=list(args))
    if ok:
        assert result.exit_code == 0, result.output
    else:
        assert result.exit_code != 0, result.output
        assert "Traceback" not in result.output
    return result


def user(db: Database[Any], email: str) -> dict[str, Any]:
    return db.users.find_one({"email": email}, {"_id": 0})


def add_job(db: Database[Any], cluster: str, job_id: str, username: str) -> None:
    db.jobs.insert_one(
        {
            "slurm": {"cluster_name": cluster, "job_id": job_id, "username": username},
            "cw": {"user": None},
        }
    )


def test_users_add_is_idempotent(runner: FlaskCliRunner, db: Database[Any]) -> None:
    add_job(db, "mila", "1", "alice")
    add_job(db, "mila", "2", "bob")
    args = ("users", "add", "Alice@Example.org", "--name", "Alice", "--role", "staff")
    out = run(runner, *args, "--account", "mila:alice", "--account", "narval:alice2")
    assert "created" in out.output
    doc = user(db, "alice@example.org")
    assert doc["roles"] == ["staff"] and doc["status"] == "enabled"
    assert doc["cluster_accounts"] == {"mila": "alice", "narval": "alice2"}
    assert doc["account_keys"] == ["mila/alice", "narval/alice2"]
    assert db.jobs.find_one({"slurm.job_id": "1"})["cw"]["user"] == "alice@example.org"
    assert db.jobs.find_one({"slurm.job_id": "2"})["cw"]["user"] is None
    again = run(runner, *args, "--account", "mila:alice", "--account", "narval:alice2")
    assert "unchanged" in again.output
    assert db.users.count_documents({}) == 1
    run(runner, "users", "add", "bad-email", ok=False)
    run(runner, "users", "add", "x@example.org", "--role", "root", ok=False)
    taken = run(runner, "users", "add", "eve@example.org", "--account", "mila:alice", ok=False)
    assert "belong to alice@example.org" in taken.output


def test_import_csv_idempotent(runner: FlaskCliRunner, db: Database[Any], tmp_path: Path) -> None:
    add_job(db, "mila", "7", "carol")
    file = tmp_path / "ldap.csv"
    file.write_text(
        "email,display_name,roles,cluster_accounts,status,uidNumber\n"
        "alice@example.org,Alice A.,user;staff,mila:alice;narval:alice2,enabled,1001\n"
        "carol@example.org,Carol,,mila:carol,,1002\n"
        "\n"
        "dave@example.org,Dave,admin,,disabled,1003\n"
    )
    first = run(runner, "users", "import", str(file))
    assert "3 created" in first.output
    assert user(db, "alice@example.org")["roles"] == ["user", "staff"]
    assert user(db, "carol@example.org")["roles"] == ["user"]
    assert user(db, "dave@example.org")["status"] == "disabled"
    assert db.jobs.find_one({"slurm.job_id": "7"})["cw"]["user"] == "carol@example.org"
    second = run(runner, "users", "import", str(file))
    assert "0 created, 0 updated, 3 unchanged" in second.output
    # a later dump moves carol's account and renames alice
    file.write_text(
        "email,name,roles,accounts\n"
        "alice@example.org,Alice B.,,\n"
        "carol@example.org,,,narval:carol\n"
    )
    third = run(runner, "users", "import", str(file), "--format", "csv")
    assert "2 updated" in third.output
    assert user(db, "alice@example.org")["display_name"] == "Alice B."
    assert user(db, "alice@example.org")["roles"] == ["user", "staff"]  # empty = unchanged
    assert user(db, "carol@example.org")["account_keys"] == ["narval/carol"]
    assert db.jobs.find_one({"slurm.job_id": "7"})["cw"]["user"] is None


def test_import_json_idempotent(runner: FlaskCliRunner, db: Database[Any], tmp_path: Path) -> None:
    file = tmp_path / "ldap.json"
    data = {
        "users": [
            {"email": "a@example.org", "display_name": "A", "roles": ["admin"]},
            {"mail": "B@example.org", "cluster_accounts": {"mila": "bee"}, "status": "enabled"},
            {"email": "c@example.org", "cluster_accounts": "mila:cee;narval:cee"},
        ]
    }
    file.write_text(json.dumps(data))
    assert "3 created" in run(runner, "users", "import", str(file)).output
    assert "3 unchanged" in run(runner, "users", "import", str(file)).output
    assert user(db, "b@example.org")["account_keys"] == ["mila/bee"]
    assert user(db, "c@example.org")["cluster_accounts"] == {"mila": "cee", "narval": "cee"}


@pytest.mark.parametrize(
    ("name", "content", "message"),
    [
        ("bad.csv", "name,roles\nAlice,user\n", "header with an 'email' column"),
        ("bad2.csv", "email,roles\na@example.org,user\nb@example.org,wizard\n", "line 3"),
        ("bad3.csv", "email,accounts\na@example.org,mila\n", "expected cluster:username"),
        ("dup.csv", "email\na@example.org\nA@example.org\n", "appears twice"),
        ("clash.csv", "email,accounts\na@example.org,mila:x\nb@example.org,mila:x\n", "mila/x"),
        ("bad.json", '{"users": [{"email": "a@example.org"}, {"roles": "user"}', "invalid JSON"),
        ("bad2.json", '[{"email": "a@example.org"}, {"roles": "user"}]', "item 1"),
    ],
)
def test_import_errors_change_nothing(
    runner: FlaskCliRunner, db: Database[Any], tmp_path: Path, name: str, content: str, message: str
) -> None:
    file = tmp_path / name
    file.write_text(content)
    result = run(runner, "users", "import", str(file), ok=False)
    assert message in result.output
    assert "nothing was imported" in result.output
    assert db.users.count_documents({}) == 0


def test_import_account_held_by_other_user(
    runner: FlaskCliRunner, db: Database[Any], tmp_path: Path
) -> None:
    run(runner, "users", "add", "old@example.org", "--account", "mila:shared")
    file = tmp_path / "u.csv"
    file.write_text("email,accounts\nnew@example.org,mila:shared\n")
    result = run(runner, "users", "import", str(file), ok=False)
    assert "belongs to old@example.org" in result.output
    # the same file also taking it from its holder is a valid move
    file.write_text("email,accounts\nnew@example.org,mila:shared\nold@example.org,narval:old\n")
    run(runner, "users", "import", str(file))
    assert user(db, "new@example.org")["account_keys"] == ["mila/shared"]
    assert user(db, "old@example.org")["account_keys"] == ["narval/old"]


def test_set_role_disable_enable_list(runner: FlaskCliRunner, db: Database[Any]) -> None:
    run(runner, "users", "add", "alice@example.org")
    run(runner, "users", "set-role", "alice@example.org", "staff", "admin")
    assert user(db, "alice@example.org")["roles"] == ["staff", "admin"]
    run(runner, "users", "set-role", "alice@example.org", "god", ok=False)
    run(runner, "users", "set-role", "nobody@example.org", "user", ok=False)
    run(runner, "users", "disable", "alice@example.org")
    assert user(db, "alice@example.org")["status"] == "disabled"
    run(runner, "users", "disable", "nobody@example.org", ok=False)
    listing = run(runner, "users", "list").output
    assert "alice@example.org\tdisabled\tstaff,admin" in listing
    run(runner, "users", "enable", "alice@example.org")
    lines = run(runner, "users", "list", "--json").output.strip().splitlines()
    assert json.loads(lines[-1])["status"] == "enabled"
    assert db.audit_log.count_documents({"action": "user.disable", "remote_addr": "cli"}) == 1


def test_set_accounts_remaps_jobs(runner: FlaskCliRunner, db: Database[Any]) -> None:
    add_job(db, "mila", "1", "al")
    add_job(db, "narval", "2", "al")
    run(runner, "users", "add", "alice@example.org", "--account", "mila:al")
    assert db.jobs.find_one({"slurm.job_id": "1"})["cw"]["user"] == "alice@example.org"
    out = run(runner, "users", "set-accounts", "alice@example.org", "narval:al").output
    assert "2 job(s) re-mapped" in out
    assert db.jobs.find_one({"slurm.job_id": "1"})["cw"]["user"] is None
    assert db.jobs.find_one({"slurm.job_id": "2"})["cw"]["user"] == "alice@example.org"
    assert users.get_user(db, "alice@example.org")["account_keys"] == ["narval/al"]


def test_tokens_create_prints_token_last(
    app: Flask, runner: FlaskCliRunner, db: Database[Any]
) -> None:
    run(runner, "users", "add", "alice@example.org")
    result = run(runner, "tokens", "create", "alice@example.org", "laptop", "--expires", "30")
    token = result.output.strip().splitlines()[-1]
    assert token.startswith("cw_") and " " not in token
    client = app.test_client()
    answer = client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"})
    assert answer.status_code == 200
    assert answer.get_json()["tokens"][0]["expires_at"]
    listing = run(runner, "tokens", "list", "alice@example.org").output
    token_id = listing.split("\t")[0]
    assert token[:8] in listing and token not in listing
    run(runner, "tokens", "revoke", "alice@example.org", token_id)
    assert (
        client.get("/api/v1/tokens", headers={"Authorization": f"Bearer {token}"}).status_code
        == 401
    )
    run(runner, "tokens", "revoke", "alice@example.org", token_id, ok=False)
    run(runner, "tokens", "create", "nobody@example.org", "x", ok=False)
    run(runner, "tokens", "create", "alice@example.org", "x", "--expires", "0", ok=False)
