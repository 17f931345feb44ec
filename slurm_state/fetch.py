"""Get raw reports out of a cluster: local commands, SSH, a report directory, PySlurm.

A fetcher only moves bytes; the parsers turn them into records. Reports are
streamed (a 100,000-job ``sacct --json`` is ~600 MB): :meth:`Fetcher.jobs`
and :meth:`Fetcher.nodes` are context managers yielding a :class:`Report`
whose ``stream`` is read while the command still runs; leaving the context
checks the exit status and stderr and raises :class:`FetchError` on failure.

Commands are argument lists. Locally they run without a shell; over SSH the
remote side gets one string, built with :func:`shlex.join` so each argument is
quoted. Nothing from Slurm output is ever put into a command.
"""

from __future__ import annotations

import contextlib
import os
import re
import shlex
import subprocess
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, BinaryIO, Protocol
from zoneinfo import ZoneInfo

from clockwork_core.config import ClusterConfig, SshConfig
from clockwork_core.schema import Job, Node


class FetchError(Exception):
    """A report could not be fetched; the message says what and why (no secrets)."""


@dataclass
class Report:
    """One raw report: a byte stream in ``fmt``, or records already in the schema."""

    fmt: str
    source: str
    stream: BinaryIO | None = None
    records: Iterator[Job] | Iterator[Node] | None = None


# --------------------------------------------------------------------------- commands

_SLURM_TIME = "%Y-%m-%dT%H:%M:%S"
_VERSION = re.compile(rb"(\d+)\.(\d+)(?:\.\d+)?")


def parse_version(output: bytes | str) -> str:
    """``"slurm 22.05.8"`` -> ``"22.05"``; raises FetchError if there is no version."""
    data = output.encode() if isinstance(output, str) else output
    match = _VERSION.search(data)
    if not match:
        raise FetchError(f"cannot read a Slurm version from {data[:80]!r}")
    return f"{int(match.group(1))}.{match.group(2).decode()}"


def slurm_time(moment: datetime, timezone: str) -> str:
    """A UTC moment as sacct's ``-S``/``-E`` want it: local time of the cluster."""
    return moment.astimezone(ZoneInfo(timezone)).strftime(_SLURM_TIME)


def sacct_command(fmt: str, start: datetime, end: datetime, timezone: str = "UTC") -> list[str]:
    """The sacct command for jobs active in ``[start, end]`` (all users, steps included).

    ``-E`` is always given (22.05 ignores ``-S`` alone with ``-s``); the header
    is kept so the parser can check the columns.
    """
    window = ["-S", slurm_time(start, timezone), "-E", slurm_time(end, timezone)]
    if fmt == "json":
        return ["sacct", "--allusers", "--json", *window]
    from slurm_state.parsers import SACCT_DELIMITER, SACCT_FIELDS

    return [
        "sacct",
        "--allusers",
        "--parsable2",
        f"--delimiter={SACCT_DELIMITER}",
        f"--format={','.join(SACCT_FIELDS)}",
        *window,
    ]


def nodes_command(fmt: str) -> list[str]:
    """The command that lists the nodes in ``fmt`` (see ClusterConfig.nodes_format)."""
    if fmt == "sinfo-json":
        return ["sinfo", "--json"]
    if fmt == "sinfo-psv":
        from slurm_state.parsers import SINFO_FORMAT

        return ["sinfo", "-N", f"--format={SINFO_FORMAT}"]
    if fmt == "scontrol":
        return ["scontrol", "show", "node", "--oneliner"]
    raise FetchError(f"unknown nodes format {fmt!r}")


class Runner(Protocol):
    """Runs a command somewhere and streams its stdout."""

    def stream(self, args: list[str]) -> contextlib.AbstractContextManager[BinaryIO]: ...

    def output(self, args: list[str]) -> bytes: ...

    def close(self) -> None: ...


class _Watchdog:
    """Kills a running command when its time is up (the timeout of a streamed read)."""

    def __init__(self, seconds: float, kill: Any) -> None:
        self.fired = False
        self._timer = threading.Timer(seconds, self._fire, args=(kill,))
        self._timer.daemon = True
        self._timer.start()

    def _fire(self, kill: Any) -> None:
        self.fired = True
        with contextlib.suppress(Exception):
            kill()

    def cancel(self) -> None:
        self._timer.cancel()


