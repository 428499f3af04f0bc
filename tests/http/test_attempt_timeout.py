"""One attempt has one deadline, ``attempt_timeout``, on every transport (issue 17, item 2).

The phase timeouts (``timeout=``) bound each wait: a server that drips its answer a
byte at a time never trips them.  These tests use such a server on loopback and check
what the user gets (an uncertain send, a plain timeout on a read), that the answer
was cut before it was whole, and that the limiter saw the same bound.
"""

from __future__ import annotations

import asyncio
from contextlib import AbstractAsyncContextManager
from typing import Any

import pytest

from tests.support.faults import EdgeServer
from tests.support.transports import TRANSPORTS, open_client
from vortext_async import (
    DEFAULT_ATTEMPT_TIMEOUT,
    ConfigurationError,
    LimiterState,
    Permit,
    RateLimit,
    RateLimiter,
    RequestTimeoutError,
    RetryPolicy,
    UncertainSendError,
    VortextClient,
)
from vortext_async.testing import VirtualClock

PHONE = "+33611272727"
DRIP = "drip-20"  # one byte every 20 ms: each read is quick, the whole answer takes seconds
ATTEMPT = 0.25  # seconds: the whole attempt
W = 60.0  # the window's width, in the limiter's (virtual) seconds
GUARD = 10.0  # seconds: only against a hang, never reached when the code is right


class RecordingLimiter:
    """A :class:`~vortext_async.Limiter` that notes the ``attempt_timeout`` of each acquire."""

    def __init__(self, inner: RateLimiter) -> None:
        self.inner = inner
        self.bounds: list[float | None] = []

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        self.bounds.append(attempt_timeout)
        return self.inner.acquire(max_wait=max_wait, attempt_timeout=attempt_timeout)

    async def pause(self, seconds: float) -> None:
        await self.inner.pause(seconds)

    def state(self) -> LimiterState:
        return self.inner.state()

    def estimated_wait(self) -> float:
        return self.inner.estimated_wait()

    async def aclose(self) -> None:
        await self.inner.aclose()


# The whole answer dripped (the deadline holds before the headers), or its headers at
# once and its body dripped (it holds while the body is read, too).
@pytest.mark.parametrize("edge", [DRIP, "bodydrip-20"])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_dripping_answer_ends_the_send_at_attempt_timeout_as_uncertain(
    kind: str, edge: str
) -> None:
    clock = VirtualClock(autojump=False)  # moves only when the test says
    limiter = RecordingLimiter(RateLimiter(RateLimit(windows=[(1, W)]), clock=clock))
    with EdgeServer() as server:
        async with open_client(
            kind,
            server.url_for(edge),
            timeout=1.0,  # per phase: each dripped byte comes well within it
            attempt_timeout=ATTEMPT,
            rate_limit=limiter,
            clock=clock,
        ) as client:
            with pytest.raises(UncertainSendError) as caught:
                await asyncio.wait_for(client.send_sms(PHONE, "drip"), GUARD)

            # What the user gets: uncertain (the server read the request), and why.
            cause = caught.value.cause
            assert isinstance(cause, RequestTimeoutError)
            assert cause.request_sent
            assert f"attempt_timeout={ATTEMPT:g} s" in str(cause)
            assert caught.value.attempts == 1  # never resent
            server.run(server.wait_answered(1))
            [sent] = server.sends()
            assert sent.written is not None
            assert sent.answer_size is not None
            assert 0 < sent.written < sent.answer_size  # cut before it was whole

            # The limiter was told the very bound that cut the attempt, and its token
            # comes back W after the attempt settled (here, at virtual time 0), not before.
            assert limiter.bounds == [ATTEMPT]
            state = limiter.state()
            assert (state.in_flight, state.windows[0].tokens_left) == (0, 0)
            clock.advance(W - 1e-6)
            assert limiter.state().windows[0].tokens_left == 0
            clock.advance(1e-6)
            assert limiter.state().windows[0].tokens_left == 1


@pytest.mark.parametrize("kind", ["httpcore", "aiohttp"])
async def test_a_dripping_answer_to_a_read_is_a_plain_timeout(kind: str) -> None:
    with EdgeServer() as server:
        async with open_client(
            kind, server.url_for(DRIP), timeout=1.0, attempt_timeout=ATTEMPT
        ) as client:
            with pytest.raises(RequestTimeoutError) as caught:
                await asyncio.wait_for(client.status(retry=RetryPolicy.no_retries()), GUARD)
    assert f"attempt_timeout={ATTEMPT:g} s" in str(caught.value)


async def test_the_limiter_gets_the_client_attempt_timeout_default_included() -> None:
    with EdgeServer() as server:
        default = RecordingLimiter(RateLimiter(RateLimit()))
        async with VortextClient(
            "acme", "secret", base_url=server.url_for("ok"), rate_limit=default
        ) as client:
            await client.send_sms(PHONE, "one")
        chosen = RecordingLimiter(RateLimiter(RateLimit()))
        async with VortextClient(
            "acme", "secret", base_url=server.url_for("ok"), rate_limit=chosen, attempt_timeout=7
        ) as client:
            await client.send_sms(PHONE, "two")
    assert default.bounds == [DEFAULT_ATTEMPT_TIMEOUT] == [60.0]
    assert client.attempt_timeout == 7.0
    assert chosen.bounds == [7.0]


@pytest.mark.parametrize("bad", [0, -1, float("inf"), float("nan"), None, True, "60"])
def test_attempt_timeout_must_be_a_finite_positive_number(bad: Any) -> None:
    with pytest.raises(ConfigurationError, match="attempt_timeout"):
        VortextClient("acme", "secret", attempt_timeout=bad)
