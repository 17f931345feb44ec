"""A job's output files: list them, read one (ranges, size limit), never leave its directories.

What a submission may read: its stdout and stderr files, and regular files
under its ``dirs``. A requested path is resolved (``..`` and symlinks, the
directories' symlinks too) and must then be one of those files or lie under one
of those directories (:meth:`pathlib.Path.is_relative_to`); when the cluster's
``submit.output_roots`` is set, under one of those as well.

Local reads (backends ``local`` and ``slurmrestd``, which share the cluster's
filesystem) happen as the portal's own user, which may be root: a file must
therefore also be OWNED by the mapped cluster user, so nobody reads through
Clockwork what they could not read themselves. With the ``ssh`` backend the
files are read by SFTP logged in as that user, and the remote permissions
apply.

Plain functions; the view turns :class:`FileSlice` into a (206) response.
"""

from __future__ import annotations

import os
import posixpath
import pwd
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from clockwork_core.config import Config
from clockwork_web.errors import BadRequest, ClockworkError, Forbidden, NotFound, PayloadTooLarge
from clockwork_web.submissions.backends import (
    BackendError,
    SshBackend,
    get_backend,
    iter_local_files,
)

MAX_LISTED = 1000
CHUNK = 64 * 1024
_RANGE = re.compile(r"^bytes=(\d*)-(\d*)$")


class RangeNotSatisfiable(ClockworkError):
    status = 416
    code = "range_not_satisfiable"

    def __init__(self, message: str, size: int) -> None:
        super().__init__(message)
        self.size = size


@dataclass
class FileSlice:
    """Bytes ``start..end`` (inclusive) of a file of ``size`` bytes."""

    path: str
    size: int
    start: int
    end: int
    partial: bool
    chunks: Iterator[bytes]

    @property
    def length(self) -> int:
        return max(self.end - self.start + 1, 0)


def parse_range(header: str | None, size: int, limit: int) -> tuple[int, int, bool]:
    """``(start, end, partial)`` for a ``Range: bytes=...`` header (one range).

    A missing or malformed header means the whole file (which must fit in
    ``limit``, else 413); a range is cut to ``limit`` bytes. Raises
    RangeNotSatisfiable past the end.
    """
    match = _RANGE.match(header.strip()) if header else None
    if match is None or (not match.group(1) and not match.group(2)):
        if size > limit:
            raise PayloadTooLarge(
                f"the file has {size} bytes, more than {limit}: ask for a Range "
                f"(e.g. 'Range: bytes=-{min(limit, 65536)}') or ?tail=N"
            )
        return 0, size - 1, False
    first, last = match.group(1), match.group(2)
    if not first:  # suffix: the last N bytes
        n = int(last)
        if n == 0:
            raise RangeNotSatisfiable("empty suffix range", size)
        start, end = max(size - n, 0), size - 1
    else:
        start = int(first)
        end = int(last) if last else size - 1
        if end < start:
            raise RangeNotSatisfiable("the range ends before it starts", size)
        end = min(end, size - 1)
    if start >= size:
        raise RangeNotSatisfiable(f"the file has {size} bytes", size)
    if end - start + 1 > limit:
        end = start + limit - 1
    return start, end, True


def _allowed(doc: dict[str, Any]) -> tuple[list[str], list[str]]:
    """(single files, directories) the submission may read, as stored (unresolved)."""
    files = [p for p in (doc.get("stdout"), doc.get("stderr")) if p]
    dirs = [d for d in doc.get("dirs") or [] if d]
    cwd = doc.get("cwd") or "/"
    dirs = [d if d.startswith("/") else posixpath.join(cwd, d) for d in dirs]
    return list(dict.fromkeys(files)), dirs


def _requested(path: str, doc: dict[str, Any]) -> str:
    if not isinstance(path, str) or not path or "\x00" in path or len(path) > 4096:
        raise BadRequest("invalid path", param="path")
    if path in ("stdout", "stderr"):
        named = doc.get(path)
        if not named:
            raise NotFound(f"this submission has no {path} file yet")
        return named
    return path if path.startswith("/") else "/" + path


def _under_roots(resolved: Path, roots: list[str]) -> bool:
    if not roots:
        return True
    return any(resolved.is_relative_to(Path(r).resolve()) for r in roots)


def _user_uid(username: str) -> int:
    try:
        return pwd.getpwnam(username).pw_uid
    except KeyError:
        raise Forbidden(f"user {username!r} does not exist on this host") from None


def check_local_path(doc: dict[str, Any], path: str, config: Config) -> Path:
    """The resolved path if the submission may read it here, else Forbidden/NotFound."""
    wanted = _requested(path, doc)
    files, dirs = _allowed(doc)
    try:
        resolved = Path(wanted).resolve(strict=True)
    except (FileNotFoundError, NotADirectoryError):
        raise NotFound(f"no file {wanted}") from None
    except (OSError, RuntimeError):
        raise Forbidden("this path cannot be read") from None
    ok = any(resolved == Path(f).resolve() for f in files) or any(
        resolved.is_relative_to(Path(d).resolve()) and resolved != Path(d).resolve() for d in dirs
    )
    cluster = config.clusters.get(doc["cluster_name"])
    roots = cluster.submit.output_roots if cluster else []
    if not ok or not _under_roots(resolved, roots):
        raise Forbidden("this path is outside the job's files and directories")
    info = resolved.stat()
    if not resolved.is_file():
        raise Forbidden("not a regular file")
    if info.st_uid != _user_uid(doc["username"]):
        raise Forbidden("this file does not belong to the job's user")
    return resolved


