"""Stream the elements of one top-level array of a huge JSON document.

``sacct --json`` prints ``{"meta": ..., "errors": [...], "jobs": [...]}``: about
6 KB per job, 600 MB for 100,000 jobs. Loading that whole is out of the
question, and a single bad job must not lose the others. :class:`ArrayStream`
reads text chunks into a sliding buffer and decodes one array element at a
time with :meth:`json.JSONDecoder.raw_decode` (the C decoder), so memory stays
at one chunk plus one element.

Grammar it expects::

    document := "{" (key ":" value ("," key ":" value)*)? "}"
    value of the array key := "[" (element ("," element)*)? "]"

An element that does not decode is reported as a :class:`BadElement` and the
stream resynchronizes on the next ``, {`` that starts an element the caller
recognizes (``is_element``). Other top-level keys are kept in ``other``.

Nesting is bounded (:data:`MAX_DEPTH`): an element nested deeper is a
:class:`BadElement` too, skipped whole. One too deep for the decoder itself (a
``RecursionError`` in C, near 1,000 levels) is skipped by counting its brackets,
in linear time, so the good elements around it are kept; a top-level value
nested too deep makes the document unusable (a clear :class:`JsonStreamError`).
A byte-order mark is dropped before the text gets here (``_input.Input``).
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

_WS = re.compile(r"[ \t\n\r]*")
_NEXT_ELEMENT = re.compile(r",[ \t\n\r]*\{")
#: A decode error this close to the end of the buffer may just need more text.
_NEAR_END = 64
#: One element larger than this is treated as corrupt (memory bound).
MAX_ELEMENT_CHARS = 64 << 20
#: Deepest nesting of a value (Slurm's documents nest under 10 levels; MongoDB
#: refuses documents nested past 100, and Python's decoder fails near 1,000).
MAX_DEPTH = 64


class JsonStreamError(ValueError):
    """The document itself is unusable (not an object, truncated, ...)."""

    def __init__(self, reason: str, line_no: int, text: str) -> None:
        super().__init__(reason)
        self.reason = reason
        self.line_no = line_no
        self.text = text


@dataclass(slots=True)
class BadElement:
    """An array element that could not be decoded."""

    reason: str
    text: str


class _Incomplete(Exception):
    pass


class _TooDeep(ValueError):
    """A value nested too deeply for the (recursive) decoder."""


#: What matters when skipping a value undecoded: strings (brackets inside them do
#: not count), brackets, and a lone quote (a string cut at the end of the buffer).
_SKIP_TOKEN = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"|[\[\]{}]|"')


def too_deep(value: Any, depth: int = MAX_DEPTH) -> bool:
    """Whether ``value`` nests lists/objects more than ``depth`` levels (a scalar is 0).

    The recursion is bounded by ``depth``, whatever the value.
    """
    return _deeper((value,), depth)


def _deeper(children: Any, budget: int) -> bool:
    """Whether a child is a container nested more than ``budget`` levels."""
    for child in children:
        kind = type(child)
        if kind is dict:
            if budget == 0 or _deeper(child.values(), budget - 1):
                return True
        elif kind is list and (budget == 0 or _deeper(child, budget - 1)):
            return True
    return False


class ArrayStream:
    """Iterate ``(index, line_no, element_or_BadElement)`` of the array under ``key``."""

    def __init__(
        self,
        chunks: Iterator[str],
        key: str,
        *,
        is_element: Callable[[Any], bool] = lambda obj: isinstance(obj, dict),
        max_element_chars: int = MAX_ELEMENT_CHARS,
        max_depth: int = MAX_DEPTH,
    ) -> None:
        self._chunks = chunks
        self.key = key
        self.is_element = is_element
        self.max_element_chars = max_element_chars
        self.max_depth = max_depth
        self.other: dict[str, Any] = {}
        self.found = False
        self._buf = ""
        self._pos = 0
        self._line = 1
        self._eof = False
        self._mark: int | None = None  # a position a fill must keep
        self._decoder = json.JSONDecoder()

    # ------------------------------------------------------------------ buffer

    def _fill(self) -> bool:
        """Append the next chunk; False at the end of the input."""
        if self._eof:
            return False
        for chunk in self._chunks:
            if chunk:
                cut = self._pos if self._mark is None else min(self._pos, self._mark)
                self._buf = self._buf[cut:] + chunk
                self._pos -= cut
                if self._mark is not None:
                    self._mark -= cut
                return True
        self._eof = True
        return False

    def _advance(self, to: int) -> None:
        self._line += self._buf.count("\n", self._pos, to)
        self._pos = to

    def _skip_ws(self) -> bool:
        """Move to the next non-blank character; False at the end of the input."""
        while True:
            end = _WS.match(self._buf, self._pos).end()  # type: ignore[union-attr]
            self._advance(end)
            if self._pos < len(self._buf):
                return True
            if not self._fill():
                return False

    def _decode(self) -> Any:
        """Decode the value at the cursor and move past it; ValueError when it is bad."""
        while True:
            buf, start = self._buf, self._pos
            try:
                value, end = self._decoder.raw_decode(buf, start)
            except RecursionError:
                raise _TooDeep(
                    f"nested deeper than {self.max_depth} levels (too deep to decode)"
                ) from None
            except json.JSONDecodeError as exc:
                near_end = exc.pos >= len(buf) - _NEAR_END or exc.msg.startswith("Unterminated")
                if near_end and not self._eof:
                    if len(buf) - start > self.max_element_chars:
                        raise ValueError(
                            f"element larger than {self.max_element_chars} characters"
                        ) from None
                    self._fill()
                    continue
                raise ValueError(f"bad JSON: {exc.msg} (char {exc.pos - start})") from None
            if end >= len(buf) and not self._eof and self._fill():
                continue  # a number cut at the end of a chunk: decode again with more
            self._advance(end)
            return value

    def _peek(self) -> str:
        return self._buf[self._pos] if self._pos < len(self._buf) else ""

    def _fail(self, reason: str) -> JsonStreamError:
        return JsonStreamError(reason, self._line, self._buf[self._pos : self._pos + 200])

    # ------------------------------------------------------------------ document

    def __iter__(self) -> Iterator[tuple[int, int, Any]]:
        if not self._skip_ws() or self._peek() != "{":
            raise self._fail("not a JSON object")
        self._advance(self._pos + 1)
        while True:
            if not self._skip_ws():
                raise self._fail("truncated JSON document (no closing '}')")
            ch = self._peek()
            if ch == "}":
                self._advance(self._pos + 1)
                return
            if ch == ",":
                self._advance(self._pos + 1)
                continue
            try:
                key = self._decode()
            except ValueError as exc:
                raise self._fail(f"bad top-level key: {exc}") from None
            if not isinstance(key, str) or not self._skip_ws() or self._peek() != ":":
                raise self._fail("expected a top-level key and ':'")
            self._advance(self._pos + 1)
            if not self._skip_ws():
                raise self._fail("truncated JSON document")
            if key == self.key and self._peek() == "[":
                self.found = True
                self._advance(self._pos + 1)
                yield from self._elements()
            else:
                line, head = self._line, self._buf[self._pos : self._pos + 200]
                try:
                    value = self._decode()
                except ValueError as exc:
                    raise self._fail(f"bad value of {key!r}: {exc}") from None
                if too_deep(value, self.max_depth):
                    reason = f"bad value of {key!r}: nested deeper than {self.max_depth} levels"
                    raise JsonStreamError(reason, line, head)
                self.other[key] = value

    def _elements(self) -> Iterator[tuple[int, int, Any]]:
        index = 0
        if not self._skip_ws():
            raise self._fail(f"truncated {self.key!r} array")
        if self._peek() == "]":
            self._advance(self._pos + 1)
            return
        while True:
            if not self._skip_ws():
                raise self._fail(f"truncated {self.key!r} array (no closing ']')")
            line = self._line
            head = self._buf[self._pos : self._pos + 200]
            try:
                element = self._decode()
                if too_deep(element, self.max_depth):
                    # decoded: the cursor is already past it, nothing to resynchronize
                    element = BadElement(f"nested deeper than {self.max_depth} levels", head)
            except ValueError as exc:
                # the cursor is still on the element's first character; one too
                # deep to decode is skipped whole when its brackets balance
                if not (isinstance(exc, _TooDeep) and self._skip_value()):
                    yield index, line, BadElement(str(exc), head)
                    index += 1
                    if not self._resync(self._pos + 1):
                        return
                    continue
                element = BadElement(str(exc), head)
            yield index, line, element
            index += 1
            if not self._skip_ws():
                raise self._fail(f"truncated {self.key!r} array (no closing ']')")
            ch = self._peek()
            if ch == ",":
                self._advance(self._pos + 1)
            elif ch == "]":
                self._advance(self._pos + 1)
                return
            else:
                yield index, self._line, BadElement(
                    "expected ',' or ']' after an element", self._buf[self._pos : self._pos + 200]
                )
                index += 1
                if not self._resync(self._pos):
                    return

    def _skip_value(self) -> bool:
        """Move past the object or array at the cursor by counting brackets, without
        decoding it (no recursion, linear); False when it does not end in bounds."""
        scan = self._pos
        depth = 0
        while True:
            for match in _SKIP_TOKEN.finditer(self._buf, scan):
                lexeme = match.group()
                if lexeme in "[{":
                    depth += 1
                elif lexeme in "]}":
                    depth -= 1
                    if depth == 0:
                        self._advance(match.end())
                        return True
                elif lexeme == '"':  # a string cut by the end of the buffer
                    scan = match.start()
                    break
                scan = match.end()
            else:
                scan = len(self._buf)
            if len(self._buf) - self._pos > self.max_element_chars:
                return False
            pos = self._pos
            if not self._fill():
                return False
            scan -= pos - self._pos  # the fill dropped what was before the cursor

    def _resync(self, search_from: int) -> bool:
        """Move to the next ``{`` that starts a recognizable element; False if none."""
        self._advance(max(self._pos, min(search_from, len(self._buf))))
        while True:
            match = _NEXT_ELEMENT.search(self._buf, self._pos)
            if match is None:
                self._advance(max(self._pos, len(self._buf) - _NEAR_END))
                if not self._fill():
                    self._advance(len(self._buf))
                    return False
                continue
            self._advance(match.end() - 1)
            self._mark = self._pos
            try:
                try:
                    candidate = self._decode()
                except ValueError:
                    self._advance(min(self._pos + 1, len(self._buf)))
                    continue
                if self.is_element(candidate) and self._skip_ws() and self._peek() in (",", "]"):
                    # rewind to the element's start; the caller decodes it again
                    self._line -= self._buf.count("\n", self._mark, self._pos)
                    self._pos = self._mark
                    return True
            finally:
                self._mark = None
