"""Submissions: submit, cancel, adopt, follow. Plain functions over the database.

A submission document (collection ``submissions``)::

    {uuid, user_email, cluster_name, username, source: submit|proxy|monitor,
     task: Task.to_dict(), notification, state, slurm_state, job_id,
     cwd, stdout, stderr, dirs, attempts, next_attempt, last_error,
     created_at, updated_at, submitted_at, history: [{time, state, note}]}

The lifecycle is the explicit state machine :func:`next_state`: PENDING (not
sent yet: the cluster was unreachable; :func:`retry_pending` sends it later),
SUBMITTED (Slurm has it and reports it pending, or has not reported yet), then
Slurm's own state (RUNNING, SUSPENDED, ...) up to a final one. CANCELLING
holds from the cancel request until Slurm reports a final state.

Identity: the Slurm username is ALWAYS ``user.cluster_accounts[cluster]`` of
the logged-in user, never a field of the request. Every submit and cancel,
accepted or refused, is written to ``audit_log``.

Views pass the database, the config and the user; ``backend_for`` (a function
``ClusterConfig -> Backend``) is a parameter so the CLI and the views share
one code path.
"""

from __future__ import annotations

import dataclasses
import logging
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from pymongo import ASCENDING, DESCENDING, ReturnDocument
from pymongo.database import Database
from pymongo.errors import DuplicateKeyError

from clockwork_core.config import ClusterConfig, Config
from clockwork_core.schema import FINAL_STATES as SCHEMA_FINAL_STATES
from clockwork_web.errors import BadRequest, Conflict, Forbidden, NotFound, Unavailable
from clockwork_web.submissions.backends import (
    Backend,
    BackendError,
    BackendRejected,
    BackendUnavailable,
    base_state,
    get_backend,
)
from clockwork_web.submissions.task import Notification, Task, parse_notification, parse_task

log = logging.getLogger(__name__)

BackendFor = Callable[[ClusterConfig], Backend]

# --------------------------------------------------------------------------- states

PENDING = "PENDING"
SUBMITTED = "SUBMITTED"
CANCELLING = "CANCELLING"
#: Slurm states after which nothing changes any more (the schema's own list).
FINAL_STATES: frozenset[str] = SCHEMA_FINAL_STATES
#: Slurm states that mean "queued": the submission shows SUBMITTED for them.
QUEUED_STATES: frozenset[str] = frozenset(
    {"PENDING", "REQUEUED", "REQUEUE_FED", "REQUEUE_HOLD", "RESV_DEL_HOLD", "CONFIGURING"}
)
#: Every state a submission can be in, for filters.
STATES: frozenset[str] = frozenset(
    {PENDING, SUBMITTED, CANCELLING, "RUNNING", "COMPLETING", "SUSPENDED", "STOPPED"} | FINAL_STATES
)
MAX_PER_PAGE = 500


class InvalidTransition(Exception):
    """The event is not allowed in the current state (e.g. cancelling a finished job)."""


@dataclass(frozen=True)
class Event:
    """Something that happened to a submission.

    ``kind``: ``sent`` (the backend accepted it), ``unreachable`` (try later),
    ``cancel`` (the owner asked), ``slurm`` (Slurm reported ``state``).
    """

    kind: str
    state: str | None = None


def next_state(current: str, event: Event) -> str:
    """The state after ``event``; raises InvalidTransition for a refused one.

    Final states absorb every event except ``cancel``, which is refused.
    """
    if event.kind == "cancel":
        if current in FINAL_STATES:
            raise InvalidTransition(f"the job is already {current}")
        return "CANCELLED" if current == PENDING else CANCELLING
    if current in FINAL_STATES:
        return current
    if event.kind == "sent":
        return SUBMITTED if current == PENDING else current
    if event.kind == "unreachable":
        return current
    if event.kind == "slurm":
        state = base_state(event.state or "")
        if state in FINAL_STATES:
            return state
        if current == CANCELLING:
            return CANCELLING
        if state in QUEUED_STATES or not state:
            return SUBMITTED
        return state
    raise InvalidTransition(f"unknown event {event.kind!r}")


# --------------------------------------------------------------------------- helpers


class DuplicateSubmission(Conflict):
    """The uuid is taken; ``submission`` is the existing one when it is the caller's."""

    def __init__(self, message: str, submission: dict[str, Any] | None) -> None:
        super().__init__(message)
        self.submission = submission