def _is_ssh(doc: dict[str, Any], config: Config) -> bool:
    cluster = config.clusters.get(doc["cluster_name"])
    return cluster is not None and cluster.submit.backend == "ssh"


def list_files(doc: dict[str, Any], config: Config) -> list[dict[str, Any]]:
    """The job's stdout, stderr and the files under its dirs that exist: ``{path, size, kind}``."""
    files, dirs = _allowed(doc)
    out: list[dict[str, Any]] = []
    seen: set[str] = set()

    def add(path: str, size: int, kind: str) -> None:
        if path not in seen:
            seen.add(path)
            out.append({"path": path, "size": size, "kind": kind})

    kinds = {}
    if doc.get("stdout"):
        kinds[doc["stdout"]] = "stdout"
    if doc.get("stderr"):
        kinds.setdefault(doc["stderr"], "stderr")
    if _is_ssh(doc, config):
        backend = get_backend(config.clusters[doc["cluster_name"]])
        assert isinstance(backend, SshBackend)
        try:
            for f in files:
                try:
                    size, _ = backend.read_file(doc["username"], f, 0, 0)
                    add(f, size, kinds.get(f, "file"))
                except FileNotFoundError:
                    continue
            for d in dirs:
                for entry in backend.list_dir(doc["username"], d, MAX_LISTED - len(out)):
                    add(entry.path, entry.size, "file")
        except BackendError as exc:
            from clockwork_web.errors import Unavailable

            raise Unavailable(f"cannot reach the cluster: {exc}") from None
        return out
    for f in files:
        try:
            resolved = check_local_path(doc, f, config)
        except (NotFound, Forbidden):
            continue
        add(f, resolved.stat().st_size, kinds.get(f, "file"))
    for d in dirs:
        root = Path(d)
        if not root.is_dir():
            continue
        for path in iter_local_files(root, MAX_LISTED):
            if len(out) >= MAX_LISTED:
                break
            try:
                resolved = check_local_path(doc, str(path), config)
            except (NotFound, Forbidden):
                continue
            add(str(path), resolved.stat().st_size, "file")
    return out


def _read_chunks(path: Path, start: int, length: int) -> Iterator[bytes]:
    with path.open("rb") as fh:
        fh.seek(start)
        left = length
        while left > 0:
            data = fh.read(min(CHUNK, left))
            if not data:
                break
            left -= len(data)
            yield data


def read_file(
    doc: dict[str, Any],
    path: str,
    config: Config,
    *,
    range_header: str | None = None,
    tail: int | None = None,
) -> FileSlice:
    """One file (or a byte range of it) of the submission; see the module docstring."""
    cluster = config.clusters.get(doc["cluster_name"])
    limit = cluster.submit.max_file_bytes if cluster else 10 * 1024 * 1024
    if tail is not None:
        if tail < 1:
            raise BadRequest("must be a positive number of bytes", param="tail")
        range_header = f"bytes=-{min(tail, limit)}"
    if _is_ssh(doc, config):
        return _read_ssh(doc, path, config, range_header, limit)
    resolved = check_local_path(doc, path, config)
    # open once, so the size and the bytes come from the same file
    fd = os.open(resolved, os.O_RDONLY | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    if size == 0:
        return FileSlice(str(resolved), 0, 0, -1, False, iter(()))
    start, end, partial = parse_range(range_header, size, limit)
    return FileSlice(
        str(resolved), size, start, end, partial, _read_chunks(resolved, start, end - start + 1)
    )


def _read_ssh(
    doc: dict[str, Any], path: str, config: Config, range_header: str | None, limit: int
) -> FileSlice:
    backend = get_backend(config.clusters[doc["cluster_name"]])
    assert isinstance(backend, SshBackend)
    wanted = _requested(path, doc)
    files, dirs = _allowed(doc)
    user = doc["username"]
    try:
        resolved = backend.realpath(user, wanted)
        ok = any(resolved == backend.realpath(user, f) for f in files if f) or any(
            posixpath.commonpath([resolved, backend.realpath(user, d)]) == backend.realpath(user, d)
            and resolved != backend.realpath(user, d)
            for d in dirs
        )
        if not ok:
            raise Forbidden("this path is outside the job's files and directories")
        size, _ = backend.read_file(user, resolved, 0, 0)
        if size == 0:
            return FileSlice(resolved, 0, 0, -1, False, iter(()))
        start, end, partial = parse_range(range_header, size, limit)
        _, data = backend.read_file(user, resolved, start, end - start + 1)
    except FileNotFoundError:
        raise NotFound(f"no file {wanted}") from None
    except BackendError as exc:
        from clockwork_web.errors import Unavailable

        raise Unavailable(f"cannot reach the cluster: {exc}") from None
    return FileSlice(resolved, size, start, start + len(data) - 1, partial, iter([data]))
