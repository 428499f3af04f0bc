"""A client given no caps learns a pace from the 429s instead of hammering the account.

Everything in virtual time: the emulator and the client share a ``VirtualClock``;
the emulator answers a send over its rolling window 429 with ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import itertools
import logging

import pytest

from vortext_async import (
    LearnedRateLimiter,
    RateLimit,
    RateLimiter,
    SentSms,
    VortextClient,
    WaitBudgetExceededError,
)
from vortext_async.emulator import Emulator
from vortext_async.testing import VirtualClock, emulator_client

SENDS = 60
WINDOW = (10, 1.0)  # 10 sends in any second
IDEAL = (SENDS / WINDOW[0] - 1) * WINDOW[1]  # 5 s: the first ten at once, then ten a second


async def _burst(
    rate_limit: RateLimit | None, *, sends: int = SENDS
) -> tuple[Emulator, float, list[object]]:
    clock = VirtualClock()
    emulator = Emulator(
        users={"demo": "demo"}, windows=[WINDOW], count_delay=0.03, seed=5, clock=clock
    )
    async with emulator_client(emulator, rate_limit=rate_limit, clock=clock) as client:
        results = await asyncio.gather(
            *(client.send_sms("+33611272727", f"n{i}") for i in range(sends)),
            return_exceptions=True,
        )
        elapsed = clock.time()
    return emulator, elapsed, results


async def test_a_client_without_caps_gets_a_learned_limiter() -> None:
    clock = VirtualClock()
    async with emulator_client(Emulator(clock=clock), clock=clock) as client:
        assert isinstance(client.limiter, LearnedRateLimiter)
    async with emulator_client(Emulator(clock=clock), rate_limit=RateLimit(), clock=clock) as c:
        assert isinstance(c.limiter, RateLimiter)  # "no caps" said explicitly: none learned


async def test_sixty_sends_at_once_without_caps_all_succeed_with_few_refusals_after_the_first_wave(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vortext_async")
    emulator, elapsed, results = await _burst(None)
    assert all(isinstance(result, SentSms) for result in results), results
    stats = emulator.stats
    assert stats.accepted == SENDS
    first_wave = SENDS - WINDOW[0]  # all 60 went at once: 50 refused, unavoidably
    assert stats.refused - first_wave < 0.2 * SENDS
    assert elapsed <= 1.5 * IDEAL
    learned = [r for r in caplog.records if r.name == "vortext_async.limiter"]
    assert len(learned) == 1  # logged once, with the caps to configure
    assert "RateLimit(" in learned[0].getMessage()
    assert "RateLimit(windows=[(10, 1.0)])" in learned[0].getMessage()


async def test_without_learning_the_same_burst_keeps_being_refused() -> None:
    emulator, _, results = await _burst(RateLimit())  # the behaviour before: a pause, no pace
    assert emulator.stats.refused - (SENDS - WINDOW[0]) >= 0.2 * SENDS
    assert not all(isinstance(result, SentSms) for result in results)  # some ran out of tries


async def test_the_pace_backs_off_on_refusals_and_grows_while_quiet() -> None:
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    for _ in range(20):
        async with limiter.acquire():
            pass
    assert limiter.rate is None  # no refusal yet: unpaced
    for _ in range(10):
        await limiter.pause(2.0)  # ten of the twenty refused, Retry-After 2 s
    async with limiter.acquire():
        pass
    assert clock.time() == pytest.approx(2.0)  # the pause held it
    assert limiter.rate == pytest.approx(0.9 * 10 / 2.0)  # ten accepted in two seconds
    assert limiter.suggested_rate_limit == RateLimit(windows=[(10, 2.0)])
    paced = limiter.rate
    await clock.sleep(2.0)
    await limiter.pause(0.0)  # a refusal once paced: multiplicative decrease
    async with limiter.acquire():
        pass
    assert limiter.rate == pytest.approx(0.8 * paced)
    decreased = limiter.rate
    await clock.sleep(2.5)  # a quiet span: additive increase
    async with limiter.acquire():
        pass
    assert limiter.rate == pytest.approx(decreased + 0.02 * 10 / 2.0)
    await limiter.aclose()


async def test_paced_sends_are_evenly_spaced_first_come_first_served() -> None:
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    for _ in range(5):
        async with limiter.acquire():
            pass
    for _ in range(3):
        await limiter.pause(1.0)
    order: list[tuple[int, float]] = []

    async def send(index: int) -> None:
        async with limiter.acquire():
            order.append((index, clock.time()))

    await asyncio.gather(*(send(i) for i in range(3)))  # within one span: no increase
    assert [index for index, _ in order] == list(range(3))
    gaps = [later - earlier for (_, earlier), (_, later) in itertools.pairwise(order)]
    assert gaps == pytest.approx([1 / (0.9 * 2)] * 2)  # 2 accepted per second, at 90%
    state = limiter.state()
    assert state.queued == 0
    assert state.in_flight == 0
    assert len(state.windows) == 1
    await limiter.aclose()


async def test_a_wait_budget_is_kept_while_paced() -> None:
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    async with limiter.acquire():
        pass
    await limiter.pause(10.0)
    with pytest.raises(WaitBudgetExceededError):
        async with limiter.acquire(max_wait=1.0):
            pass
    assert limiter.state().in_flight == 0
    await limiter.aclose()


async def test_the_learned_limiter_is_used_as_a_limiter_by_a_client() -> None:
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    emulator = Emulator(clock=clock)
    async with emulator_client(emulator, rate_limit=limiter, clock=clock) as client:
        assert client.limiter is limiter
        assert isinstance(client, VortextClient)
        await client.send_sms("+33611272727", "hi")


async def test_a_cancelled_waiter_is_not_counted_as_queued() -> None:
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    async with limiter.acquire():
        pass
    await limiter.pause(5.0)

    async def wait() -> None:
        async with limiter.acquire():
            pass

    waiters = [asyncio.create_task(wait()) for _ in range(3)]
    await asyncio.sleep(0)
    assert limiter.state().queued == 3
    waiters[1].cancel()
    await asyncio.sleep(0)
    assert limiter.state().queued == 2
    await asyncio.gather(waiters[0], waiters[2])
    assert limiter.state().queued == 0
    await limiter.aclose()


async def test_a_refusal_soon_after_an_increase_still_decreases_the_pace() -> None:
    # The increase is what overshot the cap: the refusal that follows must cut the pace,
    # or the pace keeps climbing past the cap and is refused once a span.
    clock = VirtualClock()
    limiter = LearnedRateLimiter(clock=clock)
    for _ in range(20):
        async with limiter.acquire():
            pass
    for _ in range(10):
        await limiter.pause(2.0)
    async with limiter.acquire():
        pass
    learned = limiter.rate
    assert learned is not None
    await clock.sleep(2.5)  # a quiet span: additive increase
    async with limiter.acquire():
        pass
    increased = limiter.rate
    assert increased == pytest.approx(learned + 0.02 * 10 / 2.0)
    await clock.sleep(0.5)  # within the span of that increase
    await limiter.pause(0.0)
    assert limiter.rate == pytest.approx(0.8 * increased)
    await limiter.pause(0.0)  # the same burst of refusals: one decrease
    assert limiter.rate == pytest.approx(0.8 * increased)
    await limiter.aclose()
