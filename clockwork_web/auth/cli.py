"""Administration from the shell: ``flask --app clockwork_web users|tokens ...``.

Every change is written to the audit log (``remote_addr = "cli"``). Errors are
one line on stderr and a non-zero exit, never a traceback.
"""

from __future__ import annotations

import json
from pathlib import Path

import click
from flask import Flask
from flask.cli import AppGroup

from clockwork_web.auth import tokens as token_store
from clockwork_web.auth import users as user_store
from clockwork_web.auth.access import audit
from clockwork_web.db import get_db

users_cli = AppGroup("users", help="Manage Clockwork accounts.")
tokens_cli = AppGroup("tokens", help="Manage API tokens.")


def _fail(message: str) -> click.ClickException:
    return click.ClickException(message)


@users_cli.command("add")
@click.argument("email")
@click.option("--name", "display_name", help="Display name (default: the email's local part).")
@click.option("--role", "roles", multiple=True, help="user, staff or admin (repeatable).")
@click.option(
    "--account", "accounts", multiple=True, metavar="CLUSTER:USERNAME", help="Repeatable."
)
@click.option("--status", type=click.Choice(user_store.STATUSES), default=None)
def users_add(
    email: str,
    display_name: str | None,
    roles: tuple[str, ...],
    accounts: tuple[str, ...],
    status: str | None,
) -> None:
    """Add a user, or update the given fields of an existing one."""
    try:
        row = user_store.UserRow(
            email=user_store.normalize_email(email),
            display_name=display_name,
            roles=user_store.parse_roles(list(roles)) if roles else None,
            cluster_accounts=(
                user_store.parse_cluster_accounts(";".join(accounts)) if accounts else None
            ),
            status=status,
        )
        outcome = user_store.upsert_user(get_db(), row)
    except user_store.UserInputError as exc:
        raise _fail(str(exc)) from None
    audit("user.add", row.email, outcome)
    click.echo(f"{row.email}: {outcome}")


@users_cli.command("import")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "json"]),
    default=None,
    help="Default: from the file's extension.",
)
def users_import(file: Path, fmt: str | None) -> None:
    """Create or update users from a CSV or JSON export (idempotent; all or nothing on errors)."""
    fmt = fmt or ("json" if file.suffix.lower() == ".json" else "csv")
    try:
        text = file.read_text(encoding="utf-8-sig")
    except (OSError, UnicodeDecodeError) as exc:
        raise _fail(f"cannot read {file}: {exc}") from None
    try:
        rows = user_store.parse_json(text) if fmt == "json" else user_store.parse_csv(text)
        counts = user_store.import_users(get_db(), rows)
    except user_store.UserInputError as exc:
        raise _fail(f"{file}: {exc}; nothing was imported") from None
    audit("user.import", str(file), "ok", **counts)
    click.echo(", ".join(f"{n} {what}" for what, n in counts.items()))


@users_cli.command("set-role")
@click.argument("email")
@click.argument("roles", nargs=-1, required=True)
def users_set_role(email: str, roles: tuple[str, ...]) -> None:
    """Replace a user's roles (user, staff, admin)."""
    try:
        found = user_store.set_roles(get_db(), email, roles)
    except user_store.UserInputError as exc:
        raise _fail(str(exc)) from None
    if not found:
        raise _fail(f"no user {email}")
    audit("user.set_role", email.lower(), "ok", roles=list(roles))
    click.echo(f"{email.lower()}: roles {' '.join(roles)}")


def _set_status(email: str, status: str) -> None:
    try:
        found = user_store.set_status(get_db(), email, status)
    except user_store.UserInputError as exc:
        raise _fail(str(exc)) from None
    if not found:
        raise _fail(f"no user {email}")
    audit(f"user.{status[:-1]}", email.lower(), "ok")
    click.echo(f"{email.lower()}: {status}")


@users_cli.command("disable")
@click.argument("email")
def users_disable(email: str) -> None:
    """Disable a user: their sessions and tokens stop working at once."""
    _set_status(email, "disabled")


@users_cli.command("enable")
@click.argument("email")
def users_enable(email: str) -> None:
    _set_status(email, "enabled")


@users_cli.command("set-accounts")
@click.argument("email")
@click.argument("accounts", nargs=-1, metavar="CLUSTER:USERNAME...")
def users_set_accounts(email: str, accounts: tuple[str, ...]) -> None:
    """Replace a user's cluster accounts (none = remove all) and re-map their jobs."""
    try:
        parsed = user_store.parse_cluster_accounts(";".join(accounts))
        remapped = user_store.set_cluster_accounts(get_db(), email, parsed)
    except user_store.UserInputError as exc:
        raise _fail(str(exc)) from None
    audit("user.set_accounts", email.lower(), "ok", accounts=parsed)
    click.echo(f"{email.lower()}: {len(parsed)} account(s), {remapped} job(s) re-mapped")


@users_cli.command("list")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
def users_list(as_json: bool) -> None:
    """Every user: email, status, roles, cluster accounts."""
    for doc in user_store.list_users(get_db()):
        if as_json:
            click.echo(json.dumps(doc, default=str, sort_keys=True))
            continue
        accounts = ";".join(f"{c}:{u}" for c, u in sorted(doc.get("cluster_accounts", {}).items()))
        click.echo(
            f"{doc['email']}\t{doc.get('status', '')}\t{','.join(doc.get('roles', []))}"
            f"\t{accounts}\t{doc.get('display_name', '')}"
        )


@tokens_cli.command("create")
@click.argument("email")
@click.argument("name")
@click.option("--expires", "expires_days", type=int, default=None, help="Lifetime in days.")
def tokens_create(email: str, name: str, expires_days: int | None) -> None:
    """Create an API token; the token is printed alone on the last line, once."""
    db = get_db()
    try:
        email = user_store.normalize_email(email)
    except user_store.UserInputError as exc:
        raise _fail(str(exc)) from None
    if user_store.get_user(db, email) is None:
        raise _fail(f"no user {email}")
    try:
        token, doc = token_store.create_token(db, email, name, expires_days)
    except ValueError as exc:
        raise _fail(str(exc)) from None
    audit("token.create", str(doc["_id"]), "ok", owner=email, name=doc["name"])
    expiry = doc["expires_at"].isoformat() if doc["expires_at"] else "never"
    click.echo(f"token {doc['name']!r} for {email} (id {doc['_id']}, expires {expiry}):", err=True)
    click.echo(token)


@tokens_cli.command("list")
@click.argument("email")
def tokens_list(email: str) -> None:
    """A user's tokens (id, prefix, name, created, expires, last used)."""
    for t in token_store.list_tokens(get_db(), email.strip().lower()):
        click.echo(
            f"{t['id']}\t{t['prefix']}…\t{t['name']}\t{t['created_at']:%Y-%m-%d}"
            f"\t{t['expires_at'] or 'never'}\t{t['last_used'] or 'never used'}"
        )


@tokens_cli.command("revoke")
@click.argument("email")
@click.argument("token_id")
def tokens_revoke(email: str, token_id: str) -> None:
    """Revoke a user's token by id (see ``tokens list``)."""
    email = email.strip().lower()
    if not token_store.revoke_token(get_db(), email, token_id):
        raise _fail(f"no token {token_id} of {email}")
    audit("token.revoke", token_id, "ok", owner=email)
    click.echo(f"revoked {token_id}")


def init_app(app: Flask) -> None:
    app.cli.add_command(users_cli)
    app.cli.add_command(tokens_cli)
