"""The Redis limiter holds a token by the client's ``attempt_timeout`` (issue 17, item 2).

The token of an attempt is first recorded in Redis as back at acquire +
``attempt_timeout`` + W (so a process that dies mid-send frees it), then at settle +
W.  Before, the client guessed the bound as 4 x ``timeout`` and a dripping server
outlasted it: another process got the token while the first attempt was still
running.  Now the bound is the very deadline that cuts the attempt.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest

from tests.support.faults import EdgeServer
from tests.support.redis_server import RedisServer, redis_server
from vortext_async import (
    RateLimit,
    RedisRateLimiter,
    RequestTimeoutError,
    UncertainSendError,
    VortextClient,
    WaitBudgetExceededError,
)

redis_asyncio = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.redis

PHONE = "+33611272727"
ATTEMPT_US = 250_000  # attempt_timeout=0.25 s, in Redis microseconds
W_US = 5_000_000  # the window: 1 send per 5 s
GUARD = 10.0  # seconds: only against a hang


@pytest.fixture(scope="module")
def redis() -> Iterator[RedisServer]:
    with redis_server() as started:
        yield started


async def _server_time(probe: Any) -> int:
    seconds, micros = await probe.time()
    return int(seconds) * 1_000_000 + int(micros)


async def _tokens(probe: Any) -> list[tuple[str, float]]:
    [key] = await probe.keys("vortext:*:w:*")
    tokens: list[tuple[str, float]] = await probe.zrange(key, 0, -1, withscores=True)
    return tokens


async def test_a_token_is_held_by_attempt_timeout_and_back_w_after_the_cut_attempt(
    redis: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    # max_wait=0 below gets one round trip's grace (50 ms) to hear Redis refuse: on a
    # loaded machine, connecting and loading the scripts may take longer.  What is
    # checked is Redis's answer, so the round trip gets room (a hang guard only).
    monkeypatch.setattr("vortext_async._redis_limiter._ROUND_TRIP_GRACE", GUARD)
    probe = redis_asyncio.Redis.from_url(redis.url, decode_responses=True)
    await probe.flushall()
    limit = RateLimit(windows=[(1, W_US / 1e6)])
    shared = RedisRateLimiter(limit, redis.url, account="acme")
    other_process = RedisRateLimiter(limit, redis.url, account="acme")
    try:
        with EdgeServer() as server:
            async with VortextClient(
                "acme",
                "secret",
                base_url=server.url_for("drip-20"),
                timeout=1.0,  # per phase: never tripped by the drip
                attempt_timeout=ATTEMPT_US / 1e6,
                rate_limit=shared,
            ) as client:
                asked_at = await _server_time(probe)
                send = asyncio.ensure_future(client.send_sms(PHONE, "drip"))
                await asyncio.to_thread(server.run, server.wait_requests(1))
                seen_at = await _server_time(probe)

                # In flight: recorded as back at acquire + attempt_timeout + W (the
                # acquire happened between asked_at and seen_at, in Redis time).
                [(member, provisional)] = await _tokens(probe)
                assert member.startswith("p:")
                assert asked_at + ATTEMPT_US + W_US <= provisional <= seen_at + ATTEMPT_US + W_US

                with pytest.raises(UncertainSendError) as caught:
                    await asyncio.wait_for(send, GUARD)
                assert isinstance(caught.value.cause, RequestTimeoutError)
                # Right after the cut, another process cannot have the token.
                with pytest.raises(WaitBudgetExceededError):
                    async with other_process.acquire(max_wait=0):
                        pass
            await shared.aclose()  # flushes the settle

        # Settled: back W after the attempt ended, which was at least attempt_timeout
        # after the acquire: never before the settle rule allows.
        [(member, back)] = await _tokens(probe)
        assert member.startswith("s:")
        assert asked_at + ATTEMPT_US + W_US <= back
    finally:
        await other_process.aclose()
        await shared.aclose()
        await probe.aclose()
