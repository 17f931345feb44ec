"""How a task reaches a cluster: ``local`` sbatch, ``ssh`` to a login node, ``slurmrestd``.

Every backend acts AS the mapped cluster user (the service passes the username
it read from the logged-in user's record) and offers the same four calls:
:meth:`Backend.submit`, :meth:`Backend.cancel`, :meth:`Backend.job_info` and
:meth:`Backend.read_file`/:meth:`Backend.list_dir` (for the output-file API).

Errors: :class:`BackendUnavailable` when the cluster cannot be reached (the
submission stays PENDING and is retried), :class:`BackendRejected` when Slurm
refused the request (bad partition, not the owner: the client's fault).

Security: no shell on this host (argument lists only); on the ssh backend,
which needs a remote shell, every word is :func:`shlex.quote`-d and the host key
must already be in ``known_hosts`` (:class:`paramiko.RejectPolicy`). Usernames
are checked against a strict pattern before use.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import logging
import os
import posixpath
import pwd
import re
import shlex
import shutil
import stat
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import requests

from clockwork_core.config import ClusterConfig
from clockwork_web.submissions.task import DEFAULT_PATH, Task, batch_script, rest_body, sbatch_args

log = logging.getLogger(__name__)

USERNAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}$")
_UNREACHABLE = (
    "unable to contact slurm controller",
    "connection refused",
    "socket timed out",
    "slurm_persist_conn_open",
    "communication connection failure",
    "zero bytes were transmitted",
)


class BackendError(Exception):
    """A backend call failed."""


class BackendUnavailable(BackendError):
    """The cluster (controller, login node, slurmrestd) cannot be reached now."""


class BackendRejected(BackendError):
    """Slurm refused the request; the message says why (safe to show the user)."""


@dataclass(frozen=True)
class JobInfo:
    """What a backend knows of a job: its state and owner."""

    job_id: int
    state: str
    username: str | None = None
    stdout: str | None = None
    stderr: str | None = None
    cwd: str | None = None


@dataclass(frozen=True)
class FileEntry:
    path: str
    size: int


class Backend(Protocol):
    def submit(self, task: Task, username: str) -> int: ...
    def cancel(self, job_id: int, username: str) -> None: ...
    def job_info(self, job_id: int, username: str) -> JobInfo | None: ...
    def default_cwd(self, username: str) -> str: ...


def check_username(username: str) -> str:
    if not isinstance(username, str) or not USERNAME.match(username):
        raise BackendRejected(f"invalid cluster username {str(username)[:40]!r}")
    return username


def base_state(state: str) -> str:
    """``CANCELLED by 1001`` -> ``CANCELLED``; ``['RUNNING']`` forms are handled by callers."""
    return state.strip().split(" ", 1)[0].rstrip("+").upper()


def _classify(stderr: str) -> BackendError:
    text = stderr.strip() or "no message"
    if any(marker in text.lower() for marker in _UNREACHABLE):
        return BackendUnavailable(text[:500])
    return BackendRejected(text[:500])


def parse_squeue_line(job_id: int, out: str) -> JobInfo | None:
    """``squeue -h -o %i|%T|%u`` or ``sacct -P -n -X -o JobIDRaw,State,User`` output."""
    for line in out.splitlines():
        parts = line.strip().split("|")
        if len(parts) >= 3 and parts[0].strip() == str(job_id) and parts[1].strip():
            return JobInfo(job_id=job_id, state=base_state(parts[1]), username=parts[2] or None)
    return None


# --------------------------------------------------------------------------- local


#: Variables of the portal's own environment that a local sbatch needs to find
#: its cluster; the only ones passed on (never secrets, never the web app's).
PASSED_THROUGH: tuple[str, ...] = ("SLURM_CONF",)


def job_environment(username: str) -> dict[str, str]:
    """The whole environment sbatch runs with, hence the job starts from.

    The user's own login identity (from the password database) and a plain
    PATH; nothing of the portal's process (its secrets, database URI, Python
    paths). The request's allow-listed variables are exported by the script.
    """
    try:
        entry = pwd.getpwnam(check_username(username))
    except KeyError:
        raise BackendRejected(f"no user {username!r} on this host") from None
    env = {
        "PATH": DEFAULT_PATH,
        "HOME": entry.pw_dir,
        "USER": username,
        "LOGNAME": username,
        "SHELL": entry.pw_shell or "/bin/sh",
    }
    env.update({name: os.environ[name] for name in PASSED_THROUGH if name in os.environ})
    return env


def _program(name: str) -> str:
    """``name``'s full path on the portal's PATH (or the system folders), else ``name``."""
    return shutil.which(name) or shutil.which(name, path="/usr/sbin:/usr/bin:/sbin:/bin") or name


class LocalBackend:
    """``sbatch``/``scancel`` on this host (a portal on a login node), run AS the user.

    As root with ``local_identity = "uid"``: ``runuser -u USER -- sbatch ...``,
    so Slurm applies the user's own rights (a root ``sbatch --uid`` would
    accept ``--nice=-10000`` or ``--priority``). With ``"sudo"``:
    ``sudo -n -u USER -- sbatch ...``. The script goes on stdin, and the
    process environment is :func:`job_environment`, never the portal's.
    """

    def __init__(self, cluster: ClusterConfig, *, timeout_s: float | None = None) -> None:
        self.cluster = cluster
        self.timeout_s = timeout_s or cluster.submit.timeout_s

    def _as_user(self, args: list[str], username: str) -> list[str]:
        check_username(username)
        if self.cluster.submit.local_identity == "sudo":
            return [_program("sudo"), "-n", "-u", username, "--", *args]
        if pwd.getpwuid(os.geteuid()).pw_name == username:
            return args
        if os.geteuid() == 0:
            return [_program("runuser"), "-u", username, "--", *args]
        raise BackendRejected("the portal is not root: set submit.local_identity = 'sudo'")

    def _run(self, args: list[str], username: str, stdin: str | None = None) -> str:
        # programs are found on the portal's PATH; the job gets job_environment's
        command = self._as_user([_program(args[0]), *args[1:]], username)
        try:
            proc = subprocess.run(
                command,
                input=stdin,
                capture_output=True,
                text=True,
                timeout=self.timeout_s,
                check=False,
                cwd="/",
                env=job_environment(username),
            )
        except FileNotFoundError as exc:
            raise BackendUnavailable(f"{command[0]} not found on this host") from exc
        except subprocess.TimeoutExpired as exc:
            raise BackendUnavailable(f"{args[0]} timed out after {self.timeout_s:g}s") from exc
        if proc.returncode != 0:
            raise _classify(proc.stderr)
        return proc.stdout

    def default_cwd(self, username: str) -> str:
        if self.cluster.submit.default_cwd:
            return self.cluster.submit.default_cwd
        try:
            return pwd.getpwnam(check_username(username)).pw_dir
        except KeyError:
            raise BackendRejected(f"no user {username!r} on this host") from None

    def submit(self, task: Task, username: str) -> int:
        args = ["sbatch", *sbatch_args(task, cwd=task.cwd or self.default_cwd(username))]
        out = self._run(args, username, stdin=batch_script(task))
        return _parse_job_id(out)

    def cancel(self, job_id: int, username: str) -> None:
        # as the user, so Slurm itself checks ownership ("CANCELLED by <uid>")
        self._run(["scancel", str(int(job_id))], username)

    def job_info(self, job_id: int, username: str) -> JobInfo | None:
        out = self._run(["squeue", "-h", "-j", str(int(job_id)), "-o", "%i|%T|%u"], username)
        info = parse_squeue_line(job_id, out)
        if info is not None:
            return info
        out = self._run(
            ["sacct", "-P", "-n", "-X", "-j", str(int(job_id)), "-o", "JobIDRaw,State,User"],
            username,
        )
        return parse_squeue_line(job_id, out)


def _parse_job_id(out: str) -> int:
    """``sbatch --parsable`` prints ``123`` or ``123;cluster``."""
    lines = [line for line in out.strip().splitlines() if line.strip()]
    try:
        return int(lines[-1].split(";", 1)[0])
    except (IndexError, ValueError):
        raise BackendRejected(f"unexpected sbatch output {out[:200]!r}") from None


# --------------------------------------------------------------------------- ssh


class SshBackend:
    """sbatch on a login node over SSH (paramiko), logged in as the mapped user.

    The host key must be in ``ssh.known_hosts`` (RejectPolicy); the key file is
    the portal's key, which the users' accounts accept. Files are read by SFTP,
    so the remote permissions of the user apply.
    """

    def __init__(self, cluster: ClusterConfig) -> None:
        if cluster.ssh is None:
            raise BackendRejected("this cluster has no ssh settings")
        self.cluster = cluster
        self.ssh = cluster.ssh

    def _connect(self, username: str) -> Any:
        import paramiko

        client = paramiko.SSHClient()
        known_hosts = os.path.expanduser(self.ssh.known_hosts)
        try:
            client.load_host_keys(known_hosts)
        except OSError as exc:
            raise BackendUnavailable(f"cannot read known_hosts {known_hosts}: {exc}") from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        try:
            client.connect(
                self.ssh.host,
                port=self.ssh.port,
                username=check_username(username),
                key_filename=os.path.expanduser(self.ssh.key_file) if self.ssh.key_file else None,
                timeout=self.ssh.connect_timeout_s,
                banner_timeout=self.ssh.connect_timeout_s,
                auth_timeout=self.ssh.connect_timeout_s,
                allow_agent=False,
                look_for_keys=False,
            )
        except paramiko.AuthenticationException as exc:
            client.close()
            raise BackendRejected(f"ssh login as {username} refused: {exc}") from None
        except (paramiko.SSHException, OSError) as exc:
            client.close()
            raise BackendUnavailable(f"ssh to {self.ssh.host}:{self.ssh.port}: {exc}") from None
        return client

    def _exec(self, username: str, words: list[str], stdin: str | None = None) -> str:
        command = shlex.join(words)
        client = self._connect(username)
        try:
            timeout = self.ssh.command_timeout_s
            chan_in, chan_out, chan_err = client.exec_command(command, timeout=timeout)
            if stdin is not None:
                chan_in.write(stdin)
            chan_in.channel.shutdown_write()
            deadline = time.monotonic() + timeout
            channel = chan_out.channel
            while not channel.exit_status_ready():
                if time.monotonic() > deadline:
                    raise BackendUnavailable(f"{words[0]} over ssh timed out after {timeout:g}s")
                time.sleep(0.05)
            out = chan_out.read().decode("utf-8", "replace")
            err = chan_err.read().decode("utf-8", "replace")
            if channel.recv_exit_status() != 0:
                raise _classify(err)
            return out
        except OSError as exc:
            raise BackendUnavailable(f"ssh: {exc}") from None
        finally:
            client.close()

    def default_cwd(self, username: str) -> str:
        if self.cluster.submit.default_cwd:
            return self.cluster.submit.default_cwd
        return self._exec(username, ["pwd"]).strip() or "/tmp"  # noqa: S108

    def submit(self, task: Task, username: str) -> int:
        args = ["sbatch", *sbatch_args(task, cwd=task.cwd or self.cluster.submit.default_cwd)]
        return _parse_job_id(self._exec(username, args, stdin=batch_script(task)))

    def cancel(self, job_id: int, username: str) -> None:
        self._exec(username, ["scancel", str(int(job_id))])

    def job_info(self, job_id: int, username: str) -> JobInfo | None:
        out = self._exec(username, ["squeue", "-h", "-j", str(int(job_id)), "-o", "%i|%T|%u"])
        info = parse_squeue_line(job_id, out)
        if info is not None:
            return info
        out = self._exec(
            username,
            ["sacct", "-P", "-n", "-X", "-j", str(int(job_id)), "-o", "JobIDRaw,State,User"],
        )
        return parse_squeue_line(job_id, out)

    def list_dir(self, username: str, root: str, limit: int) -> list[FileEntry]:
        """Regular files under ``root`` (recursively, at most ``limit``), by SFTP."""
        client = self._connect(username)
        try:
            sftp = self._sftp(client)
            found: list[FileEntry] = []
            stack = [root]
            while stack and len(found) < limit:
                folder = stack.pop()
                try:
                    entries = sftp.listdir_attr(folder)
                except OSError:
                    continue
                for entry in entries:
                    path = posixpath.join(folder, entry.filename)
                    if stat.S_ISDIR(entry.st_mode or 0):
                        stack.append(path)
                    elif stat.S_ISREG(entry.st_mode or 0):
                        found.append(FileEntry(path, entry.st_size or 0))
            return found[:limit]
        finally:
            client.close()

    def read_file(self, username: str, path: str, start: int, length: int) -> tuple[int, bytes]:
        """``(file size, bytes[start:start+length])`` by SFTP, as the user."""
        client = self._connect(username)
        try:
            sftp = self._sftp(client)
            size = sftp.stat(path).st_size or 0
            with sftp.open(path, "rb") as fh:
                fh.seek(start)
                return size, fh.read(length)
        except FileNotFoundError:
            raise
        except OSError as exc:
            raise BackendUnavailable(f"sftp: {exc}") from None
        finally:
            client.close()

    def realpath(self, username: str, path: str) -> str:
        client = self._connect(username)
        try:
            return self._sftp(client).normalize(path)
        except OSError:
            raise FileNotFoundError(path) from None
        finally:
            client.close()

    def _sftp(self, client: Any) -> Any:
        import paramiko

        try:
            sftp = client.open_sftp()
        except (paramiko.SSHException, OSError) as exc:
            raise BackendUnavailable(f"sftp to {self.ssh.host}: {exc}") from None
        sftp.get_channel().settimeout(self.ssh.command_timeout_s)
        return sftp


# --------------------------------------------------------------------------- slurmrestd


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def mint_jwt(key: bytes, username: str, lifetime_s: int, now: float | None = None) -> str:
    """An HS256 token slurmctld accepts for ``username`` (claims ``iat``, ``exp``, ``sun``)."""
    issued = int(now if now is not None else time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"iat": issued, "exp": issued + int(lifetime_s), "sun": check_username(username)}
    signing_input = (
        _b64(json.dumps(header, separators=(",", ":")).encode())
        + "."
        + _b64(json.dumps(claims, separators=(",", ":")).encode())
    )
    signature = hmac.new(key, signing_input.encode("ascii"), hashlib.sha256).digest()
    return signing_input + "." + _b64(signature)


class RestBackend:
    """slurmrestd over HTTP with a short-lived JWT minted for the mapped user."""

    def __init__(self, cluster: ClusterConfig, session: requests.Session | None = None) -> None:
        self.cluster = cluster
        self.conf = cluster.submit
        self.session = session or requests.Session()

    def _headers(self, username: str) -> dict[str, str]:
        try:
            key = Path(self.conf.jwt_key_file).read_bytes()
        except OSError as exc:
            raise BackendUnavailable(f"cannot read the JWT key: {exc.strerror}") from None
        token = mint_jwt(key, username, self.conf.jwt_lifetime_s)
        return {
            "X-SLURM-USER-NAME": username,
            "X-SLURM-USER-TOKEN": token,
            "Accept": "application/json",
        }

    def _url(self, path: str) -> str:
        return f"{self.conf.rest_url.rstrip('/')}/slurm/{self.conf.rest_api_version}/{path}"

    def _request(self, method: str, path: str, username: str, body: Any = None) -> dict[str, Any]:
        headers = self._headers(check_username(username))
        try:
            response = self.session.request(
                method, self._url(path), json=body, headers=headers, timeout=self.conf.timeout_s
            )
        except requests.RequestException as exc:
            raise BackendUnavailable(f"slurmrestd at {self.conf.rest_url}: {exc}") from None
        try:
            data = response.json()
        except ValueError:
            data = {}
        errors = [e for e in (data.get("errors") or []) if isinstance(e, dict)]
        if response.status_code >= 400 or errors:
            message = "; ".join(
                str(e.get("description") or e.get("error") or e) for e in errors
            ) or (response.text[:200].strip() or f"HTTP {response.status_code}")
            if response.status_code in (502, 503, 504):
                raise BackendUnavailable(f"slurmrestd: {message}")
            if any(marker in message.lower() for marker in _UNREACHABLE):
                raise BackendUnavailable(f"slurmrestd: {message}")
            raise BackendRejected(f"slurmrestd (HTTP {response.status_code}): {message}")
        return data

    def default_cwd(self, username: str) -> str:
        return self.conf.default_cwd or "/tmp"  # noqa: S108

    def submit(self, task: Task, username: str) -> int:
        body = rest_body(
            task,
            version=self.conf.rest_api_version,
            cwd=task.cwd or self.default_cwd(username),
            base_env={"PATH": DEFAULT_PATH},
        )
        data = self._request("POST", "job/submit", username, body)
        job_id = data.get("job_id")
        if not isinstance(job_id, int):
            raise BackendRejected(f"slurmrestd returned no job id: {str(data)[:200]}")
        return job_id

    def cancel(self, job_id: int, username: str) -> None:
        self._request("DELETE", f"job/{int(job_id)}", username)

    def job_info(self, job_id: int, username: str) -> JobInfo | None:
        try:
            data = self._request("GET", f"job/{int(job_id)}", username)
        except BackendRejected:
            return None
        for job in data.get("jobs") or []:
            if job.get("job_id") == job_id:
                state = job.get("job_state")
                if isinstance(state, list):  # v0.0.39+
                    state = state[0] if state else "UNKNOWN"
                return JobInfo(
                    job_id=job_id,
                    state=base_state(str(state)),
                    username=job.get("user_name"),
                    stdout=job.get("standard_output") or None,
                    stderr=job.get("standard_error") or None,
                    cwd=job.get("current_working_directory") or None,
                )
        return None


# --------------------------------------------------------------------------- choice


def get_backend(cluster: ClusterConfig) -> Backend:
    """The backend the cluster's config names."""
    kind = cluster.submit.backend
    if kind == "local":
        return LocalBackend(cluster)
    if kind == "ssh":
        return SshBackend(cluster)
    if kind == "slurmrestd":
        return RestBackend(cluster)
    raise BackendRejected("this cluster does not accept submissions")


def iter_local_files(root: Path, limit: int) -> Iterator[Path]:
    """Regular files under ``root`` (no symlink followed), at most ``limit``."""
    count = 0
    for folder, dirnames, filenames in os.walk(root, followlinks=False):
        dirnames.sort()
        for name in sorted(filenames):
            path = Path(folder) / name
            if path.is_symlink() or not path.is_file():
                continue
            yield path
            count += 1
            if count >= limit:
                return
