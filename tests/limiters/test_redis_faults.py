"""The Redis limiter when Redis misbehaves, against real redis-servers started here.

Each fault must reach every waiting send as ``LimiterUnavailableError`` (or the
fallback) and never hang: a replica answering READONLY, an ACL user refused with
NOPERM, OOM under ``maxmemory``, MOVED (a fake cluster node: a real cluster needs
three masters), a Redis stopped with SIGSTOP.  ``asyncio.timeout`` below only
turns a hang into a failure; the bounds asserted are the documented ones.
"""

from __future__ import annotations

import asyncio
import gc
import re
import subprocess
import sys
import textwrap
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

from tests.support.clock import RecordingClock
from tests.support.redis_server import MovedServer, RedisServer, redis_server
from vortext_async import (
    ConfigurationError,
    LimiterUnavailableError,
    Permit,
    RateLimit,
    RateLimiter,
    RedisRateLimiter,
    WaitBudgetExceededError,
)
from vortext_async._redis_limiter import _ACQUIRE

redis_asyncio = pytest.importorskip("redis.asyncio")
pytestmark = pytest.mark.redis

HANG = 5.0  # seconds after which a test calls it a hang (no bound asserted is this loose)


@pytest.fixture(scope="module")
def server() -> Iterator[RedisServer]:
    with redis_server() as started:
        yield started


@pytest.fixture
async def probe(server: RedisServer) -> AsyncIterator[Any]:
    client = redis_asyncio.Redis.from_url(server.url, decode_responses=True)
    await client.flushall()
    yield client
    await client.aclose()


def watch_loop() -> list[dict[str, Any]]:
    """What the event loop reports as never retrieved (a task that died unseen)."""
    seen: list[dict[str, Any]] = []
    asyncio.get_running_loop().set_exception_handler(lambda _loop, context: seen.append(context))
    return seen


def limiter_on(url: str, **kwargs: Any) -> RedisRateLimiter:
    kwargs.setdefault("redis_timeout", 2.0)
    return RedisRateLimiter(RateLimit(windows=((5, 1.0),)), url, account="acme", **kwargs)


async def every_waiter_fails(limiter: RedisRateLimiter, count: int = 5) -> list[BaseException]:
    """``count`` concurrent sends: each must end (no hang), with an error."""

    async def one() -> None:
        async with limiter.acquire():
            pass

    async with asyncio.timeout(HANG):
        results = await asyncio.gather(*(one() for _ in range(count)), return_exceptions=True)
    assert all(isinstance(r, BaseException) for r in results), results
    return [r for r in results if isinstance(r, BaseException)]


async def assert_clean_error_answer(
    limiter: RedisRateLimiter, seen: list[dict[str, Any]], code: str
) -> None:
    errors = await every_waiter_fails(limiter)
    assert all(type(e) is LimiterUnavailableError for e in errors), errors
    assert re.search(code, str(errors[0])), errors[0]
    # The limiter still works: a second round is answered too, not left hanging.
    errors = await every_waiter_fails(limiter, 2)
    assert all(type(e) is LimiterUnavailableError for e in errors)
    with pytest.raises(LimiterUnavailableError, match=code):
        async with asyncio.timeout(HANG):
            await limiter.pause(1.0)
    await limiter.aclose()
    gc.collect()
    await asyncio.sleep(0)
    assert [c["message"] for c in seen] == []


async def test_a_read_only_replica_fails_every_send_cleanly(server: RedisServer) -> None:
    unretrieved = watch_loop()
    with redis_server(args=["--replicaof", "127.0.0.1", str(server.port)]) as replica:
        await assert_clean_error_answer(
            limiter_on(replica.url), unretrieved, "ReadOnlyError|READONLY"
        )


async def test_a_read_only_replica_hands_over_to_the_fallback(server: RedisServer) -> None:
    with redis_server(args=["--replicaof", "127.0.0.1", str(server.port)]) as replica:
        fallback = RateLimiter(RateLimit(windows=((5, 1.0),)))
        limiter = limiter_on(replica.url, fallback=fallback)
        async with asyncio.timeout(HANG):
            async with limiter.acquire():
                assert fallback.state().in_flight == 1
            await limiter.pause(0.5)
        assert fallback.state().paused_until is not None
        await limiter.aclose()


async def test_an_acl_user_without_the_keys_gets_noperm_cleanly(
    server: RedisServer, probe: Any
) -> None:
    unretrieved = watch_loop()
    await probe.execute_command("ACL", "SETUSER", "limited", "on", ">s3cret", "~other:*", "+@all")
    try:
        limiter = limiter_on(server.url_for("limited", "s3cret"))
        await assert_clean_error_answer(limiter, unretrieved, "NoPermissionError|NOPERM")
        # Closed before the user goes: else its flusher retries the release forever.
        another = limiter_on(server.url_for("limited", "s3cret"))
        errors = await every_waiter_fails(another, 1)
        await another.aclose()
        assert "s3cret" not in str(errors[0])
    finally:
        await probe.execute_command("ACL", "DELUSER", "limited")


