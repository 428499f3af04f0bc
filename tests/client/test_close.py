"""Closing the client stops every call that has not gone out, at once, and says so.

Against the fault server on loopback, in virtual time that never moves by itself
(``VirtualClock(autojump=False)``): a call sleeping 30 s before its retry stays asleep
unless ``aclose()`` stops it, so each test sees the close, not the clock, end it.
``aclose()`` returns once every call it stopped has raised, so "stopped at once" is
checked as ``sending.done()`` right after it returns, with no timing involved.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Any

import pytest

from tests.support.faults import Fault, FaultServer, Received, refused_url
from vortext_async import (
    ClientClosedError,
    ConnectError,
    RateLimit,
    RetryEvent,
    RetryPolicy,
    SentSms,
    ServerError,
    UncertainSendError,
    VortextClient,
)
from vortext_async.testing import VirtualClock

PHONE = "+33611272727"
LONG = 30.0  # seconds of backoff before the next attempt: never reached in these tests
BUSY = Fault.answer(503, headers={"Retry-After": str(int(LONG))})  # not processed: resend


class Retrying:
    """A client on ``server`` whose retries wait ``LONG`` seconds of frozen virtual time."""

    def __init__(
        self,
        server: FaultServer,
        http_library: str,
        base_url: str | None = None,
        rate_limit: RateLimit | None = None,
        **policy: Any,
    ) -> None:
        self.clock = VirtualClock(autojump=False)
        self.retries: asyncio.Queue[RetryEvent] = asyncio.Queue()  # one per retry ahead
        self.client = VortextClient(
            "user",
            "pw",
            base_url=base_url if base_url is not None else server.url,
            clock=self.clock,
            retry=RetryPolicy(initial_wait=LONG, max_wait=LONG, jitter=0, **policy),
            on_retry=self.on_retry,
            rate_limit=rate_limit,
            http_library=http_library,  # type: ignore[arg-type]
        )

    def on_retry(self, event: RetryEvent) -> None:
        # Called right before the wait starts, in the same step: once the test has
        # the event, the call is asleep.
        self.retries.put_nowait(event)


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer() as running:
        yield running


async def _asleep(h: Retrying) -> None:
    """Until the call's backoff sleep is registered on the virtual clock.

    ``on_retry`` fires just before the wait starts; the sleep itself may take another
    event-loop step (Python 3.12's ``wait_for`` takes fewer steps than 3.11's), and
    advancing the clock before it registers would skip it.
    """

    due = h.clock.now_ns() + round(LONG * 1e9)

    def backoff_asleep() -> bool:  # a pending sleep ending LONG from now (the limiter's differ)
        return any(end == due and not f.done() for end, _, f in h.clock._sleepers)

    async def registered() -> None:
        while not backoff_asleep():
            await asyncio.sleep(0)

    await asyncio.wait_for(registered(), 5)  # a guard against a hang, not a timing


async def _stopped_by_close(h: Retrying, call: asyncio.Task[Any], retries: int = 1) -> Any:
    """Let ``call`` make its first ``retries`` attempts, close the client while it
    sleeps before the next, and return its error."""
    try:
        for retry in range(1, retries + 1):
            # A guard against a hang, not a timing:
            event = await asyncio.wait_for(h.retries.get(), 5)
            assert (event.attempt, event.wait) == (retry, LONG)
            if retry < retries:
                await _asleep(h)
                h.clock.advance(LONG)  # let this retry happen
        await h.client.aclose()
        assert call.done(), "aclose() returned while the call still slept before its retry"
        assert h.clock.time() == LONG * (retries - 1)  # stopped by the close, not by time
        return call.exception()
    finally:
        call.cancel()
        await asyncio.wait([call])
        await h.client.aclose()


async def test_a_send_waiting_to_retry_after_a_503_is_stopped_by_close_as_not_sent(
    server: FaultServer, http_library: str
) -> None:
    server.script(BUSY)
    h = Retrying(server, http_library)
    sending = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    error = await _stopped_by_close(h, sending)
    assert isinstance(error, ClientClosedError)
    assert "not sent" in str(error)
    assert error.certainly_not_sent
    assert isinstance(error.__cause__, ServerError)
    assert error.__cause__.status_code == 503
    assert error.attempts == 1
    assert len(server.requests) == 1


async def test_a_send_waiting_to_retry_after_a_refused_connection_is_not_sent(
    http_library: str,
) -> None:
    with refused_url() as url:
        h = Retrying(FaultServer(), http_library, base_url=url)
        sending = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
        error = await _stopped_by_close(h, sending)
    assert isinstance(error, ClientClosedError)
    assert error.certainly_not_sent
    assert isinstance(error.__cause__, ConnectError)


@pytest.mark.parametrize(
    "script",
    [[Fault.reset()], [Fault.reset(), BUSY]],
    ids=["reset after read", "reset after read, then 503"],
)
async def test_a_send_waiting_to_retry_after_an_uncertain_attempt_ends_uncertain(
    server: FaultServer, http_library: str, script: list[Fault]
) -> None:
    # Resending uncertain sends is the caller's opt-in (at-least-once); once an attempt
    # may have been accepted, a close can no longer say "not sent", whatever came after.
    server.script(*script)
    h = Retrying(server, http_library, retry_uncertain_sends=True)
    sending = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    error = await _stopped_by_close(h, sending, retries=len(script))
    assert isinstance(error, UncertainSendError)
    assert not error.certainly_not_sent
    assert error.sms.message == "hello"  # type: ignore[attr-defined]
    assert isinstance(error.cause, ClientClosedError)
    assert "attempt 1 may have been accepted" in str(error)
    assert error.attempts == len(script)
    assert len(server.requests) == len(script)
    assert server.processed_for("hello") == 1


async def test_a_resend_waiting_for_its_token_after_an_uncertain_attempt_ends_uncertain(
    server: FaultServer, http_library: str
) -> None:
    # The close stops a resend still waiting for a token as "not sent"; but the
    # attempt before it may have been accepted, and that decides the outcome.
    server.script(Fault.reset())
    h = Retrying(
        server,
        http_library,
        rate_limit=RateLimit(windows=[(1, 3600.0)]),
        retry_uncertain_sends=True,
    )
    sending = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    try:
        await asyncio.wait_for(h.retries.get(), 5)  # a guard against a hang, not a timing
        await _asleep(h)
        h.clock.advance(LONG)  # the resend now waits for the hour's only token, long gone

        async def queued() -> None:
            while h.client.limiter.state().queued == 0:
                await asyncio.sleep(0)

        await asyncio.wait_for(queued(), 5)
        await h.client.aclose()
        with pytest.raises(UncertainSendError, match="attempt 1 may have been accepted"):
            await sending
    finally:
        sending.cancel()
        await h.client.aclose()
    assert len(server.requests) == 1


async def test_a_read_waiting_to_retry_is_stopped_by_close(
    server: FaultServer, http_library: str
) -> None:
    server.script(BUSY)
    h = Retrying(server, http_library)
    reading = asyncio.create_task(h.client.status())
    error = await _stopped_by_close(h, reading)
    assert isinstance(error, ClientClosedError)
    assert isinstance(error.__cause__, ServerError)
    assert len(server.requests) == 1


class GatedServer(FaultServer):
    """Holds each request, once read, until ``release`` is set."""

    def __init__(self) -> None:
        super().__init__()
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def respond(self, received: Received) -> Fault:
        self.arrived.set()
        await self.release.wait()
        return await super().respond(received)


async def test_concurrent_acloses_all_return_only_once_sends_in_flight_settled(
    http_library: str,
) -> None:
    async with GatedServer() as server:
        client = VortextClient(
            "user",
            "pw",
            base_url=server.url,
            http_library=http_library,  # type: ignore[arg-type]
        )
        sending = asyncio.create_task(client.send_sms(PHONE, "in flight"))
        await asyncio.wait_for(server.arrived.wait(), 5)

        async def close() -> tuple[bool, bool]:
            await client.aclose(grace=3600)
            return sending.done(), client.http_client.is_closed

        closes = [asyncio.create_task(close()) for _ in range(3)]
        try:
            for _ in range(5):
                await asyncio.sleep(0)
            assert [c.done() for c in closes] == [False] * 3, "an aclose() did not wait"
            assert client.closed
        finally:
            server.release.set()
        assert await asyncio.gather(*closes) == [(True, True)] * 3
        assert isinstance(sending.result(), SentSms)
        await client.aclose()  # after the close: returns at once


async def test_a_cancelled_aclose_does_not_cut_the_close_others_wait_for(
    http_library: str,
) -> None:
    async with GatedServer() as server:
        client = VortextClient(
            "user",
            "pw",
            base_url=server.url,
            http_library=http_library,  # type: ignore[arg-type]
        )
        sending = asyncio.create_task(client.send_sms(PHONE, "in flight"))
        await asyncio.wait_for(server.arrived.wait(), 5)
        impatient = asyncio.create_task(client.aclose(grace=3600))
        patient = asyncio.create_task(client.aclose())
        await asyncio.sleep(0)
        impatient.cancel()
        with pytest.raises(asyncio.CancelledError):
            await impatient
        server.release.set()
        await patient
        assert isinstance(sending.result(), SentSms)
        assert client.http_client.is_closed
