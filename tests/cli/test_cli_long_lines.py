"""A huge JSON Lines record is a bad line, read in bounded memory, never one huge POST."""

from __future__ import annotations

import io
import re
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli.test_cli import PASSWORD, Served, invoke
from vortext_async import BadLineError, Outcome, SendResult
from vortext_async.cli._input import MAX_JSONL_LINE_BYTES, count_records, read_messages
from vortext_async.emulator import Emulator

HUGE = 32 * 1024 * 1024


def record(number: int) -> bytes:
    return b'{"phone_number": "+33611272727", "message": "Message %d"}\n' % number


def huge_record() -> bytes:
    return b'{"phone_number": "+33611272727", "message": "' + b"x" * HUGE + b'"}\n'


@pytest.fixture
def served() -> Iterator[Served]:
    with Served(Emulator(users={"alice": PASSWORD}, seed=1)) as running:
        yield running


def test_a_huge_line_is_one_bad_line_and_the_others_are_sent(
    served: Served, tmp_path: Path
) -> None:
    path = tmp_path / "in.jsonl"
    path.write_bytes(record(1) + huge_record() + record(3))
    result = invoke(served, "bulk", str(path))
    assert result.exit_code == 1, result.output
    assert re.search(r"line 2: longer than 1,048,576 bytes", result.stderr)
    assert served.emulator.stats.accepted == 2
    assert served.emulator.received_count("+33611272727", "Message 3") == 1


def test_reading_and_counting_a_huge_line_takes_bounded_memory() -> None:
    data = record(1) + huge_record() + b"  \n" + record(4)
    bad: list[SendResult] = []
    tracemalloc.start()
    try:
        messages = list(
            read_messages(io.BytesIO(data), "jsonl", source="in", on_bad_line=bad.append)
        )
        total = count_records(io.BytesIO(data), "jsonl")
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 4 * MAX_JSONL_LINE_BYTES
    assert [sms.message for sms in messages] == ["Message 1", "Message 4"]
    assert [sms.key for sms in messages] == ["line 1", "line 4"]
    (failed,) = bad
    assert failed.outcome is Outcome.FAILED
    assert isinstance(failed.error, BadLineError)
    assert failed.error.line == 2
    assert total == 3


def test_a_line_of_exactly_the_limit_is_read() -> None:
    head = b'{"phone_number": "+33611272727", "message": "'
    filler = MAX_JSONL_LINE_BYTES - len(head) - len(b'"}')
    line = head + b"x" * filler + b'"}'
    assert len(line) == MAX_JSONL_LINE_BYTES
    for data in (line + b"\n" + record(2), line):
        bad: list[SendResult] = []
        messages = list(
            read_messages(io.BytesIO(data), "jsonl", source="in", on_bad_line=bad.append)
        )
        assert bad == []
        assert len(messages[0].message) == filler
    bad = []
    list(read_messages(io.BytesIO(line + b" "), "jsonl", source="in", on_bad_line=bad.append))
    assert len(bad) == 1