def _drain(stream: Any, chunks: list[bytes], limit: int = 1 << 20) -> None:
    """Read stderr in the background (so the command never blocks on it), keep 1 MB."""
    size = 0
    with contextlib.suppress(Exception):  # the stream closing or timing out ends it
        while chunk := stream.read(1 << 14):
            if size < limit:
                chunks.append(chunk)
                size += len(chunk)


class LocalRunner:
    """Runs Slurm commands on this host, without a shell, with a timeout."""

    def __init__(self, timeout_s: float = 300.0, env: dict[str, str] | None = None) -> None:
        self.timeout_s = timeout_s
        self.env = env

    @contextlib.contextmanager
    def stream(self, args: list[str]) -> Iterator[BinaryIO]:
        try:
            proc = subprocess.Popen(
                args,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=self.env,
            )
        except OSError as exc:
            raise FetchError(f"{args[0]}: cannot run: {exc.strerror or exc}") from None
        watchdog = _Watchdog(self.timeout_s, proc.kill)
        stderr_chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(proc.stderr, stderr_chunks), daemon=True)
        reader.start()
        ok = False
        try:
            yield proc.stdout  # type: ignore[misc]
            ok = True
        finally:
            if not ok:
                proc.kill()
            with contextlib.suppress(Exception):
                proc.stdout.read()  # type: ignore[union-attr]  # drain so it can exit
            try:
                rc = proc.wait(timeout=self.timeout_s)
            except subprocess.TimeoutExpired:
                proc.kill()
                rc = proc.wait()
            watchdog.cancel()
            reader.join(timeout=5)
            proc.stdout.close()  # type: ignore[union-attr]
            proc.stderr.close()  # type: ignore[union-attr]
        if watchdog.fired:
            raise FetchError(f"{shlex.join(args[:2])}: timed out after {self.timeout_s:g} s")
        if rc != 0:
            err = b"".join(stderr_chunks).decode("utf-8", "replace").strip()
            raise FetchError(f"{shlex.join(args[:2])} exited {rc}: {err[:500]}")

    def output(self, args: list[str]) -> bytes:
        with self.stream(args) as out:
            return out.read()

    def close(self) -> None:
        pass


