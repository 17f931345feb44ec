"""A job's output files: list them, read one (ranges, size limit), never leave its directories.

What a submission may read: its stdout and stderr files, and regular files
under its ``dirs``; when the cluster's ``submit.output_roots`` is set, under one
of those as well. That is decided on the normalised TEXT of the path first
(:func:`confine`), so a path outside answers the same whether it exists or not.

Local reads (backends ``local`` and ``slurmrestd``, which share the cluster's
filesystem) happen as the portal's own user, which may be root. So the file is
opened once, without following any symbolic link below the output root, and
the descriptor itself must be a regular file OWNED by the mapped cluster user
(:func:`open_confined`): nobody reads through Clockwork what they could not
read themselves, and swapping a file for a link mid-request gains nothing. With
the ``ssh`` backend the files are read by SFTP logged in as that user, and the
remote permissions apply.

Plain functions; the view turns :class:`FileSlice` into a (206) response.
"""

from __future__ import annotations

import errno
import os
import posixpath
import pwd
import re
import stat
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

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
    """(single files, directories) the submission may read, normalised (not resolved)."""
    files = [posixpath.normpath(p) for p in (doc.get("stdout"), doc.get("stderr")) if p]
    cwd = doc.get("cwd") or "/"
    dirs = [posixpath.normpath(posixpath.join(cwd, d)) for d in doc.get("dirs") or [] if d]
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


def _inside(path: str, folder: str) -> bool:
    """True if ``path`` lies strictly under ``folder`` (both normalised text)."""
    return path != folder and path.startswith(folder.rstrip("/") + "/")


def _user_uid(username: str) -> int:
    try:
        return pwd.getpwnam(username).pw_uid
    except KeyError:
        raise Forbidden(f"user {username!r} does not exist on this host") from None


def confine(doc: dict[str, Any], path: str, roots: list[str]) -> tuple[str, str]:
    """``(path, where to start the walk)`` if the TEXT of ``path`` is the job's, else Forbidden.

    Decided on the normalised text alone, before the filesystem is touched, so
    that the answer for a path outside the job's files is the same whether or
    not it exists. The walk starts at the configured output root the path lies
    under (the operator's, symlinks allowed), else at ``/``.
    """
    wanted = posixpath.normpath(_requested(path, doc))
    files, dirs = _allowed(doc)
    if not (wanted in files or any(_inside(wanted, d) for d in dirs)):
        raise Forbidden("this path is outside the job's files and directories")
    if not roots:
        return wanted, "/"
    for root in roots:
        for form in dict.fromkeys([posixpath.normpath(root), os.path.realpath(root)]):
            if _inside(wanted, form):
                return wanted, form
    raise Forbidden("this path is outside the job's files and directories")


def open_confined(path: str, start: str, uid: int) -> int:
    """A read-only descriptor of the regular file ``path`` owned by ``uid``.

    The portal may run as root, so the file is opened ONCE, one component at a
    time from ``start`` with ``O_NOFOLLOW`` (a symbolic link anywhere below
    ``start`` is refused, so a link swapped in between two steps cannot lead
    elsewhere), and the owner and type are checked on that descriptor: the
    bytes served are those of the file checked.
    """
    parts = [p for p in (path if start == "/" else path[len(start) :]).split("/") if p]
    try:
        fd = os.open(start, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        raise NotFound(f"no file {path}") from None
    try:
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_NOFOLLOW | os.O_CLOEXEC
            flags |= os.O_RDONLY | os.O_NONBLOCK if last else os.O_PATH | os.O_DIRECTORY
            try:
                child = os.open(part, flags, dir_fd=fd)
            except (FileNotFoundError, NotADirectoryError) as exc:
                if isinstance(exc, NotADirectoryError) and _is_link(part, fd):
                    raise Forbidden("this path goes through a symbolic link") from None
                raise NotFound(f"no file {path}") from None
            except OSError as exc:
                if exc.errno == errno.ELOOP:
                    raise Forbidden("this path is a symbolic link") from None
                raise Forbidden(f"this path cannot be read ({exc.strerror})") from None
            os.close(fd)
            fd = child
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise Forbidden("not a regular file")
        if info.st_uid != uid:
            raise Forbidden("this file does not belong to the job's user")
        return fd
    except BaseException:
        os.close(fd)
        raise


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_local(doc: dict[str, Any], path: str, config: Config) -> tuple[str, int]:
    """``(normalised path, descriptor)`` of a file the submission may read here."""
    cluster = config.clusters.get(doc["cluster_name"])
    roots = cluster.submit.output_roots if cluster else []
    wanted, start = confine(doc, path, roots)
    return wanted, open_confined(wanted, start, _user_uid(doc["username"]))


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

    kinds: dict[str, str] = {}  # by normalised path, as _allowed lists them
    for kind in ("stdout", "stderr"):
        if doc.get(kind):
            kinds.setdefault(posixpath.normpath(doc[kind]), kind)
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
    candidates = [(f, kinds.get(f, "file")) for f in files]
    for d in dirs:
        root = Path(d)
        if root.is_dir() and not root.is_symlink():
            candidates.extend((str(p), "file") for p in iter_local_files(root, MAX_LISTED))
    for path, kind in candidates:
        if len(out) >= MAX_LISTED:
            break
        try:
            _, fd = _open_local(doc, path, config)
        except (NotFound, Forbidden):
            continue
        try:
            add(path, os.fstat(fd).st_size, kind)
        finally:
            os.close(fd)
    return out


def _read_chunks(fh: BinaryIO, start: int, length: int) -> Iterator[bytes]:
    """``length`` bytes from ``start`` of the open file; closes it when done.

    A file object, not a bare descriptor: a response that is never iterated
    (a HEAD, a client gone) drops the generator unstarted, its ``finally``
    never runs, and only the file object's own finaliser closes the descriptor.
    """
    with fh:
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
    wanted, fd = _open_local(doc, path, config)
    try:  # the size and the bytes come from the one descriptor that was checked
        size = os.fstat(fd).st_size
        start, end, partial = parse_range(range_header, size, limit) if size else (0, -1, False)
    except BaseException:
        os.close(fd)
        raise
    if size == 0:
        os.close(fd)
        return FileSlice(wanted, 0, 0, -1, False, iter(()))
    chunks = _read_chunks(os.fdopen(fd, "rb"), start, end - start + 1)
    return FileSlice(wanted, size, start, end, partial, chunks)


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
