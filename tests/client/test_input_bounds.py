"""Input is bounded and checked before anything is sent, and the right field is blamed."""

from __future__ import annotations

import math
from typing import Any

import pytest

from tests.support.faults import FaultServer
from vortext_async import (
    MAX_MESSAGE_LENGTH,
    MAX_METADATA_DEPTH,
    MAX_METADATA_SIZE,
    ConfigurationError,
    InvalidRequestError,
    Outcome,
    RetryPolicy,
    Sms,
    VortextClient,
    send_bulk,
)

GOOD = "+33611272727"
ARABIC_INDIC = GOOD.translate({ord(d): ord(d) - ord("0") + 0x0660 for d in "0123456789"})
FULLWIDTH = GOOD.translate({ord(d): ord(d) - ord("0") + 0xFF10 for d in "0123456789"})


def nested(depth: int) -> dict[str, Any]:
    """An object whose objects nest ``depth`` levels in all (itself included)."""
    top: dict[str, Any] = {}
    inner = top
    for _ in range(depth - 1):
        inner["a"] = {}
        inner = inner["a"]
    return top


BAD: list[tuple[str, Sms, str, str]] = [
    ("1 MB message", Sms(GOOD, "x" * 1_000_000), "message", "over the limit of 1,600"),
    ("surrogate in the text", Sms(GOOD, "hi \ud800"), "message", "lone surrogate"),
    ("surrogate in the number", Sms("+33611\ud800272727", "hi"), "phone_number", "ASCII"),
    (
        "surrogate in a metadata value",
        Sms(GOOD, "hi", metadata={"x": "\udc00"}),
        "metadata.x",
        "lone surrogate",
    ),
    (
        "surrogate in a nested metadata key",
        Sms(GOOD, "hi", metadata={"order": {"lines": [1, 2, {"k\udc00": 1}]}}),
        "metadata.order.lines[2]",
        "has a key that is not valid Unicode",
    ),
    ("Arabic-Indic digits", Sms(ARABIC_INDIC, "hi"), "phone_number", "ASCII digits 0-9"),
    ("fullwidth digits", Sms(FULLWIDTH, "hi"), "phone_number", "ASCII digits 0-9"),
    ("metadata 10,000 deep", Sms(GOOD, "hi", metadata=nested(10_000)), "metadata", "deeper than 8"),
    ("metadata 9 deep", Sms(GOOD, "hi", metadata=nested(9)), "metadata", "deeper than 8"),
    ("a 5,000-digit int", Sms(GOOD, "hi", metadata={"n": 10**5000}), "metadata.n", "2**53"),
    ("2**53", Sms(GOOD, "hi", metadata={"n": 2**53}), "metadata.n", "2**53"),
    ("-(2**53)", Sms(GOOD, "hi", metadata={"n": [-(2**53)]}), "metadata.n[0]", "2**53"),
    ("NaN", Sms(GOOD, "hi", metadata={"f": math.nan}), "metadata.f", "not a finite number"),
    ("infinity", Sms(GOOD, "hi", metadata={"f": -math.inf}), "metadata.f", "not a finite number"),
    ("9 KB metadata", Sms(GOOD, "hi", metadata={"s": "x" * 9000}), "metadata", "8,192 bytes"),
    (
        "8 KiB of text that is more bytes encoded",
        Sms(GOOD, "hi", metadata={"s": "é" * 4100}),
        "metadata",
        "8,2",
    ),
    ("10 MB metadata", Sms(GOOD, "hi", metadata={"s": "x" * 10**7}), "metadata", "8,192 bytes"),
    (
        "a million keys",
        Sms(GOOD, "hi", metadata={str(i): i for i in range(10**6)}),
        "metadata",
        "8,192 bytes",
    ),
    ("ten million items", Sms(GOOD, "hi", metadata={"l": [0] * 10**7}), "metadata", "8,192 bytes"),
    ("a set", Sms(GOOD, "hi", metadata={"s": {1, 2}}), "metadata.s", "set, which JSON cannot"),
    (
        "an odd key",
        Sms(GOOD, "hi", metadata={"my key": [math.inf]}),
        "metadata['my key'][0]",
        "finite",
    ),
]


