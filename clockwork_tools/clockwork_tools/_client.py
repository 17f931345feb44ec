"""The Clockwork REST client: one method per endpoint of ``/api/v1``.

Every call has a timeout; safe calls (GET/HEAD) are retried with exponential
backoff on 429/502/503/504 and on connection failures; calls that change
something are never retried behind your back (``submit`` sends a client uuid,
so a submission can be retried by hand without running twice).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
import uuid as uuid_module
from collections.abc import Iterable, Iterator, Mapping
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import IO, Any, Callable, TypeVar
from urllib.parse import quote, urljoin, urlsplit

import requests

from clockwork_tools._config import (
    DEFAULT_BACKOFF,
    DEFAULT_RETRIES,
    MAX_BACKOFF,
    Settings,
    resolve,
)
from clockwork_tools._exceptions import (
    ClockworkError,
    ConfigurationError,
    HTTPStatusError,
    Timeout,
    TransportError,
    error_from_response,
    parse_retry_after,
)
from clockwork_tools._models import (
    Cluster,
    FileInfo,
    Gpu,
    Job,
    JobRef,
    Node,
    Page,
    Submission,
    Token,
    Usage,
    User,
)

__all__ = ["Client", "current_job"]

T = TypeVar("T")

SAFE_METHODS = frozenset({"GET", "HEAD"})
RETRY_STATUSES = frozenset({429, 502, 503, 504})
CHUNK_SIZE = 64 * 1024
API = "/api/v1"

_version: str | None = None


def _user_agent() -> str:
    global _version
    if _version is None:
        try:
            from importlib.metadata import version

            _version = version("clockwork_tools")
        except Exception:  # not installed (source checkout)
            _version = "0"
    return f"clockwork_tools/{_version} python-requests/{requests.__version__}"


def _param(value: Any) -> Any:
    """A query-string value: times as ISO 8601, booleans as true/false, lists kept."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, (list, tuple, set, frozenset)):
        return ",".join(str(_param(v)) for v in value)
    return value


def _params(filters: Mapping[str, Any]) -> dict[str, Any]:
    return {k: _param(v) for k, v in filters.items() if v is not None}


def current_job(cluster: str | None = None, env: Mapping[str, str] | None = None) -> JobRef:
    """The job this code runs in, from the Slurm environment.

    ``SLURM_JOB_ID`` is the job's own id (for an array task too: each task has
    its own, which is the id Clockwork stores); ``SLURM_CLUSTER_NAME`` the
    cluster, unless ``cluster`` names the Clockwork cluster explicitly.
    """
    env = os.environ if env is None else env
    raw_id = env.get("SLURM_JOB_ID") or env.get("SLURM_JOBID")
    if not raw_id:
        raise ConfigurationError("not inside a Slurm job: SLURM_JOB_ID is not set")
    try:
        job_id = int(raw_id)
    except ValueError:
        raise ConfigurationError(f"SLURM_JOB_ID is not a number: {raw_id!r}") from None
    name = cluster or env.get("SLURM_CLUSTER_NAME")
    if not name:
        raise ConfigurationError("SLURM_CLUSTER_NAME is not set: pass the cluster name")
    return JobRef(name, job_id)