def _now(now: datetime | None) -> datetime:
    return now or datetime.now(UTC)


def record_audit(
    db: Database[Any],
    *,
    user_email: str | None,
    action: str,
    target: str,
    result: str,
    remote_addr: str | None,
    **details: Any,
) -> None:
    """One ``audit_log`` document (the plain-function twin of ``access.audit``)."""
    try:
        db.audit_log.insert_one(
            {
                "time": datetime.now(UTC),
                "user_email": user_email,
                "action": action,
                "target": target,
                "remote_addr": remote_addr or "cli",
                "result": result,
                "details": details,
            }
        )
    except Exception:  # the audit log must never fail the request it records
        log.exception("cannot write the audit log: %s %s %s", action, target, result)


def expand_output_path(pattern: str, *, job_id: int, job_name: str, username: str, cwd: str) -> str:
    """Slurm's filename pattern (``%j %J %A %a %x %u %%``) for a known job, made absolute."""
    replacements = {
        "j": str(job_id),
        "J": str(job_id),
        "A": str(job_id),
        "a": "0",
        "x": job_name,
        "u": username,
        "%": "%",
    }
    path = re.sub(r"%(\d*)([jJAaxu%])", lambda m: replacements[m.group(2)], pattern)
    if not path.startswith("/"):
        path = cwd.rstrip("/") + "/" + path
    return path


def _output_paths(task: Task, job_id: int, username: str, cwd: str) -> tuple[str, str]:
    name = str(task.slurm.get("job_name") or "sbatch")
    default = "slurm-%A_%a.out" if "array" in task.slurm else "slurm-%j.out"
    stdout = expand_output_path(
        task.slurm.get("output") or default,
        job_id=job_id,
        job_name=name,
        username=username,
        cwd=cwd,
    )
    stderr = (
        expand_output_path(
            task.slurm["error"], job_id=job_id, job_name=name, username=username, cwd=cwd
        )
        if task.slurm.get("error")
        else stdout
    )
    return stdout, stderr


def task_from_doc(doc: Mapping[str, Any]) -> Task:
    """Rebuild the Task stored in a submission (it was validated when it came in)."""
    t = doc["task"]
    notification = t.get("notification")
    return Task(
        uuid=t["uuid"],
        cluster=t["cluster"],
        template=t["name"],
        script=t["script"],
        cmd=tuple(t.get("cmd") or ()),
        params=tuple(t.get("params") or ()),
        slurm=dict(t.get("slurm") or {}),
        dirs=tuple(t.get("dirs") or ()),
        cwd=t.get("cwd"),
        notification=(
            Notification(
                methods=tuple(notification["methods"]),
                params=dict(notification.get("params") or {}),
                on=tuple(notification.get("on") or ("final",)),
            )
            if notification
            else None
        ),
    )


def public_view(doc: Mapping[str, Any]) -> dict[str, Any]:
    """What the API shows of a submission (no internal ids; times in ISO 8601)."""

    def iso(value: Any) -> Any:
        if isinstance(value, datetime):
            if value.tzinfo is None:
                value = value.replace(tzinfo=UTC)
            return value.isoformat()
        return value

    task = doc.get("task") or {}
    return {
        "uuid": doc["uuid"],
        "user": doc.get("user_email"),
        "cluster": doc.get("cluster_name"),
        "username": doc.get("username"),
        "source": doc.get("source"),
        "state": doc.get("state"),
        "slurm_state": doc.get("slurm_state"),
        "job_id": doc.get("job_id"),
        "name": task.get("name"),
        "slurm": task.get("slurm") or {},
        "cmd": task.get("cmd") or [],
        "params": task.get("params") or [],
        "cwd": doc.get("cwd"),
        "dirs": doc.get("dirs") or [],
        "stdout": doc.get("stdout"),
        "stderr": doc.get("stderr"),
        "notification": doc.get("notification"),
        "attempts": doc.get("attempts", 0),
        "last_error": doc.get("last_error"),
        "created_at": iso(doc.get("created_at")),
        "updated_at": iso(doc.get("updated_at")),
        "submitted_at": iso(doc.get("submitted_at")),
        "history": [
            {"time": iso(h.get("time")), "state": h.get("state"), "note": h.get("note")}
            for h in doc.get("history") or []
        ],
    }


