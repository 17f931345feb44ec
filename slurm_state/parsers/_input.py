"""Turn what a caller hands a parser into text, lazily, without reading it all.

A parser accepts a binary or text file object (read in large chunks), or any
iterable of ``str``/``bytes`` items, each taken as one line (with or without
its newline). Bytes are decoded as UTF-8; invalid bytes become U+FFFD so one
bad character never loses a record. A byte-order mark at the start (files saved
by Windows editors, ``Out-File``) is dropped, so it cannot turn a psv header into
a job row or make a JSON document "not a JSON object".
"""

from __future__ import annotations

import codecs
import itertools
from collections.abc import Iterable, Iterator
from typing import Any

CHUNK_SIZE = 1 << 20
HEAD_SIZE = 4096
BOM = "\ufeff"


def without_bom(texts: Iterable[str]) -> Iterator[str]:
    """``texts`` with a byte-order mark removed from the start of the first one."""
    items = iter(texts)
    for first in items:
        yield first[1:] if first.startswith(BOM) else first
        break
    yield from items


class Input:
    """One input, with its first bytes available before parsing starts (for ``auto``)."""

    def __init__(self, data: Any) -> None:
        self._data = data
        self._is_file = hasattr(data, "read")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._head: bytes | None = None
        if self._is_file:
            self._items: Iterator[Any] = iter(lambda: data.read(CHUNK_SIZE), data.read(0))
        else:
            if isinstance(data, (str, bytes)):
                raise TypeError("pass a file object or an iterable of lines, not one string")
            self._items = iter(data)

    @property
    def head(self) -> bytes:
        """The first few KB (read on first use, and still parsed afterwards)."""
        if self._head is not None:
            return self._head
        if self._is_file:
            first = self._data.read(HEAD_SIZE)
            self._items = itertools.chain([first] if first else [], self._items)
            self._head = first if isinstance(first, bytes) else first.encode("utf-8", "replace")
            return self._head
        head_items: list[Any] = []
        size = 0
        for item in self._items:
            head_items.append(item)
            size += len(item)
            if size >= HEAD_SIZE:
                break
        self._items = itertools.chain(head_items, self._items)
        joined = [i if isinstance(i, bytes) else i.encode("utf-8", "replace") for i in head_items]
        self._head = b"\n".join(j.rstrip(b"\r\n") for j in joined)
        return self._head

    def _text(self, item: Any) -> str:
        if isinstance(item, bytes):
            return self._decoder.decode(item)
        return item

    def lines(self) -> Iterator[str]:
        """The lines, without their line endings (nor a leading byte-order mark)."""
        return without_bom(self._lines())

    def _lines(self) -> Iterator[str]:
        if not self._is_file:
            for item in self._items:
                text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
                if text.endswith("\n"):
                    text = text[:-2] if text.endswith("\r\n") else text[:-1]
                yield text
            return
        tail = ""
        for item in self._items:
            text = self._text(item)
            if not text:
                continue
            parts = (tail + text).split("\n")
            tail = parts.pop()
            if "\r" in text:
                for part in parts:
                    yield part[:-1] if part.endswith("\r") else part
            else:
                yield from parts
        tail += self._decoder.decode(b"", final=True)
        if tail:
            yield tail[:-1] if tail.endswith("\r") else tail

    def chunks(self) -> Iterator[str]:
        """The text in pieces of about CHUNK_SIZE characters (lines are joined; no
        leading byte-order mark)."""
        return without_bom(self._chunks())

    def _chunks(self) -> Iterator[str]:
        if self._is_file:
            for item in self._items:
                text = self._text(item)
                if text:
                    yield text
            final = self._decoder.decode(b"", final=True)
            if final:
                yield final
            return
        pending: list[str] = []
        size = 0
        for item in self._items:
            text = item.decode("utf-8", "replace") if isinstance(item, bytes) else item
            if not text.endswith("\n"):
                text += "\n"
            pending.append(text)
            size += len(text)
            if size >= CHUNK_SIZE:
                yield "".join(pending)
                pending, size = [], 0
        if pending:
            yield "".join(pending)


def iter_input(data: Iterable[str] | Iterable[bytes] | Any) -> Input:
    """Wrap ``data`` (file object or iterable of lines)."""
    return data if isinstance(data, Input) else Input(data)