async def test_out_of_memory_keeps_limiting_and_pause_fails_cleanly(
    server: RedisServer, probe: Any
) -> None:
    """Over ``maxmemory`` Redis refuses a script's first write only if it may grow memory.

    The acquire script's first write (ZREMRANGEBYSCORE) may not, so Redis 7 lets
    it take tokens; the pause's SET is refused: that refusal must be clean.
    """
    unretrieved = watch_loop()
    limiter = limiter_on(server.url)
    await probe.config_set("maxmemory-policy", "noeviction")
    await probe.config_set("maxmemory", "1")
    try:
        async with asyncio.timeout(HANG):
            for _ in range(2):
                async with limiter.acquire():
                    pass
        with pytest.raises(LimiterUnavailableError, match="OutOfMemoryError"):
            async with asyncio.timeout(HANG):
                await limiter.pause(1.0)
    finally:
        await probe.config_set("maxmemory", "0")
    await limiter.aclose()
    assert await probe.zcard("vortext:{acme}:w:5:1000000") == 2
    gc.collect()
    assert [c["message"] for c in unretrieved] == []


async def test_moved_from_a_cluster_node_fails_every_send_cleanly() -> None:
    unretrieved = watch_loop()
    async with MovedServer() as node:
        await assert_clean_error_answer(limiter_on(node.url), unretrieved, "MovedError|MOVED")
        assert any(command[0].upper() == b"EVALSHA" for command in node.commands)


async def test_a_stopped_redis_is_unavailable_within_redis_timeout() -> None:
    with redis_server() as own:
        limiter = limiter_on(own.url, redis_timeout=0.2)
        async with limiter.acquire() as permit:  # connected, scripts loaded
            permit.refund()
        with own.frozen():
            async with asyncio.timeout(HANG):
                results = await asyncio.gather(
                    limiter.acquire(max_wait=2.0).__aenter__(),
                    limiter.acquire().__aenter__(),  # no budget: redis_timeout bounds it
                    return_exceptions=True,
                )
            assert [type(r) for r in results] == [LimiterUnavailableError] * 2
            assert "no answer within redis_timeout=0.2 s" in str(results[0])
            with pytest.raises(LimiterUnavailableError, match="redis_timeout"):
                async with asyncio.timeout(HANG):
                    await limiter.pause(1.0)
        await limiter.aclose()


async def test_a_stopped_redis_ends_a_wait_at_its_max_wait() -> None:
    with redis_server() as own:
        fallback = RateLimiter(RateLimit(windows=((1, 60.0),)))
        strict = limiter_on(own.url, redis_timeout=30.0)
        lenient = limiter_on(own.url, redis_timeout=30.0, fallback=fallback)
        for limiter in (strict, lenient):
            async with limiter.acquire() as permit:
                permit.refund()
        with own.frozen():
            with pytest.raises(LimiterUnavailableError, match=r"max_wait=0\.1 s \(\+0\.05 s"):
                async with asyncio.timeout(HANG):
                    await strict.acquire(max_wait=0.1).__aenter__()
            async with asyncio.timeout(HANG):
                async with lenient.acquire(max_wait=0.1):
                    assert fallback.state().in_flight == 1  # the fallback took over
            # ... with what is left of the budget: none, so a busy fallback refuses.
            with pytest.raises(WaitBudgetExceededError):
                async with asyncio.timeout(HANG):
                    await lenient.acquire(max_wait=0.1).__aenter__()
        for limiter in (strict, lenient):
            await limiter.aclose()


async def test_a_cancellation_redis_py_loses_is_still_a_cancellation(server: RedisServer) -> None:
    """redis-py sends through ``asyncio.wait_for``, which before Python 3.12 may swallow a
    cancellation and go on to fail: the call must end cancelled, not "unavailable"
    (the flusher retries on unavailable: cancelled so, it never ended)."""
    limiter = limiter_on(server.url)
    waiting = asyncio.Event()

    async def loses_the_cancel(**_: Any) -> None:
        waiting.set()
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:  # as wait_for can: the cancel is gone, an error follows
            raise redis_asyncio.ConnectionError("Connection closed by server.") from None

    limiter._connect()
    limiter._scripts["pause"] = loses_the_cancel
    pausing = asyncio.create_task(limiter.pause(1.0))
    async with asyncio.timeout(HANG):
        await waiting.wait()
    pausing.cancel()
    with pytest.raises(asyncio.CancelledError):
        await pausing
    await limiter.aclose()