def _key(doc: dict[str, Any]) -> dict[str, Any]:
    """The filter of one submission: uuids are unique per user, not across users."""
    return {"user_email": doc["user_email"], "uuid": doc["uuid"]}


def _cluster_account(user: Any, cluster: str, claimed: str | None) -> str:
    username = (user.cluster_accounts or {}).get(cluster)
    if not username:
        raise Forbidden(f"you have no account on cluster {cluster!r}")
    if claimed is not None and claimed != username:
        raise Forbidden(f"username {str(claimed)[:40]!r} is not your account on {cluster!r}")
    return username


def _set_state(
    db: Database[Any],
    doc: dict[str, Any],
    state: str,
    now: datetime,
    *,
    note: str | None = None,
    extra: Mapping[str, Any] | None = None,
    expect: str | None = None,
) -> dict[str, Any] | None:
    """Move ``doc`` to ``state`` if it is still in ``expect`` (optimistic, atomic)."""
    update: dict[str, Any] = {"$set": {"state": state, "updated_at": now, **(extra or {})}}
    if state != doc.get("state"):
        update["$push"] = {"history": {"time": now, "state": state, "note": note}}
    new = db.submissions.find_one_and_update(
        {**_key(doc), "state": expect if expect is not None else doc["state"]},
        update,
        return_document=ReturnDocument.AFTER,
    )
    return new


# --------------------------------------------------------------------------- submit