@pytest.fixture
async def server() -> Any:
    async with FaultServer() as running:
        yield running


def client_for(server: FaultServer, **options: Any) -> VortextClient:
    return VortextClient(
        "user", "pass", base_url=server.url, retry=RetryPolicy(attempts=1), **options
    )


@pytest.mark.parametrize(
    ("sms", "field", "reason"), [case[1:] for case in BAD], ids=[c[0] for c in BAD]
)
async def test_bad_input_is_refused_before_anything_is_sent_naming_the_field(
    server: FaultServer, sms: Sms, field: str, reason: str
) -> None:
    async with client_for(server) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.send(sms)
    error = caught.value
    assert isinstance(error, ValueError)
    assert error.field == field
    assert reason in error.reason
    assert len(str(error)) < 1_000  # a 1 MB value is not copied into the message
    assert error.certainly_not_sent
    assert server.requests == []


async def test_what_is_at_the_limits_goes_out(server: FaultServer) -> None:
    top = nested(MAX_METADATA_DEPTH)
    at_limits = [
        Sms(GOOD, "x" * MAX_MESSAGE_LENGTH),
        Sms(GOOD, "é ü 中文 🙂"),
        Sms(GOOD, "hi", metadata={"n": 2**53 - 1, "m": -(2**53 - 1), "f": 1.5, "b": True}),
        Sms(GOOD, "hi", metadata=top),
        Sms(GOOD, "hi", metadata={"s": "x" * (MAX_METADATA_SIZE - 8)}),  # {"s":"..."}: 8 bytes
    ]
    async with client_for(server) as client:
        for sms in at_limits:
            await client.send(sms)
    assert len(server.requests) == len(at_limits)
    assert len(server.requests[-1].body) > MAX_METADATA_SIZE


async def test_the_message_length_is_a_client_option(server: FaultServer) -> None:
    async with client_for(server, max_message_length=5_000) as client:
        await client.send_sms(GOOD, "x" * 5_000)
        with pytest.raises(InvalidRequestError, match="over the limit of 5,000"):
            await client.send_sms(GOOD, "x" * 5_001)
    assert len(server.requests) == 1
    for bad in (0, -1, 1.5, True, "1600"):
        with pytest.raises(ConfigurationError, match="max_message_length"):
            VortextClient("user", "pass", max_message_length=bad)  # type: ignore[arg-type]


async def test_strict_numbers_want_ascii_digits_too(server: FaultServer) -> None:
    async with client_for(server, strict_phone_numbers=True) as client:
        with pytest.raises(InvalidRequestError, match="ASCII digits") as caught:
            await client.send_sms(FULLWIDTH, "hi")
    assert caught.value.field == "phone_number"
    assert server.requests == []


async def test_a_bulk_job_reports_every_bad_message_failed_never_uncertain(
    server: FaultServer, tmp_path: Any
) -> None:
    good = Sms(GOOD, "fine", key="good")
    bad = [case[1] for case in BAD]
    keyed = [
        Sms(sms.phone_number, sms.message, metadata=sms.metadata, key=f"b{i}\udc80")
        for i, sms in enumerate(bad)
    ]
    for journal in (None, str(tmp_path / "journal.db")):
        server.requests.clear()
        async with client_for(server) as client:
            results = [r async for r in send_bulk(client, [*keyed, good], journal=journal)]
        outcomes = {result.sms.key: result for result in results}
        assert outcomes["good"].outcome is Outcome.SENT
        failed = [outcomes[sms.key] for sms in keyed]
        assert [r.outcome for r in failed] == [Outcome.FAILED] * len(bad), journal
        assert all(isinstance(r.error, InvalidRequestError) for r in failed)
        assert len(server.requests) == 1