class Recording(RedisRateLimiter):
    """Keeps the arguments of every acquire call, to replay one by hand."""

    calls: list[tuple[list[str], list[Any]]]

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        if script == "acquire":
            self.calls = [*getattr(self, "calls", []), (keys, args)]
        return await super()._call(script, keys, args)


async def test_a_call_that_ran_after_we_gave_up_holds_no_phantom_token() -> None:
    with redis_server() as own:
        probe = redis_asyncio.Redis.from_url(own.url, decode_responses=True)
        window = "vortext:{acme}:w:1:250000"
        limiter = Recording(
            RateLimit(windows=((1, 0.25),)),
            own.url,
            account="acme",
            redis_timeout=0.2,
            attempt_timeout=60.0,
        )
        async with limiter.acquire() as permit:  # connected, scripts loaded
            permit.refund()
        async with asyncio.timeout(HANG):
            while await probe.zcard(window):  # until the refund is sent
                await asyncio.sleep(0.01)
        with own.frozen(), pytest.raises(LimiterUnavailableError):
            async with asyncio.timeout(HANG):
                await limiter.acquire(max_wait=2.0).__aenter__()
        # Resumed, Redis runs the script still in its socket buffer: without a
        # release, its token would be held 60.25 s and this send kept waiting.
        assert await probe.ping()
        async with asyncio.timeout(HANG):
            async with limiter.acquire() as permit:
                held = await probe.zrange(window, 0, -1)
                permit.refund()
        assert len(limiter.calls) == 3  # granted at its first ask: no token in its way
        assert held == [f"p:{limiter.calls[2][1][0]}-1"]  # this send's token only
        await limiter.aclose()
        assert await probe.zcard(window) == 0
        # The call given up, if it arrives now (a request Redis read late), takes nothing.
        keys, args = limiter.calls[1]
        answer = await probe.eval(_ACQUIRE, len(keys), *keys, *args)
        assert answer[0] == 0
        assert await probe.zcard(window) == 0
        await probe.aclose()


class HeldRelease(Recording):
    """Once ``gate`` is set, holds the next release of calls given up, as a slow link would.

    It goes on once another task wants to release too (the acquire waiting for
    it) or once an acquire has been answered (that acquire did not wait).
    """

    gate: asyncio.Event | None = None
    held: asyncio.Task[Any] | None = None

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.settled = asyncio.Event()  # a settle answered: its connection back in the pool

    async def _release_given_up(self) -> None:
        if self.gate and self.held is not None and asyncio.current_task() is not self.held:
            self.gate.set()
        await super()._release_given_up()

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        releasing = script == "settle" and len(keys) > len(self._keys)  # it sets tombstones
        if releasing and self.gate is not None and not self.gate.is_set():
            self.held = asyncio.current_task()
            await self.gate.wait()
        answer = await super()._call(script, keys, args)
        if script == "acquire" and self.gate is not None:
            self.gate.set()
        if script == "settle" and not releasing:
            self.settled.set()
        return answer


async def test_the_next_acquire_waits_for_a_release_already_out() -> None:
    """The background release is out when the next send asks: the ask goes after it.

    Sent at once on another connection, the ask would reach Redis first and find
    the phantom token of the call given up: this send told to wait and ask again.
    """
    with redis_server() as own:
        probe = redis_asyncio.Redis.from_url(own.url, decode_responses=True)
        window = "vortext:{acme}:w:1:250000"
        limiter = HeldRelease(
            RateLimit(windows=((1, 0.25),)),
            own.url,
            account="acme",
            redis_timeout=0.2,
            attempt_timeout=60.0,
        )
        async with limiter.acquire() as permit:  # connected, scripts loaded
            permit.refund()
        async with asyncio.timeout(HANG):
            await limiter.settled.wait()  # so the next call finds a connection, and sends
        limiter.gate = asyncio.Event()
        with own.frozen(), pytest.raises(LimiterUnavailableError):
            async with asyncio.timeout(HANG):
                await limiter.acquire(max_wait=2.0).__aenter__()
        async with asyncio.timeout(HANG):
            while not await probe.zcard(window):  # resumed, Redis runs the call given up
                await asyncio.sleep(0.01)
            assert limiter.held is not None  # its release is out, held
            async with limiter.acquire() as permit:
                held = await probe.zrange(window, 0, -1)
                permit.refund()
        assert len(limiter.calls) == 3  # granted at its first ask, after the release
        assert held == [f"p:{limiter.calls[2][1][0]}-1"]  # this send's token only
        await limiter.aclose()
        assert await probe.zcard(window) == 0
        await probe.aclose()


