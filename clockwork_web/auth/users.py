"""Clockwork accounts: add, import (an LDAP dump as CSV or JSON), roles, status.

Plain functions over the ``users`` collection, used by the admin CLI and the
login. Emails are stored lower-case. ``account_keys`` (``cluster/username``)
is derived from ``cluster_accounts`` here and nowhere else, and when a user's
cluster accounts change, the jobs of those accounts are re-mapped
(``jobs.cw.user``) at once.

Import format, one user per CSV row or JSON object::

    email,display_name,roles,cluster_accounts,status
    alice@example.org,Alice A.,user;staff,mila:alice;narval:alice2,enabled

An empty (or absent) field leaves that field of an existing user unchanged;
a new user gets ``roles=["user"]``, ``status="enabled"``.

Every lookup goes through :func:`email_key` (trimmed, lower-case), so an email
typed in another case finds the same account. Changing a user's roles or
status, and logging out (:func:`end_sessions`), increases their
``session_gen``: every browser session issued before stops working.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

ROLES: tuple[str, ...] = ("user", "staff", "admin")
STATUSES: tuple[str, ...] = ("enabled", "disabled")

_EMAIL = re.compile(r"^[^@\s,;:<>]+@[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?$")
_CLUSTER = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
_USERNAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.@-]{0,63}$")

#: Column aliases an LDAP export may use.
_ALIASES = {
    "name": "display_name",
    "displayname": "display_name",
    "display_name": "display_name",
    "mail": "email",
    "email": "email",
    "roles": "roles",
    "role": "roles",
    "cluster_accounts": "cluster_accounts",
    "accounts": "cluster_accounts",
    "status": "status",
}


class UserInputError(ValueError):
    """Invalid user data; ``where`` names the line/item when it comes from a file."""

    def __init__(self, message: str, where: str = "") -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where


@dataclass(frozen=True)
class UserRow:
    """One user as given by an admin or an import; None = leave unchanged."""

    email: str
    display_name: str | None = None
    roles: tuple[str, ...] | None = None
    cluster_accounts: dict[str, str] | None = None
    status: str | None = None


# --------------------------------------------------------------------------- parsing


def normalize_email(value: Any) -> str:
    """Lower-case, trimmed, checked email."""
    if not isinstance(value, str) or not _EMAIL.match(value.strip()):
        raise UserInputError(f"invalid email {value!r}")
    return email_key(value)


def email_key(value: str) -> str:
    """The form an email is stored and looked up in (trimmed, lower-case), unchecked.

    For lookups: a malformed value simply finds nobody.
    """
    return value.strip().lower()


def email_domain(email: str) -> str:
    return email.rsplit("@", 1)[1].lower()


def parse_roles(value: str | Iterable[str]) -> tuple[str, ...]:
    """``"user;staff"`` (or ``,``/space separated, or a list) -> ``("user", "staff")``."""
    items = re.split(r"[;,\s]+", value) if isinstance(value, str) else list(value)
    roles: list[str] = []
    for item in items:
        if not isinstance(item, str):
            raise UserInputError(f"invalid role {item!r}")
        role = item.strip().lower()
        if not role:
            continue
        if role not in ROLES:
            raise UserInputError(f"unknown role {role!r}; roles are {', '.join(ROLES)}")
        if role not in roles:
            roles.append(role)
    if not roles:
        raise UserInputError("at least one role is required")
    return tuple(roles)


def parse_status(value: Any) -> str:
    if not isinstance(value, str) or value.strip().lower() not in STATUSES:
        raise UserInputError(f"invalid status {value!r}; use {' or '.join(STATUSES)}")
    return value.strip().lower()


def parse_cluster_accounts(value: str | Mapping[str, Any]) -> dict[str, str]:
    """``"mila:alice;narval:alice2"`` (or a mapping) -> ``{"mila": "alice", ...}``."""
    if isinstance(value, Mapping):
        pairs = list(value.items())
    elif isinstance(value, str):
        pairs = []
        for part in re.split(r"[;,\s]+", value.strip()):
            if not part:
                continue
            cluster, sep, username = part.partition(":")
            if not sep:
                raise UserInputError(f"cluster account {part!r}: expected cluster:username")
            pairs.append((cluster, username))
    else:
        raise UserInputError(f"invalid cluster accounts {value!r}")
    accounts: dict[str, str] = {}
    for cluster, username in pairs:
        if not isinstance(cluster, str) or not _CLUSTER.match(cluster):
            raise UserInputError(f"invalid cluster name {cluster!r}")
        if not isinstance(username, str) or not _USERNAME.match(username):
            raise UserInputError(f"invalid username {username!r} on cluster {cluster}")
        if cluster in accounts and accounts[cluster] != username:
            raise UserInputError(f"two usernames given for cluster {cluster}")
        accounts[cluster] = username
    return accounts


def account_keys(cluster_accounts: Mapping[str, str]) -> list[str]:
    """The ``cluster/username`` keys the scraper maps jobs with."""
    return sorted(f"{cluster}/{username}" for cluster, username in cluster_accounts.items())


def row_from_mapping(data: Mapping[str, Any], where: str = "") -> UserRow:
    """A :class:`UserRow` from one CSV row / JSON object (column aliases accepted)."""
    if not isinstance(data, Mapping):
        raise UserInputError("expected an object with an email", where)
    fields: dict[str, Any] = {}
    for key, value in data.items():
        name = _ALIASES.get(str(key).strip().lower()) if key is not None else None
        if name is None:
            continue  # extra LDAP attributes are ignored
        if isinstance(value, str):
            value = value.strip()
        if value in ("", None, [], {}):
            continue
        fields[name] = value
    try:
        email = normalize_email(fields.get("email"))
        display_name = fields.get("display_name")
        if display_name is not None and (
            not isinstance(display_name, str) or len(display_name) > 200
        ):
            raise UserInputError(f"invalid display_name {display_name!r}")
        return UserRow(
            email=email,
            display_name=display_name,
            roles=parse_roles(fields["roles"]) if "roles" in fields else None,
            cluster_accounts=(
                parse_cluster_accounts(fields["cluster_accounts"])
                if "cluster_accounts" in fields
                else None
            ),
            status=parse_status(fields["status"]) if "status" in fields else None,
        )
    except UserInputError as exc:
        raise UserInputError(str(exc), where) from None


def parse_csv(text: str) -> list[UserRow]:
    """Rows of a CSV file with a header line (see the module docstring)."""
    reader = csv.DictReader(io.StringIO(text))
    if not reader.fieldnames or "email" not in {
        _ALIASES.get(f.strip().lower()) for f in reader.fieldnames if f
    }:
        raise UserInputError("the first line must be a header with an 'email' column", "line 1")
    rows = []
    for row in reader:
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        rows.append(row_from_mapping(row, f"line {reader.line_num}"))
    return rows


def parse_json(text: str) -> list[UserRow]:
    """A JSON list of user objects, or ``{"users": [...]}``."""
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UserInputError(f"invalid JSON: {exc.msg}", f"line {exc.lineno}") from None
    if isinstance(data, Mapping) and isinstance(data.get("users"), list):
        data = data["users"]
    if not isinstance(data, list):
        raise UserInputError('expected a list of users or {"users": [...]}')
    return [row_from_mapping(item, f"item {i}") for i, item in enumerate(data)]


# --------------------------------------------------------------------------- storage


def get_user(db: Database[Any], email: str) -> dict[str, Any] | None:
    """The record of ``email`` (in any case), or None."""
    return db.users.find_one({"email": email_key(email)})


def list_users(db: Database[Any], limit: int = 0) -> list[dict[str, Any]]:
    """Every user, by email."""
    hidden = {"_id": 0, "token_ids": 0, "session_gen": 0}
    return list(db.users.find({}, hidden).sort("email", 1).limit(limit))


def _check_accounts_free(db: Database[Any], email: str, accounts: Mapping[str, str]) -> None:
    keys = account_keys(accounts)
    if not keys:
        return
    for other in db.users.find({"account_keys": {"$in": keys}}, {"email": 1, "account_keys": 1}):
        if other["email"] == email:
            continue
        taken = sorted(set(keys) & set(other.get("account_keys", [])))
        raise UserInputError(f"cluster account(s) {', '.join(taken)} belong to {other['email']}")


def remap_jobs(
    db: Database[Any], email: str, old: Mapping[str, str], new: Mapping[str, str]
) -> int:
    """Point the jobs of the accounts ``email`` gained at them, and unmap the ones lost."""
    # An account belongs to one user at most, so the jobs of an account ``email``
    # loses are theirs: the filter stays on the (cluster, username) index.
    changed = 0
    for cluster, username in old.items():
        if new.get(cluster) != username:
            changed += db.jobs.update_many(
                {"slurm.cluster_name": cluster, "slurm.username": username},
                {"$set": {"cw.user": None}},
            ).modified_count
    for cluster, username in new.items():
        if old.get(cluster) != username:
            changed += db.jobs.update_many(
                {"slurm.cluster_name": cluster, "slurm.username": username},
                {"$set": {"cw.user": email}},
            ).modified_count
    return changed


def upsert_user(db: Database[Any], row: UserRow) -> str:
    """Create or update one user; returns ``"created"``, ``"updated"`` or ``"unchanged"``.

    Idempotent: the same row twice changes nothing the second time. A change
    of roles or status ends the user's sessions (``session_gen``).
    """
    row = replace(row, email=normalize_email(row.email))
    existing = db.users.find_one({"email": row.email})
    if row.cluster_accounts is not None:
        _check_accounts_free(db, row.email, row.cluster_accounts)
    now = datetime.now(UTC)
    if existing is None:
        accounts = dict(row.cluster_accounts or {})
        doc = {
            "email": row.email,
            "display_name": row.display_name or row.email.split("@")[0],
            "status": row.status or "enabled",
            "roles": list(row.roles or ("user",)),
            "cluster_accounts": accounts,
            "account_keys": account_keys(accounts),
            "settings": {},
            "created_at": now,
            "last_login": None,
        }
        try:
            db.users.insert_one(doc)
        except DuplicateKeyError:  # created concurrently: update it instead
            return upsert_user(db, row)
        remap_jobs(db, row.email, {}, accounts)
        return "created"
    changes: dict[str, Any] = {}
    if row.display_name is not None and row.display_name != existing.get("display_name"):
        changes["display_name"] = row.display_name
    if row.status is not None and row.status != existing.get("status"):
        changes["status"] = row.status
    if row.roles is not None and list(row.roles) != existing.get("roles"):
        changes["roles"] = list(row.roles)
    old_accounts = dict(existing.get("cluster_accounts") or {})
    if row.cluster_accounts is not None and row.cluster_accounts != old_accounts:
        changes["cluster_accounts"] = dict(row.cluster_accounts)
        changes["account_keys"] = account_keys(row.cluster_accounts)
    if not changes:
        return "unchanged"
    update: dict[str, Any] = {"$set": changes}
    if "status" in changes or "roles" in changes:
        update["$inc"] = {"session_gen": 1}
    db.users.update_one({"email": row.email}, update)
    if "cluster_accounts" in changes:
        remap_jobs(db, row.email, old_accounts, row.cluster_accounts or {})
    return "updated"


def import_users(db: Database[Any], rows: list[UserRow]) -> dict[str, int]:
    """Upsert every row; checks the whole batch first so a bad file changes nothing.

    Returns counts by outcome (created, updated, unchanged).
    """
    seen: dict[str, int] = {}
    claimed: dict[str, str] = {}
    for i, row in enumerate(rows):
        if row.email in seen:
            raise UserInputError(f"{row.email} appears twice (also item {seen[row.email]})")
        seen[row.email] = i
        for key in account_keys(row.cluster_accounts or {}):
            if key in claimed:
                raise UserInputError(
                    f"cluster account {key} given to {claimed[key]} and {row.email}"
                )
            claimed[key] = row.email
    # accounts held in the database by users the file does not re-assign
    replaced = {row.email for row in rows if row.cluster_accounts is not None}
    if claimed:
        for doc in db.users.find(
            {"account_keys": {"$in": sorted(claimed)}}, {"email": 1, "account_keys": 1}
        ):
            if doc["email"] in replaced:
                continue
            for key in doc.get("account_keys", []):
                if key in claimed and claimed[key] != doc["email"]:
                    raise UserInputError(f"cluster account {key} belongs to {doc['email']}")
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    # release accounts first (users losing some), then assign, so swaps work
    ordered = sorted(rows, key=lambda r: r.cluster_accounts is None or bool(r.cluster_accounts))
    for row in ordered:
        if row.cluster_accounts is not None:
            _release_moved_accounts(db, row, claimed)
    for row in ordered:
        counts[upsert_user(db, row)] += 1
    return counts


def _release_moved_accounts(db: Database[Any], row: UserRow, claimed: Mapping[str, str]) -> None:
    """Drop from ``row``'s user the accounts the batch gives to someone else."""
    existing = db.users.find_one({"email": row.email}, {"cluster_accounts": 1})
    if not existing:
        return
    old = dict(existing.get("cluster_accounts") or {})
    kept = {c: u for c, u in old.items() if claimed.get(f"{c}/{u}", row.email) == row.email}
    if kept != old:
        db.users.update_one(
            {"email": row.email},
            {"$set": {"cluster_accounts": kept, "account_keys": account_keys(kept)}},
        )
        remap_jobs(db, row.email, old, kept)


