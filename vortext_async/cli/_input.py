"""Reading a bulk job's messages from a file, lazily, for ``vortext bulk``.

Two formats, both UTF-8:

- **CSV with a header row.**  Columns ``phone_number`` and ``message`` are required
  (``phoneNumber`` is accepted too); an optional ``key`` column is the message's own
  identifier (journal and report); every other column becomes a metadata entry,
  the column name as key and the cell as a string value (empty cells are left out).
- **JSON Lines**: one JSON object per line, ``{"phone_number": ..., "message": ...,
  "metadata": {...}, "key": ...}`` (``phoneNumber`` accepted; ``metadata`` and
  ``key`` optional; blank lines skipped; any other field is an error, to catch typos).

Records are read one at a time as the job asks for them, never all at once; a JSON
Lines record longer than :data:`MAX_JSONL_LINE_BYTES` is a bad record, skipped
without being read into memory whole.  A bad
record (undecodable bytes, wrong number of CSV fields, a missing phone number or
message, JSON that is not an object, metadata that is not an object) does not stop
the job: it is handed to ``on_bad_line`` as a FAILED :class:`SendResult` whose
error names the line, and reading goes on.  A record without a ``key`` gets
``"line N"`` (its first line's number) as its key, so a journal resumes correctly
when the same file is read again, even after a bad line was fixed in place.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import IO, Any, Final, Literal

from vortext_async import BadLineError, InputFormatError, Outcome, SendResult, Sms

__all__ = [
    "MAX_JSONL_LINE_BYTES",
    "BadLineError",
    "InputFormat",
    "InputFormatError",
    "count_records",
    "detect_format",
    "read_messages",
]

InputFormat = Literal["csv", "jsonl"]

_EXTENSIONS: Final[dict[str, InputFormat]] = {
    ".csv": "csv",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
}
_PHONE: Final = ("phone_number", "phoneNumber")
_JSON_FIELDS: Final = frozenset({*_PHONE, "message", "metadata", "key"})
_BOM: Final = "\ufeff"

MAX_JSONL_LINE_BYTES: Final = 1024 * 1024
"""The longest JSON Lines record read (1 MiB); a longer line is a bad record, skipped
in bounded memory.  A valid message and its metadata take far less (1,600
characters and 8 KiB by default)."""
_SKIP_CHUNK: Final = 64 * 1024


OnBadLine = Callable[[SendResult], object]


def detect_format(path: str, given: str | None) -> InputFormat:
    """The format named by ``given``, else guessed from the file's extension."""
    if given is not None:
        if given not in ("csv", "jsonl"):
            raise InputFormatError(f"format must be 'csv' or 'jsonl', not {given!r}")
        return "csv" if given == "csv" else "jsonl"
    found = _EXTENSIONS.get(Path(path).suffix.lower())
    if found is None:
        raise InputFormatError(
            f"cannot tell the format of {path!r} from its name: "
            "use a .csv or .jsonl file, or pass --format csv|jsonl"
        )
    return found


def read_messages(
    stream: IO[bytes],
    fmt: InputFormat,
    *,
    source: str,
    on_bad_line: OnBadLine,
) -> Iterator[Sms]:
    """The messages of ``stream`` (binary, read lazily), one :class:`Sms` per good record.

    Raises :class:`InputFormatError` before the first message for a file that cannot
    be read at all (CSV: no header, no ``phone_number`` or ``message`` column).
    """
    if fmt == "csv":
        return _read_csv(_Lines(stream), source, on_bad_line)
    return _read_jsonl(_Lines(stream, max_bytes=MAX_JSONL_LINE_BYTES), source, on_bad_line)


def count_records(stream: IO[bytes], fmt: InputFormat) -> int:
    """How many records ``stream`` holds (good or bad), for a progress bar's total."""
    if fmt == "jsonl":
        return _count_lines(stream)
    text = (raw.decode("utf-8", "replace") for raw in stream)
    rows = sum(1 for row in csv.reader(text) if row)
    return max(rows - 1, 0)


# -- lines -------------------------------------------------------------------------