async def in_flight_elsewhere(probe: Any, window: str, width_us: int) -> None:
    """A token held by a send in flight in another process since 10 s."""
    seconds, micros = await probe.time()
    now = int(seconds) * 1_000_000 + int(micros)
    acquired = now - 10_000_000
    await probe.zadd(window, {f"p:{acquired}:other-1": acquired + 60_000_000 + width_us})


class Counting(RedisRateLimiter):
    asks = 0

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        self.asks += script == "acquire"
        return await super()._call(script, keys, args)


async def test_max_wait_shorter_than_a_send_in_flight_fails_at_once(
    probe: Any, server: RedisServer
) -> None:
    await in_flight_elsewhere(probe, "vortext:{acme}:w:1:1000000", 1_000_000)
    clock = RecordingClock()
    limiter = Counting(RateLimit(windows=((1, 1.0),)), server.url, account="acme", clock=clock)
    with pytest.raises(WaitBudgetExceededError) as caught:
        async with asyncio.timeout(HANG):
            await limiter.acquire(max_wait=0.5).__aenter__()
    # It settles no sooner than now, so its token is back no sooner than W from now.
    assert caught.value.expected_wait == 1.0
    assert limiter.asks == 1
    assert clock.waits == []  # no budget sat out
    await limiter.aclose()


async def test_the_wait_estimate_counts_the_sends_queued_ahead(
    probe: Any, server: RedisServer
) -> None:
    await in_flight_elsewhere(probe, "vortext:{acme}:w:1:1000000", 1_000_000)
    clock = RecordingClock()
    limiter = Counting(RateLimit(windows=((1, 1.0),)), server.url, account="acme", clock=clock)
    first = asyncio.create_task(limiter.acquire().__aenter__())
    second = asyncio.create_task(limiter.acquire(max_wait=1.5).__aenter__())
    with pytest.raises(WaitBudgetExceededError) as caught:
        async with asyncio.timeout(HANG):
            await second
    # first takes the token in flight (back >= 1 s from now), second its next turn.
    assert caught.value.expected_wait == 2.0
    assert limiter.asks <= 2  # failed on the first answer (the head may ask again)
    assert not first.done()
    first.cancel()
    await limiter.aclose()


def test_without_redis_installed_construction_says_which_extra() -> None:
    script = textwrap.dedent(
        """
        import sys
        sys.modules["redis"] = None  # as if not installed: import redis fails
        import vortext_async
        from vortext_async import ConfigurationError, RateLimit
        from vortext_async import RedisRateLimiter
        try:
            RedisRateLimiter(RateLimit(per_minute=10), "redis://h:6379/0", account="a")
        except ConfigurationError as error:
            print(error)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "pip install 'vortext-async[redis]'" in done.stdout


def test_a_url_that_is_not_redis_is_refused_at_construction() -> None:
    with pytest.raises(ConfigurationError, match=r"http://u:\*\*\*@h/"):
        RedisRateLimiter(RateLimit(per_minute=10), "http://u:pw@h/", account="a")
    with pytest.raises(ConfigurationError, match="redis_timeout"):
        RedisRateLimiter(RateLimit(per_minute=10), "redis://h/0", account="a", redis_timeout=0)


async def test_max_wait_zero_still_gets_a_token_free_now(
    probe: Any, server: RedisServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The budget covers one round trip: ``max_wait=0`` asks Redis, never fails unasked."""
    # A loaded machine may take longer than the 50 ms grace for one round trip; what is
    # checked here is that Redis is asked at all, so give the round trip room.
    monkeypatch.setattr("vortext_async._redis_limiter._ROUND_TRIP_GRACE", 5.0)
    limiter = RedisRateLimiter(RateLimit(windows=((1, 60.0),)), server.url, account="acme")
    async with asyncio.timeout(HANG):
        async with limiter.acquire(max_wait=0):
            assert await probe.zcard("vortext:{acme}:w:1:60000000") == 1
        with pytest.raises(WaitBudgetExceededError):
            await limiter.acquire(max_wait=0).__aenter__()
    await limiter.aclose()


async def test_a_grant_arriving_after_the_budget_ended_is_given_back(
    probe: Any, server: RedisServer
) -> None:
    """The answer comes after the wait ended: the token is refunded, not kept."""
    granted: list[Permit] = []

    class Slow(RedisRateLimiter):
        async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
            answer = await super()._call(script, keys, args)
            if script == "acquire":
                await asyncio.sleep(0.2)  # Redis answered; the answer is slow to arrive
            return answer

    limiter = Slow(RateLimit(windows=((1, 60.0),)), server.url, account="acme")
    with pytest.raises(LimiterUnavailableError, match="max_wait"):
        async with asyncio.timeout(HANG):
            granted.append(await limiter.acquire(max_wait=0.05).__aenter__())
    await limiter.aclose()  # sends the refund
    assert granted == []
    assert await probe.zcard("vortext:{acme}:w:1:60000000") == 0