def submit(
    db: Database[Any],
    config: Config,
    user: Any,
    data: Any,
    *,
    remote_addr: str | None = None,
    source: str = "submit",
    claimed_username: str | None = None,
    allow: frozenset[str] = frozenset(),
    backend_for: BackendFor = get_backend,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Validate, record and send a task as ``user``; returns the submission document.

    Raises BadRequest (bad field, or Slurm refused it), Forbidden (no account on
    that cluster, or ``claimed_username`` is not theirs), DuplicateSubmission
    (409: the uuid exists). An unreachable cluster is not an error: the
    submission is stored PENDING and retried by :func:`retry_pending`.
    """
    now = _now(now)
    try:
        task = parse_task(data, config, allow=allow)
        username = _cluster_account(user, task.cluster, claimed_username)
    except (BadRequest, Forbidden) as exc:
        target = data.get("uuid") if isinstance(data, Mapping) else None
        record_audit(
            db,
            user_email=user.email,
            action="submission.submit",
            target=str(target or "-")[:128],
            result="refused",
            remote_addr=remote_addr,
            reason=exc.message,
        )
        raise
    doc: dict[str, Any] = {
        "uuid": task.uuid,
        "user_email": user.email,
        "cluster_name": task.cluster,
        "username": username,
        "source": source,
        "task": task.to_dict(),
        "notification": task.notification.to_dict() if task.notification else None,
        "state": PENDING,
        "slurm_state": None,
        "job_id": None,
        "cwd": task.cwd,
        "dirs": list(task.dirs),
        "stdout": None,
        "stderr": None,
        "attempts": 0,
        "next_attempt": now,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "history": [{"time": now, "state": PENDING, "note": "accepted"}],
    }
    try:
        db.submissions.insert_one(doc)
    except DuplicateKeyError:
        mine = db.submissions.find_one({"user_email": user.email, "uuid": task.uuid}, {"_id": 0})
        record_audit(
            db,
            user_email=user.email,
            action="submission.submit",
            target=task.uuid,
            result="duplicate",
            remote_addr=remote_addr,
            cluster=task.cluster,
        )
        raise DuplicateSubmission(f"a submission with uuid {task.uuid!r} exists", mine) from None
    doc.pop("_id", None)
    try:
        result = send(db, config, doc, backend_for=backend_for, now=now, first=True)
    except BadRequest as exc:
        record_audit(
            db,
            user_email=user.email,
            action="submission.submit",
            target=task.uuid,
            result="rejected",
            remote_addr=remote_addr,
            cluster=task.cluster,
            username=username,
            reason=exc.message,
        )
        raise
    record_audit(
        db,
        user_email=user.email,
        action="submission.submit",
        target=task.uuid,
        result="submitted" if result["state"] == SUBMITTED else result["state"].lower(),
        remote_addr=remote_addr,
        cluster=task.cluster,
        username=username,
        job_id=result.get("job_id"),
        source=source,
    )
    return result


def send(
    db: Database[Any],
    config: Config,
    doc: dict[str, Any],
    *,
    backend_for: BackendFor = get_backend,
    now: datetime | None = None,
    first: bool = False,
) -> dict[str, Any]:
    """Hand a PENDING submission to its cluster's backend.

    Unreachable: stays PENDING with ``next_attempt``. Refused by Slurm: on the
    first try the submission is removed and BadRequest raised (the client fixes
    it and may reuse the uuid); on a retry it becomes FAILED with the reason.
    """
    now = _now(now)
    cluster = config.clusters.get(doc["cluster_name"])
    task = task_from_doc(doc)
    try:
        if cluster is None:
            raise BackendRejected(f"cluster {doc['cluster_name']!r} is not configured any more")
        backend = backend_for(cluster)
        cwd = task.cwd or backend.default_cwd(doc["username"])
        job_id = backend.submit(dataclasses.replace(task, cwd=cwd), doc["username"])
    except BackendUnavailable as exc:
        retry = cluster.submit.retry_every_s if cluster else 60.0
        attempts = doc.get("attempts", 0) + 1
        log.warning("submission %s: cluster unreachable (%s); retry later", doc["uuid"], exc)
        db.submissions.update_one(
            _key(doc),
            {
                "$set": {
                    "attempts": attempts,
                    "next_attempt": now + timedelta(seconds=retry),
                    "last_error": str(exc),
                    "updated_at": now,
                }
            },
        )
        return {**doc, "attempts": attempts, "last_error": str(exc)}
    except BackendError as exc:
        if first:
            db.submissions.delete_one({**_key(doc), "state": PENDING})
            raise BadRequest(f"the cluster refused the job: {exc}", param="slurm") from None
        new = _set_state(
            db, doc, "FAILED", now, note=f"refused: {exc}", extra={"last_error": str(exc)}
        )
        return new or doc
    stdout, stderr = _output_paths(task, job_id, doc["username"], cwd)
    extra = {
        "job_id": job_id,
        "cwd": cwd,
        "stdout": stdout,
        "stderr": stderr,
        "submitted_at": now,
        "attempts": doc.get("attempts", 0) + 1,
        "last_error": None,
    }
    new = _set_state(db, doc, SUBMITTED, now, note=f"job {job_id}", extra=extra, expect=PENDING)
    if new is None:  # cancelled meanwhile: do not leave the job running
        log.warning(
            "submission %s was cancelled while being sent; cancelling job %s", doc["uuid"], job_id
        )
        try:
            backend.cancel(job_id, doc["username"])
        except BackendError:
            log.exception("cannot cancel job %s", job_id)
        db.submissions.update_one(_key(doc), {"$set": extra})
        return db.submissions.find_one(_key(doc), {"_id": 0}) or doc
    new.pop("_id", None)
    return new


def retry_pending(
    db: Database[Any],
    config: Config,
    *,
    backend_for: BackendFor = get_backend,
    now: datetime | None = None,
    limit: int = 100,
) -> int:
    """Send again the PENDING submissions whose time has come; returns how many went out.

    Each is claimed by moving its ``next_attempt`` forward atomically, so two
    workers never send the same one.
    """
    now = _now(now)
    sent = 0
    for _ in range(limit):
        doc = db.submissions.find_one_and_update(
            {"state": PENDING, "next_attempt": {"$lte": now}},
            {"$set": {"next_attempt": now + timedelta(minutes=10)}},
            sort=[("next_attempt", ASCENDING)],
            projection={"_id": 0},
        )
        if doc is None:
            break
        result = send(db, config, doc, backend_for=backend_for, now=now)
        if result.get("state") == SUBMITTED:
            sent += 1
            record_audit(
                db,
                user_email=doc["user_email"],
                action="submission.submit",
                target=doc["uuid"],
                result="submitted",
                remote_addr=None,
                cluster=doc["cluster_name"],
                username=doc["username"],
                job_id=result.get("job_id"),
                retry=True,
            )
    return sent


# --------------------------------------------------------------------------- read


def get_submission(db: Database[Any], user: Any, uuid: str) -> dict[str, Any]:
    """The submission if the user may see it (theirs; staff see all), else NotFound.

    A uuid is unique per user (so it tells nobody what others use): the user's
    own comes first; staff, asking for another's, get the newest with it.
    """
    uuid = str(uuid)[:128]
    doc = db.submissions.find_one({"user_email": user.email, "uuid": uuid}, {"_id": 0})
    if doc is None and user.is_staff:
        doc = next(
            db.submissions.find({"uuid": uuid}, {"_id": 0}).sort("created_at", DESCENDING).limit(1),
            None,
        )
    if doc is None:
        raise NotFound(f"no submission {uuid!r}")
    return doc


def get_own_submission(db: Database[Any], user: Any, uuid: str) -> dict[str, Any]:
    """The submission if it is the user's own (staff may look, never act).

    Acting on it or reading its files also needs the cluster account it was
    submitted as to be still the user's: removing the account stops both.
    """
    doc = get_submission(db, user, uuid)
    if doc["user_email"] != user.email:
        raise Forbidden("this submission is not yours")
    if (user.cluster_accounts or {}).get(doc["cluster_name"]) != doc.get("username"):
        raise Forbidden(
            f"your account {doc.get('username')!r} on cluster {doc['cluster_name']!r} "
            "is no longer linked to you; ask an administrator"
        )
    return doc


def find_by_job(db: Database[Any], user: Any, cluster: str, job_id: int) -> dict[str, Any]:
    """The user's submission that follows (cluster, job_id), else NotFound."""
    for doc in db.submissions.find(
        {"cluster_name": cluster, "job_id": int(job_id)}, {"_id": 0}
    ).limit(20):
        if doc["user_email"] == user.email or user.is_staff:
            return doc
    raise NotFound(f"you follow no job {job_id} on {cluster!r}")


def list_submissions(
    db: Database[Any],
    user: Any,
    *,
    states: Iterable[str] = (),
    cluster: str | None = None,
    page: int = 1,
    per_page: int = 50,
) -> dict[str, Any]:
    """The user's submissions, newest first, one page (``has_more`` says if more follow)."""
    query: dict[str, Any] = {"user_email": user.email}
    wanted = [s.strip().upper() for s in states if s.strip()]
    unknown = [s for s in wanted if s not in STATES]
    if unknown:
        raise BadRequest(f"unknown state(s) {unknown}; use {sorted(STATES)}", param="state")
    if wanted:
        query["state"] = {"$in": wanted}
    if cluster:
        query["cluster_name"] = cluster
    if page < 1:
        raise BadRequest("must be >= 1", param="page")
    if not 1 <= per_page <= MAX_PER_PAGE:
        raise BadRequest(f"must be between 1 and {MAX_PER_PAGE}", param="per_page")
    cursor = (
        db.submissions.find(query, {"_id": 0})
        .sort([("created_at", DESCENDING)])
        .skip((page - 1) * per_page)
        .limit(per_page + 1)
    )
    docs = list(cursor)
    return {
        "items": docs[:per_page],
        "page": page,
        "per_page": per_page,
        "has_more": len(docs) > per_page,
    }


# --------------------------------------------------------------------------- cancel


def cancel(
    db: Database[Any],
    config: Config,
    user: Any,
    uuid: str,
    *,
    remote_addr: str | None = None,
    backend_for: BackendFor = get_backend,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Cancel the user's own submission: CANCELLING until Slurm confirms.

    A PENDING one (never sent) is CANCELLED at once. Another user's: 404 (403 for
    staff, who may look but not act). Unreachable cluster: 503, state unchanged.
    """
    now = _now(now)

    def audit(result: str, **details: Any) -> None:
        record_audit(
            db,
            user_email=user.email,
            action="submission.cancel",
            target=str(uuid)[:128],
            result=result,
            remote_addr=remote_addr,
            **details,
        )

    try:
        doc = get_own_submission(db, user, uuid)
        target = next_state(doc["state"], Event("cancel"))
    except (NotFound, Forbidden) as exc:
        audit("refused", reason=exc.message)
        raise
    except InvalidTransition as exc:
        audit("refused", reason=str(exc))
        raise Conflict(str(exc)) from None
    # the identity is the stored one, which came from this user's record
    username = _cluster_account(user, doc["cluster_name"], doc["username"])
    if target == "CANCELLED":  # never sent
        new = _set_state(db, doc, target, now, note="cancelled before it was sent")
        if new is None:  # it was sent meanwhile: cancel the job
            return cancel(db, config, user, uuid, remote_addr=remote_addr, backend_for=backend_for)
        audit("cancelled", cluster=doc["cluster_name"])
        new.pop("_id", None)
        return new
    cluster = config.clusters.get(doc["cluster_name"])
    if cluster is None:
        raise Unavailable(f"cluster {doc['cluster_name']!r} is not configured")
    try:
        backend_for(cluster).cancel(int(doc["job_id"]), username)
    except BackendUnavailable as exc:
        audit("unavailable", reason=str(exc), job_id=doc["job_id"])
        raise Unavailable(f"cannot reach the cluster: {exc}") from None
    except BackendError as exc:
        audit("rejected", reason=str(exc), job_id=doc["job_id"])
        raise Conflict(f"the cluster refused to cancel the job: {exc}") from None
    new = _set_state(db, doc, target, now, note="cancel requested")
    audit("cancelling", cluster=doc["cluster_name"], job_id=doc["job_id"])
    if new is None:  # changed meanwhile (e.g. finished): report what it is now
        new = db.submissions.find_one(_key(doc), {"_id": 0}) or doc
    new.pop("_id", None)
    return new


# --------------------------------------------------------------------------- adopt


def adopt(
    db: Database[Any],
    config: Config,
    user: Any,
    data: Any,
    *,
    remote_addr: str | None = None,
    claimed_username: str | None = None,
    backend_for: BackendFor = get_backend,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Follow a job the user submitted elsewhere (``{cluster, job_id, uuid?, notification?}``).

    Only their own job: its Slurm user (from the scraped ``jobs`` or, if not
    scraped yet, from the backend) must be their account on that cluster.
    """
    now = _now(now)
    if not isinstance(data, Mapping):
        raise BadRequest("the body must be a JSON object")
    unknown = set(data) - {"cluster", "job_id", "uuid", "notification", "username"}
    if unknown:
        raise BadRequest(f"unknown field(s) {sorted(unknown)}", param=sorted(unknown)[0])
    cluster_name = data.get("cluster")
    if cluster_name is None and len(config.clusters) == 1:
        cluster_name = next(iter(config.clusters))
    if not isinstance(cluster_name, str) or cluster_name not in config.clusters:
        raise BadRequest("unknown cluster", param="cluster")
    job_id = data.get("job_id")
    if isinstance(job_id, str) and job_id.isdigit():
        job_id = int(job_id)
    if isinstance(job_id, bool) or not isinstance(job_id, int) or job_id < 1:
        raise BadRequest("must be a positive integer", param="job_id")
    notification = parse_notification(data.get("notification"), config.notifications)
    raw_uuid = data.get("uuid")
    if raw_uuid is not None and (
        not isinstance(raw_uuid, str)
        or not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}", raw_uuid)
    ):
        raise BadRequest("must be a string of letters, digits, _ . : - (max 128)", param="uuid")
    submission_uuid = raw_uuid or f"{cluster_name}-{job_id}-{user.email}"

    def audit(result: str, **details: Any) -> None:
        record_audit(
            db,
            user_email=user.email,
            action="submission.monitor",
            target=f"{cluster_name}/{job_id}",
            result=result,
            remote_addr=remote_addr,
            **details,
        )

    try:
        username = _cluster_account(user, cluster_name, claimed_username)
    except Forbidden as exc:
        audit("refused", reason=exc.message)
        raise
    stored = db.jobs.find_one(
        {"slurm.cluster_name": cluster_name, "slurm.job_id": job_id},
        {"_id": 0, "slurm.username": 1, "slurm.job_state": 1, "slurm.working_directory": 1},
    )
    if stored is not None:
        owner = stored["slurm"].get("username")
        state = stored["slurm"].get("job_state")
        cwd = stored["slurm"].get("working_directory")
        stdout = stderr = None
    else:
        try:
            info = backend_for(config.clusters[cluster_name]).job_info(job_id, username)
        except BackendUnavailable as exc:
            raise Unavailable(f"cannot reach the cluster: {exc}") from None
        except BackendError:
            info = None
        if info is None:
            audit("refused", reason="no such job")
            raise NotFound(f"no job {job_id} on {cluster_name!r}")
        owner, state, cwd, stdout, stderr = (
            info.username,
            info.state,
            info.cwd,
            info.stdout,
            info.stderr,
        )
    if owner != username:
        audit("refused", reason=f"the job belongs to {owner}")
        raise Forbidden(f"job {job_id} is not yours")
    for doc in db.submissions.find({"cluster_name": cluster_name, "job_id": job_id}, {"_id": 0}):
        if doc["user_email"] == user.email:
            raise DuplicateSubmission("you already follow this job", doc)
    initial = next_state(SUBMITTED, Event("slurm", state))
    if stdout and cwd:
        stdout = expand_output_path(stdout, job_id=job_id, job_name="", username=username, cwd=cwd)
        stderr = expand_output_path(
            stderr or stdout, job_id=job_id, job_name="", username=username, cwd=cwd
        )
    doc = {
        "uuid": submission_uuid,
        "user_email": user.email,
        "cluster_name": cluster_name,
        "username": username,
        "source": "monitor",
        "task": None,
        "notification": notification.to_dict() if notification else None,
        "state": initial,
        "slurm_state": base_state(state or ""),
        "job_id": job_id,
        "cwd": cwd,
        "dirs": [],
        "stdout": stdout,
        "stderr": stderr,
        "attempts": 0,
        "next_attempt": None,
        "last_error": None,
        "created_at": now,
        "updated_at": now,
        "submitted_at": None,
        "history": [{"time": now, "state": initial, "note": "monitoring"}],
    }
    try:
        db.submissions.insert_one(doc)
    except DuplicateKeyError:
        mine = db.submissions.find_one(
            {"user_email": user.email, "uuid": submission_uuid}, {"_id": 0}
        )
        raise DuplicateSubmission(
            f"a submission with uuid {submission_uuid!r} exists", mine
        ) from None
    doc.pop("_id", None)
    audit("monitoring", username=username)
    return doc