def _set_account_field(db: Database[Any], email: str, field: str, value: Any) -> bool:
    """Set ``field``; a real change ends the user's sessions. False if no such user."""
    email = normalize_email(email)
    existing = db.users.find_one({"email": email})
    if existing is None:
        return False
    if existing.get(field) != value:
        db.users.update_one({"email": email}, {"$set": {field: value}, "$inc": {"session_gen": 1}})
    return True


def set_roles(db: Database[Any], email: str, roles: Iterable[str]) -> bool:
    """Replace a user's roles (their sessions end: they sign in again); False if unknown."""
    return _set_account_field(db, email, "roles", list(parse_roles(list(roles))))


def set_status(db: Database[Any], email: str, status: str) -> bool:
    """Enable or disable a user (takes effect on their next request); False if unknown.

    Either change ends their sessions: enabling an account again does not
    bring back a cookie issued before it was disabled.
    """
    return _set_account_field(db, email, "status", parse_status(status))


def end_sessions(db: Database[Any], email: str) -> None:
    """Void every browser session of ``email`` (logout): their cookies stop working."""
    db.users.update_one({"email": email_key(email)}, {"$inc": {"session_gen": 1}})


def set_cluster_accounts(db: Database[Any], email: str, accounts: Mapping[str, str]) -> int:
    """Replace a user's cluster accounts and re-map their jobs; returns jobs re-mapped."""
    email = normalize_email(email)
    accounts = parse_cluster_accounts(accounts)
    existing = db.users.find_one({"email": email}, {"cluster_accounts": 1})
    if existing is None:
        raise UserInputError(f"no user {email}")
    _check_accounts_free(db, email, accounts)
    old = dict(existing.get("cluster_accounts") or {})
    db.users.update_one(
        {"email": email},
        {"$set": {"cluster_accounts": accounts, "account_keys": account_keys(accounts)}},
    )
    return remap_jobs(db, email, old, accounts)


def record_login(db: Database[Any], email: str) -> None:
    db.users.update_one({"email": email_key(email)}, {"$set": {"last_login": datetime.now(UTC)}})