def _count_lines(stream: IO[bytes]) -> int:
    """Lines that are not blank, read in chunks: a huge line is never held whole."""
    count = 0
    filled = False  # the current line has something besides whitespace
    while chunk := stream.read(_SKIP_CHUNK):
        *ended, rest = chunk.split(b"\n")
        for piece in ended:
            count += filled or bool(piece.strip())
            filled = False
        filled = filled or bool(rest.strip())
    return count + filled


class _Lines:
    """Decoded lines of a binary stream, with the numbers of the undecodable ones.

    With ``max_bytes``, a longer line is not read whole: its number goes to
    ``too_long``, it is yielded as an empty string, and the rest of it is skipped.
    """

    def __init__(self, stream: IO[bytes], *, max_bytes: int | None = None) -> None:
        self._stream = stream
        self._max_bytes = max_bytes
        self.number = 0
        self.undecodable: set[int] = set()
        self.too_long: set[int] = set()

    def _raw_lines(self) -> Iterator[bytes]:
        limit = self._max_bytes
        if limit is None:
            yield from self._stream
            return
        readline = self._stream.readline
        while raw := readline(limit + 1):
            if len(raw) > limit and not (len(raw) == limit + 1 and raw.endswith(b"\n")):
                while (rest := readline(_SKIP_CHUNK)) and not rest.endswith(b"\n"):
                    pass
                self.too_long.add(self.number + 1)
                raw = b""
            yield raw

    def __iter__(self) -> Iterator[str]:
        for raw in self._raw_lines():
            self.number += 1
            try:
                text = raw.decode("utf-8")
            except UnicodeDecodeError:
                self.undecodable.add(self.number)
                text = raw.decode("utf-8", "replace")
            if self.number == 1 and text.startswith(_BOM):
                text = text[1:]
            yield text

    def bad_between(self, first: int, last: int) -> int | None:
        """The first undecodable line in ``first..last`` (forgetting earlier ones)."""
        found = min((n for n in self.undecodable if first <= n <= last), default=None)
        self.undecodable = {n for n in self.undecodable if n > last}
        return found


# -- CSV ---------------------------------------------------------------------------


def _read_csv(lines: _Lines, source: str, on_bad_line: OnBadLine) -> Iterator[Sms]:
    reader = csv.reader(lines)
    try:
        header = next(reader)
    except StopIteration:
        raise InputFormatError(f"{source} is empty: the first line must be a header") from None
    except csv.Error as error:
        raise InputFormatError(f"{source}: cannot read the header: {error}") from None
    columns = _Columns(header, source)
    return _csv_rows(reader, lines, columns, source, on_bad_line)


class _Columns:
    """Where each known field is in a CSV header; the rest are metadata columns."""

    def __init__(self, header: list[str], source: str) -> None:
        names = [name.strip() for name in header]
        duplicates = sorted({name for name in names if names.count(name) > 1 and name})
        if duplicates:
            raise InputFormatError(f"{source}: duplicate column(s) in the header: {duplicates}")
        found = [name for name in _PHONE if name in names]
        if not found or "message" not in names:
            raise InputFormatError(
                f"{source}: the header must name the columns phone_number and message "
                f"(and optionally key and metadata columns); it has {names}"
            )
        if len(found) > 1:
            raise InputFormatError(f"{source}: give phone_number or phoneNumber, not both")
        self.width = len(names)
        self.phone = names.index(found[0])
        self.message = names.index("message")
        self.key = names.index("key") if "key" in names else None
        known = {self.phone, self.message, self.key}
        self.metadata = [(i, name) for i, name in enumerate(names) if i not in known and name]