# --------------------------------------------------------------------------- sync


def apply_slurm_state(
    db: Database[Any], doc: dict[str, Any], slurm_state: str, now: datetime
) -> dict[str, Any]:
    """Move a submission along after Slurm reported ``slurm_state``."""
    raw = base_state(slurm_state)
    target = next_state(doc["state"], Event("slurm", raw))
    if target == doc["state"] and raw == doc.get("slurm_state"):
        return doc
    new = _set_state(db, doc, target, now, note=f"slurm: {raw}", extra={"slurm_state": raw})
    if new is None:
        return db.submissions.find_one(_key(doc), {"_id": 0}) or doc
    new.pop("_id", None)
    return new


def sync_submission(
    db: Database[Any],
    config: Config,
    doc: dict[str, Any],
    *,
    backend_for: BackendFor = get_backend,
    use_backend: bool = True,
    now: datetime | None = None,
) -> dict[str, Any]:
    """Refresh one submission from the scraped ``jobs``, else (if allowed) from Slurm."""
    now = _now(now)
    if doc["state"] in FINAL_STATES or doc.get("job_id") is None:
        return doc
    job = db.jobs.find_one(
        {"slurm.cluster_name": doc["cluster_name"], "slurm.job_id": doc["job_id"]},
        {"_id": 0, "slurm.job_state": 1},
    )
    state = job["slurm"].get("job_state") if job else None
    if state is None and use_backend:
        cluster = config.clusters.get(doc["cluster_name"])
        if cluster is not None:
            try:
                info = backend_for(cluster).job_info(int(doc["job_id"]), doc["username"])
            except BackendError as exc:
                log.info("cannot refresh submission %s: %s", doc["uuid"], exc)
                info = None
            state = info.state if info else None
    if not state:
        return doc
    return apply_slurm_state(db, doc, state, now)


def sync_states(
    db: Database[Any],
    config: Config,
    *,
    backend_for: BackendFor = get_backend,
    use_backend: bool = True,
    now: datetime | None = None,
    limit: int = 1000,
) -> int:
    """Refresh every unfinished submission; returns how many changed state."""
    now = _now(now)
    live = sorted(STATES - FINAL_STATES - {PENDING})
    changed = 0
    for doc in db.submissions.find({"state": {"$in": live}}, {"_id": 0}).limit(limit):
        new = sync_submission(
            db, config, doc, backend_for=backend_for, use_backend=use_backend, now=now
        )
        if new.get("state") != doc["state"]:
            changed += 1
    return changed