class SshRunner:
    """Runs Slurm commands on a login node over SSH (paramiko).

    The host key must be in ``known_hosts`` (RejectPolicy: an unknown key is
    refused, never added). The client key may be ed25519, ECDSA or RSA.
    """

    def __init__(self, config: SshConfig) -> None:
        self.config = config
        self._client: Any = None

    def _connect(self) -> Any:
        if self._client is not None:
            return self._client
        import paramiko

        cfg = self.config
        client = paramiko.SSHClient()
        known = Path(cfg.known_hosts).expanduser()
        try:
            client.load_host_keys(str(known))
        except OSError as exc:
            raise FetchError(
                f"ssh {cfg.host}: cannot read known_hosts {known}: {exc.strerror}"
            ) from None
        client.set_missing_host_key_policy(paramiko.RejectPolicy())
        kwargs: dict[str, Any] = {
            "hostname": cfg.host,
            "port": cfg.port,
            "username": cfg.user,
            "timeout": cfg.connect_timeout_s,
            "banner_timeout": cfg.connect_timeout_s,
            "auth_timeout": cfg.connect_timeout_s,
            "allow_agent": False,
            "look_for_keys": False,
        }
        if cfg.key_file:
            kwargs["pkey"] = load_private_key(Path(cfg.key_file).expanduser())
        else:
            kwargs["allow_agent"] = True
            kwargs["look_for_keys"] = True
        where = f"ssh {cfg.user}@{cfg.host}:{cfg.port}"
        try:
            client.connect(**kwargs)
        except paramiko.BadHostKeyException:
            client.close()
            raise FetchError(f"{where}: host key does not match {known} (refused)") from None
        except paramiko.SSHException as exc:
            client.close()
            if "not found in known_hosts" in str(exc):
                raise FetchError(f"{where}: unknown host key, not in {known} (refused)") from None
            raise FetchError(f"{where}: {exc}") from None
        except (OSError, TimeoutError) as exc:
            client.close()
            reason = getattr(exc, "strerror", None) or str(exc) or type(exc).__name__
            raise FetchError(f"{where}: cannot connect: {reason}") from None
        self._client = client
        return client

    @contextlib.contextmanager
    def stream(self, args: list[str]) -> Iterator[BinaryIO]:
        client = self._connect()
        command = shlex.join(args)
        try:
            transport = client.get_transport()
            channel = transport.open_session(timeout=self.config.connect_timeout_s)
            channel.settimeout(self.config.command_timeout_s)
            channel.exec_command(command)
        except Exception as exc:  # paramiko raises several unrelated types here
            raise FetchError(f"ssh {self.config.host}: cannot start {args[0]}: {exc}") from None
        stdout = channel.makefile("rb", 1 << 16)
        stderr = channel.makefile_stderr("rb", 1 << 16)
        stderr_chunks: list[bytes] = []
        reader = threading.Thread(target=_drain, args=(stderr, stderr_chunks), daemon=True)
        reader.start()
        watchdog = _Watchdog(self.config.command_timeout_s, channel.close)
        try:
            try:
                yield stdout
            except TimeoutError:
                raise FetchError(
                    f"ssh {self.config.host}: {args[0]} timed out after "
                    f"{self.config.command_timeout_s:g} s"
                ) from None
            with contextlib.suppress(Exception):
                stdout.read()
            rc = channel.recv_exit_status()
        finally:
            watchdog.cancel()
            reader.join(timeout=5)
            channel.close()
        if watchdog.fired:
            raise FetchError(
                f"ssh {self.config.host}: {args[0]} timed out after {self.config.command_timeout_s:g} s"
            )
        if rc != 0:
            err = b"".join(stderr_chunks).decode("utf-8", "replace").strip()
            raise FetchError(
                f"ssh {self.config.host}: {shlex.join(args[:2])} exited {rc}: {err[:500]}"
            )

    def output(self, args: list[str]) -> bytes:
        with self.stream(args) as out:
            return out.read()

    def close(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None


def load_private_key(path: Path) -> Any:
    """Load an ed25519, ECDSA or RSA private key (unencrypted, as cron jobs use)."""
    import paramiko

    errors = []
    for kind in (paramiko.Ed25519Key, paramiko.ECDSAKey, paramiko.RSAKey):
        try:
            return kind.from_private_key_file(str(path))
        except (paramiko.SSHException, ValueError) as exc:
            errors.append(f"{kind.__name__}: {exc}")
        except OSError as exc:
            raise FetchError(f"cannot read SSH key {path}: {exc.strerror}") from None
    raise FetchError(f"{path} is not an unencrypted ed25519, ECDSA or RSA key")


# --------------------------------------------------------------------------- fetchers


class Fetcher:
    """The reports of one cluster (the base class runs commands through a Runner)."""

    def __init__(self, cluster_name: str, cluster: ClusterConfig, runner: Runner) -> None:
        self.cluster_name = cluster_name
        self.cluster = cluster
        self.runner = runner

    def slurm_version(self) -> str:
        """The cluster's Slurm version: pinned in the config, else ``sacct -V``."""
        if self.cluster.slurm_version:
            return self.cluster.slurm_version
        return parse_version(self.runner.output(["sacct", "-V"]))

    @contextlib.contextmanager
    def jobs(self, start: datetime, end: datetime, *, cancelled: bool = False) -> Iterator[Report]:
        fmt = self.cluster.jobs_format
        args = sacct_command(fmt, start, end, self.cluster.timezone)
        if cancelled:
            args += ["--state=CANCELLED"]
        source = f"{self.cluster_name}:sacct{' -s CA' if cancelled else ''}"
        with self.runner.stream(args) as out:
            yield Report(fmt=fmt, source=source, stream=out)

    def job_reports(
        self, start: datetime, end: datetime
    ) -> list[contextlib.AbstractContextManager[Report]]:
        """Every report the window needs, each to store in turn.

        Plain sacct does not list jobs cancelled while pending with a future or
        unknown eligible time (``--begin``, held), not even with ``-S``; sacct
        ``-s CA -S .. -E ..`` does (22.05). Jobs in both reports are stored
        once and found unchanged the second time.
        """
        return [self.jobs(start, end), self.jobs(start, end, cancelled=True)]

    @contextlib.contextmanager
    def nodes(self) -> Iterator[Report]:
        fmt = self.cluster.nodes_format
        with self.runner.stream(nodes_command(fmt)) as out:
            yield Report(fmt=fmt, source=f"{self.cluster_name}:{fmt}", stream=out)

    def close(self) -> None:
        self.runner.close()


class FileFetcher(Fetcher):
    """Reads the newest reports another process left in ``report_dir``.

    Jobs: the newest file named ``sacct*`` or ``jobs*``; nodes: the newest
    ``sinfo*``, ``scontrol*`` or ``nodes*``; the version: ``version*`` (the
    text of ``sacct -V``) unless pinned. Formats are detected from content.
    """

    JOB_PREFIXES = ("sacct", "jobs")
    NODE_PREFIXES = ("sinfo", "scontrol", "nodes")

    def __init__(self, cluster_name: str, cluster: ClusterConfig) -> None:
        self.cluster_name = cluster_name
        self.cluster = cluster
        self.directory = Path(cluster.report_dir).expanduser()

    def _newest(self, prefixes: tuple[str, ...]) -> Path | None:
        try:
            files = [
                p
                for p in self.directory.iterdir()
                if p.is_file() and p.name.startswith(prefixes) and not p.name.startswith(".")
            ]
        except OSError as exc:
            raise FetchError(f"report_dir {self.directory}: {exc.strerror}") from None
        return max(files, key=lambda p: (p.stat().st_mtime, p.name)) if files else None

    def slurm_version(self) -> str | None:  # type: ignore[override]
        if self.cluster.slurm_version:
            return self.cluster.slurm_version
        path = self._newest(("version",))
        return parse_version(path.read_bytes()) if path else None

    @contextlib.contextmanager
    def _open(self, prefixes: tuple[str, ...], what: str) -> Iterator[Report]:
        path = self._newest(prefixes)
        if path is None:
            raise FetchError(f"no {what} report ({'*, '.join(prefixes)}*) in {self.directory}")
        with path.open("rb") as fh:
            yield Report(fmt="auto", source=str(path), stream=fh)

    @contextlib.contextmanager
    def jobs(self, start: datetime, end: datetime, *, cancelled: bool = False) -> Iterator[Report]:
        with self._open(self.JOB_PREFIXES, "jobs") as report:
            yield report

    def job_reports(
        self, start: datetime, end: datetime
    ) -> list[contextlib.AbstractContextManager[Report]]:
        return [self.jobs(start, end)]

    @contextlib.contextmanager
    def nodes(self) -> Iterator[Report]:
        with self._open(self.NODE_PREFIXES, "nodes") as report:
            yield report

    def close(self) -> None:
        pass


class PyslurmFetcher(Fetcher):
    """Reads jobs and nodes through the ``pyslurm`` module, harmonized to the schema."""

    def __init__(self, cluster_name: str, cluster: ClusterConfig) -> None:
        try:
            import pyslurm  # type: ignore[import-not-found]
        except ImportError:
            raise FetchError("fetch = 'pyslurm' but the pyslurm module is not installed") from None
        self.pyslurm = pyslurm
        self.cluster_name = cluster_name
        self.cluster = cluster

    def slurm_version(self) -> str:
        if self.cluster.slurm_version:
            return self.cluster.slurm_version
        return parse_version(str(self.pyslurm.version()))

    def job_reports(
        self, start: datetime, end: datetime
    ) -> list[contextlib.AbstractContextManager[Report]]:
        return [self.jobs(start, end)]

    @contextlib.contextmanager
    def jobs(self, start: datetime, end: datetime, *, cancelled: bool = False) -> Iterator[Report]:
        try:
            raw = self.pyslurm.slurmdb_jobs().get(
                starttime=start.strftime(_SLURM_TIME).encode(),
                endtime=end.strftime(_SLURM_TIME).encode(),
            )
        except Exception as exc:  # pyslurm raises its own ValueError/RuntimeError types
            raise FetchError(f"pyslurm slurmdb_jobs: {exc}") from None
        records = (pyslurm_job(self.cluster_name, rec) for rec in raw.values())
        yield Report(fmt="records", source="pyslurm", records=records)

    @contextlib.contextmanager
    def nodes(self) -> Iterator[Report]:
        try:
            raw = self.pyslurm.node().get()
        except Exception as exc:  # see above
            raise FetchError(f"pyslurm node: {exc}") from None
        records = (pyslurm_node(self.cluster_name, name, rec) for name, rec in raw.items())
        yield Report(fmt="records", source="pyslurm", records=records)

    def close(self) -> None:
        pass


def _epoch(value: Any) -> datetime | None:
    from datetime import UTC

    try:
        seconds = int(value)
    except (TypeError, ValueError):
        return None
    return datetime.fromtimestamp(seconds, UTC) if 0 < seconds < 2**31 else None


def _int(value: Any) -> int | None:
    try:
        number = int(value)
    except (TypeError, ValueError):
        return None
    return None if number in (4294967294, 4294967295, -2, -1) else number


def pyslurm_job(cluster_name: str, rec: dict[str, Any]) -> Job:
    """A pyslurm ``slurmdb_jobs`` record in the schema (names mostly match already)."""
    state = str(rec.get("state_str") or rec.get("job_state") or "PENDING").split()[0].upper()
    exit_raw = _int(rec.get("exitcode") if "exitcode" in rec else rec.get("exit_code"))
    return Job(
        cluster_name=cluster_name,
        job_id=int(rec.get("jobid") or rec.get("job_id")),
        array_job_id=_int(rec.get("array_job_id")) or None,
        array_task_id=_int(rec.get("array_task_id")),
        name=rec.get("jobname") or rec.get("name"),
        username=rec.get("user") or rec.get("user_name"),
        account=rec.get("account"),
        partition=rec.get("partition"),
        qos=rec.get("qos"),
        job_state=state,
        exit_code=(exit_raw >> 8) if exit_raw is not None and exit_raw > 255 else exit_raw,
        submit_time=_epoch(rec.get("submit")),
        start_time=_epoch(rec.get("start")),
        end_time=_epoch(rec.get("end")),
        time_limit=_int(rec.get("timelimit")),
        nodes=rec.get("nodes"),
        num_nodes=_int(rec.get("alloc_nodes")),
        num_cpus=_int(rec.get("alloc_cpus") or rec.get("req_cpus")),
        working_directory=rec.get("work_dir"),
    )


def _load(value: Any) -> float | None:
    load = _int(value)
    return None if load is None else load / 100


def pyslurm_node(cluster_name: str, name: str, rec: dict[str, Any]) -> Node:
    """A pyslurm ``node().get()`` record in the schema."""
    state, *flags = str(rec.get("state") or "unknown").lower().split("+")
    return Node(
        cluster_name=cluster_name,
        name=name,
        state=state.rstrip("*~#$@%!^-"),
        state_flags=[f.upper() for f in flags],
        reason=rec.get("reason") or None,
        reason_time=_epoch(rec.get("reason_time")),
        partitions=list(rec.get("partitions") or []),
        cpus=_int(rec.get("cpus")),
        alloc_cpus=_int(rec.get("alloc_cpus")),
        real_memory_mb=_int(rec.get("real_memory")),
        alloc_memory_mb=_int(rec.get("alloc_mem")),
        features=list(rec.get("features_active") or rec.get("features") or []),
        cpu_load=_load(rec.get("cpu_load")),
    )


def make_fetcher(cluster_name: str, cluster: ClusterConfig) -> Fetcher:
    """The fetcher the cluster's config asks for."""
    if cluster.fetch == "local":
        timeout = cluster.ssh.command_timeout_s if cluster.ssh else 300.0
        runner = LocalRunner(timeout_s=timeout, env=_slurm_env(cluster.timezone))
        return Fetcher(cluster_name, cluster, runner)
    if cluster.fetch == "ssh":
        assert cluster.ssh is not None  # the config validator guarantees it
        return Fetcher(cluster_name, cluster, SshRunner(cluster.ssh))
    if cluster.fetch == "file":
        return FileFetcher(cluster_name, cluster)
    if cluster.fetch == "pyslurm":
        return PyslurmFetcher(cluster_name, cluster)
    raise FetchError(f"unknown fetcher {cluster.fetch!r}")


def _slurm_env(timezone: str) -> dict[str, str]:
    """The environment of local Slurm commands: ISO times in the cluster's timezone.

    ``SLURM_TIME_FORMAT``/``SACCT_*``/``SQUEUE_*`` would change the output format.
    """
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLURM_TIME_FORMAT", "SQUEUE_", "SACCT_", "SINFO_"))
    }
    env["LC_ALL"] = "C"
    env["TZ"] = timezone
    return env


@dataclass
class Window:
    """The sacct window of one scrape."""

    start: datetime
    end: datetime
    first: bool = field(default=False)


def scrape_window(
    last_success: datetime | None,
    now: datetime,
    *,
    overlap_minutes: int,
    initial_lookback_days: int,
) -> Window:
    """From the last successful scrape minus the overlap, or the lookback on a first scrape."""
    if last_success is None:
        return Window(start=now - timedelta(days=initial_lookback_days), end=now, first=True)
    return Window(start=last_success - timedelta(minutes=overlap_minutes), end=now)