def _csv_rows(
    reader: Iterable[list[str]],
    lines: _Lines,
    columns: _Columns,
    source: str,
    on_bad_line: OnBadLine,
) -> Iterator[Sms]:
    rows = iter(reader)
    while True:
        first = lines.number + 1
        try:
            row = next(rows)
        except StopIteration:
            return
        except csv.Error as error:
            _report(on_bad_line, source, first, f"not valid CSV: {error}")
            continue
        if not row or (len(row) == 1 and not row[0].strip()):
            continue  # a blank line
        bad = lines.bad_between(first, lines.number)
        if bad is not None:
            _report(on_bad_line, source, bad, "not valid UTF-8")
            continue
        if len(row) != columns.width:
            _report(
                on_bad_line,
                source,
                first,
                f"has {len(row)} fields, the header has {columns.width}",
                phone=_cell(row, columns.phone),
                message=_cell(row, columns.message),
            )
            continue
        phone = row[columns.phone].strip()
        message = row[columns.message]
        key = row[columns.key].strip() if columns.key is not None else ""
        problem = _missing(phone, message)
        if problem:
            _report(on_bad_line, source, first, problem, phone=phone, message=message, key=key)
            continue
        metadata = {name: row[i] for i, name in columns.metadata if row[i] != ""}
        yield Sms(phone, message, metadata=metadata or None, key=key or f"line {first}")


def _cell(row: list[str], index: int) -> str:
    return row[index] if index < len(row) else ""


# -- JSON Lines --------------------------------------------------------------------


def _read_jsonl(lines: _Lines, source: str, on_bad_line: OnBadLine) -> Iterator[Sms]:
    for text in lines:
        number = lines.number
        if number in lines.too_long:
            lines.too_long.discard(number)
            _report(
                on_bad_line,
                source,
                number,
                f"longer than {MAX_JSONL_LINE_BYTES:,} bytes: not read (a record is far smaller)",
            )
            continue
        if not text.strip():
            continue
        if lines.bad_between(number, number) is not None:
            _report(on_bad_line, source, number, "not valid UTF-8")
            continue
        try:
            record = json.loads(text)
        except ValueError as error:
            _report(on_bad_line, source, number, f"not valid JSON: {error}")
            continue
        sms_or_problem = _sms_of(record, number)
        if isinstance(sms_or_problem, Sms):
            yield sms_or_problem
        else:
            problem, fields = sms_or_problem
            _report(on_bad_line, source, number, problem, **fields)


def _sms_of(record: Any, number: int) -> Sms | tuple[str, dict[str, str]]:
    if not isinstance(record, dict):
        return f"expected a JSON object, got {type(record).__name__}", {}
    unknown = sorted(set(record) - _JSON_FIELDS)
    if unknown:
        return f"unknown field(s) {unknown}; expected phone_number, message, metadata, key", {}
    phones = [name for name in _PHONE if name in record]
    if len(phones) > 1:
        return "give phone_number or phoneNumber, not both", {}
    phone = record.get(phones[0]) if phones else None
    message = record.get("message")
    key = record.get("key")
    metadata = record.get("metadata")
    shown = {"phone": phone if isinstance(phone, str) else "", "message": ""}
    if phone is not None and not isinstance(phone, str):
        return "phone_number must be a string", shown
    if message is not None and not isinstance(message, str):
        return "message must be a string", shown
    shown["message"] = message or ""
    if key is not None and (isinstance(key, bool) or not isinstance(key, str | int)):
        return "key must be a string or an integer", shown
    key_text = "" if key is None else str(key)
    shown["key"] = key_text
    problem = _missing((phone or "").strip(), message or "")
    if problem:
        return problem, shown
    if metadata is not None and not isinstance(metadata, dict):
        return f"metadata must be a JSON object, got {type(metadata).__name__}", shown
    assert isinstance(phone, str)
    assert isinstance(message, str)
    return Sms(phone.strip(), message, metadata=metadata, key=key_text or f"line {number}")


# -- reporting ---------------------------------------------------------------------


def _missing(phone: str, message: str) -> str:
    if not phone:
        return "phone_number is missing or empty"
    if not message:
        return "message is missing or empty"
    return ""


def _report(
    on_bad_line: OnBadLine,
    source: str,
    line: int,
    reason: str,
    *,
    phone: str = "",
    message: str = "",
    key: str = "",
) -> None:
    sms = Sms(phone, message, key=key or f"line {line}")
    on_bad_line(SendResult(sms, Outcome.FAILED, error=BadLineError(source, line, reason)))
