"""The error every parser raises (or collects) for a record it cannot read.

::

    ValueError
    └── SlurmParseError          a record (line, JSON element) that cannot be parsed
        ├── SacctParseError      sacct --parsable2 / --json
        ├── SqueueParseError     squeue --json
        └── NodeParseError       sinfo --json / sinfo -o / scontrol show node

Each carries where the record came from (``source``, ``line_no``), the
offending text (cut to 200 characters in the message) and the reason, so an
operator can find the line in the report.
"""

from __future__ import annotations


class SlurmParseError(ValueError):
    """A record that cannot be parsed; ``str(err)`` is ``file:line: reason: text``."""

    kind = "record"

    def __init__(
        self, reason: str, *, source: str = "<input>", line_no: int | None = None, text: str = ""
    ) -> None:
        self.reason = reason
        self.source = source
        self.line_no = line_no
        self.text = text
        super().__init__(self._message())

    def _message(self) -> str:
        where = self.source if self.line_no is None else f"{self.source}:{self.line_no}"
        snippet = self.text[:200]
        return f"{where}: {self.reason}: {snippet}" if snippet else f"{where}: {self.reason}"

    def __str__(self) -> str:
        return self._message()

    def __reduce__(self):  # keep pickling (multiprocessing) working with keyword arguments
        return (
            _rebuild,
            (type(self), self.reason, self.source, self.line_no, self.text),
        )


def _rebuild(cls, reason, source, line_no, text):  # type: ignore[no-untyped-def]
    return cls(reason, source=source, line_no=line_no, text=text)


class SacctParseError(SlurmParseError):
    """A bad sacct record (psv line or ``--json`` job)."""

    kind = "job"


class SqueueParseError(SlurmParseError):
    """A bad ``squeue --json`` job."""

    kind = "job"


class NodeParseError(SlurmParseError):
    """A bad node record (sinfo or scontrol)."""

    kind = "node"