class Client:
    """A connection to one Clockwork server, as one user.

    ``Client()`` finds its URL and token in the environment or the config file
    (see :mod:`clockwork_tools._config`); use it as a context manager, or call
    :meth:`close`, to release its connections.
    """

    def __init__(
        self,
        url: str | None = None,
        token: str | None = None,
        *,
        email: str | None = None,
        api_key: str | None = None,
        timeout: float | None = None,
        retries: int = DEFAULT_RETRIES,
        backoff: float = DEFAULT_BACKOFF,
        session: requests.Session | None = None,
        config_file: str | Path | None = None,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.settings: Settings = resolve(
            url,
            token,
            email=email,
            api_key=api_key,
            timeout=timeout,
            env=env,
            config_file=Path(config_file) if config_file is not None else None,
        )
        parts = urlsplit(self.settings.url)
        if parts.scheme not in ("http", "https") or not parts.netloc:
            raise ConfigurationError(f"the server URL must be http(s)://host[:port]: {parts!r}")
        self.url = self.settings.url
        self.timeout = self.settings.timeout
        if retries < 0:
            raise ConfigurationError("retries must be >= 0")
        self.retries = retries
        self.backoff = backoff
        self._owns_session = session is None
        self._session = session if session is not None else requests.Session()
        self._session.headers["User-Agent"] = _user_agent()
        self._session.headers["Accept"] = "application/json"
        if self.settings.token:
            self._session.headers["Authorization"] = f"Bearer {self.settings.token}"
        elif self.settings.email and self.settings.api_key:
            self._session.auth = (self.settings.email, self.settings.api_key)
        self._sleep: Callable[[float], None] = time.sleep

    # ------------------------------------------------------------------ plumbing

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._owns_session:
            self._session.close()

    def __repr__(self) -> str:
        return f"Client(url={self.url!r})"

    def _url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return self.url + path

    def _same_origin(self, url: str) -> bool:
        a, b = urlsplit(self.url), urlsplit(url)
        return (a.scheme, a.netloc) == (b.scheme, b.netloc)

    def _delay(self, attempt: int, response: requests.Response | None) -> float:
        delay = self.backoff * (2**attempt)
        if response is not None:
            hint = parse_retry_after(response.headers.get("Retry-After"))
            if hint is not None:
                delay = max(delay, hint)
        return min(delay, MAX_BACKOFF)

    def request(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        headers: Mapping[str, str] | None = None,
        stream: bool = False,
    ) -> requests.Response:
        """Send one request (retrying safe ones); raise on an error status.

        The lower layer of every method, public for endpoints this version of
        the client does not know yet.
        """
        method = method.upper()
        url = self._url(path)
        attempts = 1 + (self.retries if method in SAFE_METHODS else 0)
        for attempt in range(attempts):
            last = attempt == attempts - 1
            try:
                response = self._session.request(
                    method,
                    url,
                    params=params,
                    json=json,
                    headers=dict(headers or {}),
                    timeout=self.timeout,
                    stream=stream,
                    allow_redirects=False,
                )
            except requests.Timeout as exc:
                if last:
                    raise Timeout(
                        f"no answer from {self.url} within {self.timeout:g} s ({method} {path})",
                        request=exc.request,
                    ) from None
                self._sleep(self._delay(attempt, None))
                continue
            except requests.RequestException as exc:
                if last:
                    raise TransportError(
                        f"cannot reach {self.url}: {_reason(exc)}", request=exc.request
                    ) from None
                self._sleep(self._delay(attempt, None))
                continue
            if response.status_code in RETRY_STATUSES and not last:
                response.close()
                self._sleep(self._delay(attempt, response))
                continue
            if response.status_code >= 400:
                error = error_from_response(response)
                if response.status_code == 401 and not self.settings.has_credentials:
                    error.message += " (no token configured: set CLOCKWORK_TOKEN)"
                raise error
            if 300 <= response.status_code < 400:
                response.close()
                raise HTTPStatusError(
                    f"unexpected redirect to {response.headers.get('Location')!r}: "
                    "is the URL the Clockwork server's?",
                    status_code=response.status_code,
                    request=response.request,
                    response=response,
                )
            return response
        raise AssertionError("unreachable")  # pragma: no cover

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self.request(method, path, **kwargs)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise HTTPStatusError(
                f"the server's answer to {method} {path} is not JSON",
                status_code=response.status_code,
                request=response.request,
                response=response,
            ) from None

    def _page(self, path: str, item: Callable[[dict], T], filters: Mapping[str, Any]) -> Page[T]:
        return Page.from_dict(self._json("GET", path, params=_params(filters)), item)

    def _walk(
        self, path: str, item: Callable[[dict], T], filters: Mapping[str, Any]
    ) -> Iterator[T]:
        """Every item of a listing, one page at a time, following ``next``."""
        params = _params(filters)
        url = path
        page_number = int(params.get("page") or 1)
        while True:
            data = self._json("GET", url, params=params)
            page = Page.from_dict(data, item)
            yield from page.items
            if not page.items:
                return
            if page.next:
                target = urljoin(self._url(path), page.next)
                if self._same_origin(target):
                    url, params = target, None
                    continue
            if page.next is None and isinstance(data, dict) and "next" in data:
                return  # the server says this was the last page
            if (
                page.total is not None
                and page.per_page
                and (page.page * int(page.per_page) >= int(page.total))
            ):
                return
            page_number += 1
            params = {**_params(filters), "page": page_number}
            url = path

    @staticmethod
    def _seg(value: Any) -> str:
        return quote(str(value), safe="")

    # ------------------------------------------------------------------ jobs

    def jobs(
        self,
        *,
        cluster: str | Iterable[str] | None = None,
        user: str | None = None,
        state: str | Iterable[str] | None = None,
        job_id: int | str | Iterable[int | str] | None = None,
        array_job_id: int | str | None = None,
        name: str | None = None,
        partition: str | None = None,
        account: str | None = None,
        submitted_after: datetime | str | None = None,
        submitted_before: datetime | str | None = None,
        prop_name: str | None = None,
        prop_value: str | None = None,
        sort: str | None = None,
        order: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
        **extra: Any,
    ) -> Page[Job]:
        """One page of the jobs you may see (``GET /api/v1/jobs``).

        ``state`` takes Slurm states and the buckets PENDING, RUNNING,
        COMPLETED, FAILED; lists are sent comma-separated. ``extra`` passes
        filters this client version does not name yet.
        """
        filters = dict(locals())
        filters.pop("self")
        filters.update(filters.pop("extra"))
        return self._page(f"{API}/jobs", Job.from_dict, filters)

    def iter_jobs(self, **filters: Any) -> Iterator[Job]:
        """Every job matching ``filters`` (as :meth:`jobs`), fetched page by page lazily."""
        return self._walk(f"{API}/jobs", Job.from_dict, filters)

    def job(self, cluster: str, job_id: int | str) -> Job:
        """One job (``GET /api/v1/jobs/<cluster>/<job_id>``)."""
        return Job.from_dict(self._json("GET", self._job_path(cluster, job_id)))

    def _job_path(self, cluster: str, job_id: int | str) -> str:
        return f"{API}/jobs/{self._seg(cluster)}/{self._seg(job_id)}"

    @staticmethod
    def _props(data: Any) -> dict:
        return data if isinstance(data, dict) else {}

    def job_props(self, cluster: str, job_id: int | str) -> dict:
        """Your props on a job (``GET .../props``): {} when there are none."""
        return self._props(self._json("GET", self._job_path(cluster, job_id) + "/props"))

    def set_job_props(self, cluster: str, job_id: int | str, props: Mapping) -> dict:
        """Merge ``props`` into your props on a job (``PATCH``); returns all of them."""
        path = self._job_path(cluster, job_id) + "/props"
        return self._props(self._json("PATCH", path, json=dict(props)))

    def delete_job_props(
        self, cluster: str, job_id: int | str, keys: str | Iterable[str] | None = None
    ) -> dict:
        """Delete some of your props on a job (all of them when ``keys`` is None)."""
        path = self._job_path(cluster, job_id) + "/props"
        body = None
        if keys is not None:
            body = {"keys": [keys] if isinstance(keys, str) else list(keys)}
        return self._props(self._json("DELETE", path, json=body))

    def current_job(self, cluster: str | None = None) -> JobRef:
        """The (cluster, job_id) of the Slurm job this code runs in: ``client.job(*ref)``."""
        return current_job(cluster)

    # ------------------------------------------------------------------ nodes, clusters

    def nodes(
        self,
        *,
        cluster: str | Iterable[str] | None = None,
        state: str | Iterable[str] | None = None,
        name: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
        **extra: Any,
    ) -> Page[Node]:
        """One page of the nodes of the clusters you can see (``GET /api/v1/nodes``)."""
        filters = dict(locals())
        filters.pop("self")
        filters.update(filters.pop("extra"))
        return self._page(f"{API}/nodes", Node.from_dict, filters)

    def iter_nodes(self, **filters: Any) -> Iterator[Node]:
        """Every node matching ``filters``, page by page."""
        return self._walk(f"{API}/nodes", Node.from_dict, filters)

    def node(self, cluster: str, name: str) -> Node:
        """One node (``GET /api/v1/nodes/<cluster>/<name>``)."""
        path = f"{API}/nodes/{self._seg(cluster)}/{self._seg(name)}"
        return Node.from_dict(self._json("GET", path))

    def gpus(self) -> list[Gpu]:
        """The GPU models Clockwork knows, with their specs (``GET /api/v1/gpus``)."""
        return [Gpu.from_dict(d) for d in _items(self._json("GET", f"{API}/gpus"))]

    def clusters(self) -> list[Cluster]:
        """The clusters you can see, with the freshness of their data."""
        return [Cluster.from_dict(d) for d in _items(self._json("GET", f"{API}/clusters"))]

    def me(self) -> User:
        """Who the token belongs to (``GET /api/v1/me``)."""
        return User.from_dict(self._json("GET", f"{API}/me"))

    def token_check(self) -> User:
        """Check that the configured credentials work; returns their user.

        Raises AuthenticationError for a bad, expired or revoked token.
        """
        return self.me()

    def tokens(self) -> list[Token]:
        """Your API tokens (never their secret), newest first (``GET /api/v1/tokens``)."""
        data = self._json("GET", f"{API}/tokens")
        return [Token.from_dict(d) for d in _items(data, "tokens")]

    def create_token(self, name: str, *, expires_days: int | None = None) -> Token:
        """A new API token; its secret is in ``.token`` of the answer and nowhere else."""
        body: dict[str, Any] = {"name": name}
        if expires_days is not None:
            body["expires_days"] = expires_days
        return Token.from_dict(self._json("POST", f"{API}/tokens", json=body))

    def revoke_token(self, token_id: str) -> None:
        """Revoke one of your tokens by its ``id`` (``DELETE /api/v1/tokens/<id>``)."""
        self.request("DELETE", f"{API}/tokens/{self._seg(token_id)}")

    def usage(
        self,
        start: datetime | date | str | None = None,
        end: datetime | date | str | None = None,
        *,
        group_by: str = "user",
        cluster: str | None = None,
    ) -> Usage:
        """CPU-hours and GPU-hours per ``user``, ``account`` or ``cluster`` (``/api/v1/stats/usage``).

        The period is ``[start, end)``; by default the last 30 days.
        """
        if end is None:
            end = datetime.now(timezone.utc).replace(microsecond=0)
        if start is None:
            base = end if isinstance(end, datetime) else datetime.now(timezone.utc)
            start = base - timedelta(days=30)
        filters = {"group_by": group_by, "start": start, "end": end, "cluster": cluster}
        return Usage.from_dict(self._json("GET", f"{API}/stats/usage", params=_params(filters)))

    # ------------------------------------------------------------------ submissions

    def submit(
        self,
        cluster: str | None = None,
        *,
        script: str | None = None,
        cmd: str | None = None,
        params: Iterable[Any] | None = None,
        name: str = "generic",
        slurm: Mapping[str, Any] | None = None,
        dirs: Mapping[str, str] | None = None,
        cwd: str | None = None,
        notification: Mapping[str, Any] | None = None,
        uuid: str | None = None,
        **extra: Any,
    ) -> Submission:
        """Submit a job (``POST /api/v1/submissions``): a ``script``, or ``cmd`` + ``params``.

        ``params`` reach the job as separate arguments, never joined into a
        shell line. ``uuid`` (default: a fresh one) makes the call idempotent:
        sending the same uuid again raises ConflictError carrying the existing
        submission in ``.body``.
        """
        if (script is None) == (cmd is None):
            raise ConfigurationError("submit: give exactly one of script= or cmd=")
        task: dict[str, Any] = {"name": name, "uuid": uuid or str(uuid_module.uuid4())}
        if cluster is not None:  # else the server's only submission cluster
            task["cluster"] = cluster
        if script is not None:
            task["script"] = script
        if cmd is not None:
            task["cmd"] = cmd
            task["params"] = [str(p) for p in (params or [])]
        for key, value in (
            ("slurm", slurm),
            ("dirs", dirs),
            ("cwd", cwd),
            ("notification", notification),
        ):
            if value is not None:
                task[key] = dict(value) if isinstance(value, Mapping) else value
        task.update(extra)
        return Submission.from_dict(self._json("POST", f"{API}/submissions", json=task))

    def submissions(
        self,
        *,
        state: str | Iterable[str] | None = None,
        cluster: str | None = None,
        page: int | None = None,
        per_page: int | None = None,
        **extra: Any,
    ) -> Page[Submission]:
        """One page of your submissions, newest first."""
        filters = {"state": state, "cluster": cluster, "page": page, "per_page": per_page}
        filters.update(extra)
        return self._page(f"{API}/submissions", Submission.from_dict, filters)

    def iter_submissions(self, **filters: Any) -> Iterator[Submission]:
        """Every submission of yours matching ``filters``, page by page."""
        return self._walk(f"{API}/submissions", Submission.from_dict, filters)

    def submission(self, uuid: str) -> Submission:
        """One submission (``GET /api/v1/submissions/<uuid>``)."""
        return Submission.from_dict(self._json("GET", f"{API}/submissions/{self._seg(uuid)}"))

    def cancel(self, uuid: str) -> Submission:
        """Cancel a submission (``POST .../cancel``): CANCELLING until Slurm confirms."""
        path = f"{API}/submissions/{self._seg(uuid)}/cancel"
        return Submission.from_dict(self._json("POST", path))

    def adopt(
        self,
        cluster: str,
        job_id: int | str,
        *,
        uuid: str | None = None,
        notification: Mapping[str, Any] | None = None,
    ) -> Submission:
        """Follow a job of yours submitted elsewhere, as a submission (``POST /api/v1/monitor``).

        Adopting the same job twice raises ConflictError (``.body["submission"]``
        is the existing one).
        """
        body: dict[str, Any] = {"cluster": cluster, "job_id": int(job_id)}
        if uuid is not None:
            body["uuid"] = uuid
        if notification is not None:
            body["notification"] = dict(notification)
        return Submission.from_dict(self._json("POST", f"{API}/monitor", json=body))

    def files(self, uuid: str) -> list[FileInfo]:
        """A submission's stdout, stderr and output files."""
        data = self._json("GET", f"{API}/submissions/{self._seg(uuid)}/files")
        return [FileInfo.from_dict(d) for d in _items(data, "files")]

    def _file_path(self, uuid: str, path: str) -> str:
        return f"{API}/submissions/{self._seg(uuid)}/files/{quote(path.lstrip('/'), safe='/')}"

    def read_file(
        self, uuid: str, path: str, *, offset: int = 0, limit: int | None = None
    ) -> bytes:
        """Bytes of an output file from ``offset`` on (a range request; b"" past the end).

        ``path`` is a path from :meth:`files`, or ``"stdout"``/``"stderr"``. The
        server caps one answer (10 MiB by default): call again from
        ``offset + len(data)`` for more, as ``clockwork output --follow`` does.
        """
        end = "" if limit is None else str(offset + max(limit, 1) - 1)
        headers = {"Range": f"bytes={offset}-{end}"}
        try:
            response = self.request("GET", self._file_path(uuid, path), headers=headers)
        except HTTPStatusError as exc:
            if exc.status_code == 416:  # nothing at or past offset (yet)
                return b""
            raise
        if response.status_code == 200 and offset:  # the server ignored the range
            return response.content[offset:]
        return response.content

    def download(
        self, uuid: str, path: str, dest: str | Path | IO[bytes] | None = None
    ) -> Path | IO[bytes]:
        """Stream one output file to ``dest`` (a file, a directory, or a binary file object).

        Fetched in ranges of at most the server's limit, written as it comes;
        a file on disk is written to a temporary name and renamed at the end,
        so an interrupted download never leaves a truncated file behind.
        Returns the path written (or ``dest`` itself for a file object).
        """
        if dest is not None and hasattr(dest, "write"):
            self._copy(uuid, path, dest)  # type: ignore[arg-type]
            return dest  # type: ignore[return-value]
        target = Path(dest) if dest is not None else Path.cwd()
        if target.is_dir():
            name = Path(path).name
            if path in ("stdout", "stderr"):
                name = Path(self.submission(uuid).raw.get(path) or path).name
            target = target / name
        fd, tmp = tempfile.mkstemp(prefix=".cw-download-", dir=str(target.parent))
        try:
            with os.fdopen(fd, "wb") as out:
                self._copy(uuid, path, out)
            shutil.move(tmp, str(target))
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return target

    def _copy(self, uuid: str, path: str, out: IO[bytes]) -> int:
        """Write the whole file to ``out`` range by range; returns its size."""
        offset = 0
        url = self._file_path(uuid, path)
        while True:
            try:
                response = self.request(
                    "GET", url, headers={"Range": f"bytes={offset}-"}, stream=True
                )
            except HTTPStatusError as exc:
                if exc.status_code == 416:  # empty file, or exactly at its end
                    return offset
                raise
            try:
                for chunk in response.iter_content(CHUNK_SIZE):
                    out.write(chunk)
                    offset += len(chunk)
            except requests.RequestException as exc:
                raise TransportError(f"download of {path} interrupted: {_reason(exc)}") from None
            finally:
                response.close()
            size = _total_size(response)
            if response.status_code != 206 or size is None or offset >= size:
                return offset


def _total_size(response: requests.Response) -> int | None:
    """The file's size from ``Content-Range: bytes a-b/size`` (or X-File-Size)."""
    content_range = response.headers.get("Content-Range", "")
    total = content_range.rpartition("/")[2] if "/" in content_range else ""
    total = total or response.headers.get("X-File-Size", "")
    return int(total) if total.isdigit() else None


def _items(data: Any, *keys: str) -> list:
    """The list in a response: a bare list, or under ``items`` (or ``keys``)."""
    if isinstance(data, list):
        return data
    if isinstance(data, dict):
        for key in ("items", *keys):
            if isinstance(data.get(key), list):
                return data[key]
    raise ClockworkError(f"unexpected answer from the server: {str(data)[:200]}")


def _reason(exc: Exception) -> str:
    """A short reason for a transport failure, without the URL's query string."""
    text = str(exc.__context__ or exc) if not str(exc) else str(exc)
    return text.split("(Caused by ")[-1].rstrip(")")[:300]
