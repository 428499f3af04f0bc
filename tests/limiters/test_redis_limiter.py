"""The Redis-shared limiter against a real redis-server (started on a free port).

Windows here are a fraction of a second, so the real waits stay short; the
assertions are on order and on instants measured by Redis, never on how long
the machine took.
"""

from __future__ import annotations

import asyncio
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.support.redis_server import RedisServer, free_port, redis_server
from vortext_async import (
    LimiterUnavailableError,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    WaitBudgetExceededError,
)

redis_asyncio = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.redis

NS = 1_000_000_000


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as started:
        yield started


@pytest.fixture
async def probe(server: RedisServer) -> AsyncIterator[Any]:
    """A plain redis client to look at the keys from outside, flushed first."""
    client = redis_asyncio.Redis.from_url(server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


def limiter_for(
    server: RedisServer, *windows: tuple[int, float], **kwargs: Any
) -> RedisRateLimiter:
    return RedisRateLimiter(RateLimit(windows=windows), server.url, account="acme", **kwargs)


async def server_time(probe: Any) -> int:
    seconds, micros = await probe.time()
    return int(seconds) * 1_000_000 + int(micros)


async def test_token_is_provisional_then_back_w_after_settle(
    probe: Any, server: RedisServer
) -> None:
    limiter = limiter_for(server, (2, 5.0))
    asked = time.monotonic_ns()
    asked_at = await server_time(probe)
    async with limiter.acquire(attempt_timeout=30.0):
        # The settle instant is known in Redis time up to how long the acquire took.
        slack = (time.monotonic_ns() - asked) // 1000 + 1
        before = await server_time(probe)
        [(member, score)] = await probe.zrange("vortext:{acme}:w:2:5000000", 0, -1, withscores=True)
        assert member.startswith("p:")
        # acquire + attempt_timeout + W
        assert asked_at + 35_000_000 <= score <= before + 35_000_000
        assert 0 < await probe.pttl("vortext:{acme}:w:2:5000000") <= 36_000
    after = await server_time(probe)
    await limiter.aclose()  # flushes the pending settle
    [(member, score)] = await probe.zrange("vortext:{acme}:w:2:5000000", 0, -1, withscores=True)
    assert member.startswith("s:")
    assert before + 5_000_000 <= score <= after + 5_000_000 + slack  # settle + W, Redis time


async def test_waits_exactly_for_the_settled_token_and_keeps_local_fifo(
    probe: Any, server: RedisServer
) -> None:
    limiter = limiter_for(server, (2, 0.3))
    order: list[int] = []
    settled: list[int] = []
    granted: list[int] = []

    async def one(i: int) -> None:
        async with limiter.acquire():
            order.append(i)
            granted.append(time.monotonic_ns())
        settled.append(time.monotonic_ns())

    await asyncio.gather(*(one(i) for i in range(6)))
    await limiter.aclose()
    assert order == list(range(6))
    for k in range(2, 6):  # never before W after the settle of the send two before
        assert granted[k] >= settled[k - 2] + 0.3 * NS - 1_000_000  # Redis TIME is in us


async def test_all_windows_or_nothing_and_max_wait_takes_nothing(
    probe: Any, server: RedisServer
) -> None:
    """The `limits` flaw: windows checked one by one spend tokens of some."""
    limiter = limiter_for(server, (1, 10.0), (5, 60.0))
    async with limiter.acquire():
        pass
    with pytest.raises(WaitBudgetExceededError) as caught:
        async with limiter.acquire(max_wait=1.0):
            pass
    assert 9.0 < caught.value.expected_wait < 11.0  # the token is back 10 s after it settled
    assert await probe.zcard("vortext:{acme}:w:5:60000000") == 1
    assert limiter.state().windows[1].tokens_left == 4
    await limiter.aclose()


async def test_a_process_that_dies_mid_send_frees_its_token_late_but_surely(
    probe: Any, server: RedisServer
) -> None:
    dead = limiter_for(server, (1, 0.2))
    context = dead.acquire(attempt_timeout=0.3)
    await context.__aenter__()  # and never settles: the process "died"
    await dead._redis.aclose()
    [(_, score)] = await probe.zrange("vortext:{acme}:w:1:200000", 0, 0, withscores=True)
    acquired = int(score) - 300_000 - 200_000
    alive = limiter_for(server, (1, 0.2))
    async with alive.acquire():
        granted_at = await server_time(probe)
    await alive.aclose()
    assert granted_at >= acquired + 300_000 + 200_000


async def test_429_pause_is_shared_by_every_process(probe: Any, server: RedisServer) -> None:
    first = limiter_for(server, (100, 1.0))
    second = limiter_for(server, (100, 1.0))
    await first.pause(0.3)
    paused_at = await server_time(probe)
    async with second.acquire():
        granted_at = await server_time(probe)
    assert granted_at >= paused_at + 300_000 - 50_000  # pause was set a little before
    assert int(await probe.get("vortext:{acme}:pause")) <= granted_at
    await first.aclose()
    await second.aclose()


async def test_host_clocks_that_disagree_do_not_matter(probe: Any, server: RedisServer) -> None:
    class SkewedClock:
        def __init__(self, offset: float) -> None:
            self.offset = round(offset * NS)

        def now_ns(self) -> int:
            return time.monotonic_ns() + self.offset

        async def sleep(self, seconds: float) -> None:
            await asyncio.sleep(seconds)

    ahead = limiter_for(server, (2, 0.3), clock=SkewedClock(3600))
    behind = limiter_for(server, (2, 0.3), clock=SkewedClock(-3600))
    grants: list[int] = []

    async def one(limiter: RedisRateLimiter) -> None:
        async with limiter.acquire():
            grants.append(await server_time(probe))

    await asyncio.gather(*(one(limiter) for limiter in (ahead, behind) * 3))
    await ahead.aclose()
    await behind.aclose()
    grants.sort()
    for k in range(2, 6):  # two per 0.3 s, in Redis time
        assert grants[k] - grants[k - 2] >= 300_000


async def test_only_the_head_local_waiter_talks_to_redis(server: RedisServer, probe: Any) -> None:
    calls: list[str] = []

    class Counting(RedisRateLimiter):
        async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
            calls.append(script)
            return await super()._call(script, keys, args)

    limiter = Counting(RateLimit(windows=((10, 0.2),)), server.url, account="acme")

    async def one() -> None:
        async with limiter.acquire():
            pass

    await asyncio.gather(*(one() for _ in range(50)))
    await limiter.aclose()
    # 50 grants in 5 rounds of 10: one call serves all local waiters it can, and
    # tells the exact wait for the rest; nobody else asks meanwhile.
    assert 5 <= calls.count("acquire") <= 10


async def test_redis_down_is_a_clear_error_without_the_password() -> None:
    url = f"redis://user:s3cret@127.0.0.1:{free_port()}/0"
    limiter = RedisRateLimiter(RateLimit(per_minute=10), url, account="acme", connect_timeout=1)
    with pytest.raises(LimiterUnavailableError) as caught:
        async with limiter.acquire():
            pass
    assert caught.value.url == f"redis://user:***@127.0.0.1:{url.split(':')[3]}"
    assert "s3cret" not in str(caught.value)
    assert "s3cret" not in repr(limiter)
    with pytest.raises(LimiterUnavailableError):
        await limiter.pause(1.0)
    await limiter.aclose()


async def test_redis_stopping_mid_use_falls_back_when_asked() -> None:
    with redis_server(password="hunter2") as own:
        fallback = RateLimiter(RateLimit(windows=((5, 1.0),)))
        limiter = RedisRateLimiter(
            RateLimit(windows=((5, 1.0),)), own.url, account="a", fallback=fallback
        )
        strict = RedisRateLimiter(RateLimit(windows=((5, 1.0),)), own.url, account="a")
        async with limiter.acquire(), strict.acquire():
            assert fallback.state().in_flight == 0  # Redis served these
        own.stop()
        async with limiter.acquire():
            assert fallback.state().in_flight == 1
        assert fallback.state().windows[0].tokens_left == 4
        with pytest.raises(LimiterUnavailableError, match=r"redis://:\*\*\*@127\.0\.0\.1"):
            async with strict.acquire():
                pass
        await limiter.aclose()
        await strict.aclose()


def test_the_password_of_a_redis_url_is_never_shown() -> None:
    for url in ("redis://:Hunter2pw@h:1/0", "redis://h:1/0?password=Hunter2pw&db=0"):
        limiter = RedisRateLimiter(RateLimit(per_minute=1), url, account="acme")
        assert "Hunter2pw" not in limiter.url + repr(limiter)
        assert "h:1" in limiter.url


async def test_several_processes_share_one_limit_checked_by_the_server(server: RedisServer) -> None:
    from tests.support.window_server import WindowServer

    windows = ((4, 0.5), (10, 1.5))
    worker = str(Path(__file__).parents[1] / "support" / "redis_server.py")
    spec = [f"{n}:{s}" for n, s in windows]
    async with WindowServer(windows, max_count_delay=0.03) as target:
        processes = [
            await asyncio.create_subprocess_exec(
                sys.executable,
                worker,
                "worker",
                server.url,
                target.url,
                "8",
                *spec,
                stdout=asyncio.subprocess.PIPE,
            )
            for _ in range(3)
        ]
        outputs = [await process.communicate() for process in processes]
    assert all(process.returncode == 0 for process in processes)
    counts = [tuple(map(int, out.split())) for out, _ in outputs]
    assert counts == [(8, 0)] * 3
    assert target.refused == 0
    assert len(target.counted) == 24


async def test_a_send_in_flight_longer_than_w_holds_its_token_until_it_settles(
    probe: Any, server: RedisServer
) -> None:
    limiter = limiter_for(server, (1, 0.1), in_flight_recheck=0.05)
    released = asyncio.Event()
    settled_at: list[int] = []

    async def slow() -> None:
        async with limiter.acquire(attempt_timeout=30.0):
            await released.wait()
        settled_at.append(await server_time(probe))

    asked = asyncio.Event()
    asks = 0

    class Watched(RedisRateLimiter):
        async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
            nonlocal asks
            answer = await super()._call(script, keys, args)
            asks += script == "acquire"
            if asks == 3:  # told to wait W (it is in flight), then once more
                asked.set()
            return answer

    first = asyncio.create_task(slow())
    while limiter.state().in_flight == 0:
        await asyncio.sleep(0)
    other = Watched(RateLimit(windows=((1, 0.1),)), server.url, account="acme")
    second = asyncio.create_task(other.acquire().__aenter__())
    await asked.wait()  # the first send is still in flight, longer than W
    assert not second.done()
    released.set()
    await first
    await limiter.aclose()
    await second
    granted_at = await server_time(probe)
    await other.aclose()
    assert granted_at >= settled_at[0] + 100_000 - 5_000  # back W after the settle
    assert asks <= 3 + 0.1 / 0.05 + 2  # re-asked every W (>= 50 ms) while in flight, no more


async def test_local_waiters_cancelled_or_out_of_budget_take_nothing(
    probe: Any, server: RedisServer
) -> None:
    limiter = limiter_for(server, (1, 0.3))
    async with limiter.acquire():
        pass
    patient = asyncio.create_task(limiter.acquire().__aenter__())
    doomed = asyncio.create_task(limiter.acquire().__aenter__())
    hurried = asyncio.create_task(limiter.acquire(max_wait=0.5).__aenter__())
    await asyncio.sleep(0)
    assert limiter.state().queued == 3
    doomed.cancel()
    # hurried is third in line: the second token is back 0.6 s later at the earliest.
    with pytest.raises(WaitBudgetExceededError):
        await hurried
    permit = await patient
    assert doomed.cancelled()
    assert await probe.zcard("vortext:{acme}:w:1:300000") == 1  # only patient's token
    permit.settle()
    await limiter.aclose()


async def test_no_windows_never_waits_but_the_shared_pause_holds(
    probe: Any, server: RedisServer
) -> None:
    limiter = RedisRateLimiter(RateLimit(), server.url, account="acme")
    async with limiter.acquire(), limiter.acquire(), limiter.acquire():
        assert limiter.state().in_flight == 3
    await limiter.pause(0.2)
    assert limiter.estimated_wait() == 0  # nobody waits yet
    paused_until = int(await probe.get("vortext:{acme}:pause"))
    async with limiter.acquire():
        assert await server_time(probe) >= paused_until
    await limiter.aclose()
