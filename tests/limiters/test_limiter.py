"""Unit tests of the in-memory rate limiter, one guarantee (or known flaw) each.

Everything runs in virtual time (``VirtualClock``): no real sleeping.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import pytest

from vortext_async import (
    ClientClosedError,
    ConfigurationError,
    RateLimit,
    RateLimiter,
    WaitBudgetExceededError,
)
from vortext_async.testing import VirtualClock

NS = 1_000_000_000


def make(*windows: tuple[int, float]) -> tuple[RateLimiter, VirtualClock]:
    clock = VirtualClock()
    return RateLimiter(RateLimit(windows=windows), clock=clock), clock


async def until(clock: VirtualClock, seconds: float) -> None:
    """Sleep until the absolute virtual instant ``seconds``."""
    await clock.sleep(seconds - clock.time())


def sender(
    limiter: RateLimiter, clock: VirtualClock, log: list[tuple[str, float]]
) -> Callable[[str, float], asyncio.Task[None]]:
    """``send(name, latency)`` starts a task that acquires, logs its grant, and answers."""

    async def run(name: str, latency: float) -> None:
        async with limiter.acquire():
            log.append((name, clock.time()))
            await clock.sleep(latency)

    return lambda name, latency=0.0: asyncio.create_task(run(name, latency))


# -- configuration -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"per_minute": 0}, "per_minute"),
        ({"per_minute": -5}, "per_minute"),
        ({"per_hour": 1.5}, "per_hour"),
        ({"per_hour": True}, "per_hour"),
        ({"windows": ((0, 1.0),)}, "windows max_sends"),
        ({"windows": ((3, 0),)}, "windows seconds"),
        ({"windows": ((3, float("inf")),)}, "windows seconds"),
        ({"windows": ((3, float("nan")),)}, "windows seconds"),
        ({"windows": ((3,),)}, "windows"),
    ],
)
def test_bad_rate_limit_names_the_field(kwargs: dict[str, object], field: str) -> None:
    with pytest.raises(ConfigurationError, match=field) as caught:
        RateLimit(**kwargs)  # type: ignore[arg-type]
    assert isinstance(caught.value, ValueError)


def test_all_windows_lists_every_cap() -> None:
    limit = RateLimit(per_minute=600, per_hour=20_000, windows=[(5, 1.5)])  # type: ignore[arg-type]
    assert limit.all_windows() == ((600, 60.0), (20_000, 3600.0), (5, 1.5))
    assert RateLimit().all_windows() == ()


# -- the rule ----------------------------------------------------------------------


async def test_token_comes_back_w_after_the_attempt_settles_not_after_hand_off() -> None:
    limiter, clock = make((2, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await asyncio.gather(send("a", 0.4), send("b", 0.1), send("c"), send("d"), send("e"))
    # a settles at 0.4 and b at 0.1: their tokens are back at 1.4 and 1.1.
    assert log == [("a", 0.0), ("b", 0.0), ("c", 1.1), ("d", 1.4), ("e", 2.1)]


async def test_grant_is_exact_every_window_at_once() -> None:
    limiter, clock = make((3, 1.0), (4, 10.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await asyncio.gather(*(send(str(i), 0.25) for i in range(6)))
    # 3 at 0; the 4th when the first token of the 1 s window is back (0.25 + 1);
    # then the 10 s window is empty until 0.25 + 10.
    assert [t for _, t in log] == [0.0, 0.0, 0.0, 1.25, 10.25, 10.25]


async def test_settle_marks_the_instant_even_before_the_block_ends() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []

    async def early() -> None:
        async with limiter.acquire() as permit:
            await clock.sleep(0.2)
            permit.settle()
            permit.settle()  # idempotent
            await clock.sleep(5.0)  # reading the answer does not hold the token

    send = sender(limiter, clock, log)
    first = asyncio.create_task(early())
    await asyncio.gather(first, send("next"))
    assert log == [("next", 1.2)]


async def test_refund_gives_the_tokens_back_at_once_to_the_next_waiter() -> None:
    limiter, clock = make((1, 10.0))
    log: list[tuple[str, float]] = []

    async def never_sent() -> None:
        async with limiter.acquire() as permit:
            await clock.sleep(0.5)  # connection refused after 0.5 s
            permit.refund()
            permit.settle()  # already done: no effect

    send = sender(limiter, clock, log)
    await asyncio.gather(asyncio.create_task(never_sent()), send("next"), send("last"))
    assert log == [("next", 0.5), ("last", 10.5)]


async def test_no_windows_never_waits_but_a_pause_still_holds_everyone() -> None:
    limiter, clock = make()
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await asyncio.gather(*(send(str(i), 1.0) for i in range(100)))
    assert {t for _, t in log} == {0.0}
    await limiter.pause(3.0)
    log.clear()
    await asyncio.gather(send("x"), send("y"))
    assert log == [("x", 4.0), ("y", 4.0)]


async def test_integer_nanoseconds_no_drift_over_hours() -> None:
    """pyrate-limiter's async path drifted; here the 20,000th... grant is exact."""
    clock = VirtualClock()
    limiter = RateLimiter(RateLimit(per_minute=600, per_hour=20_000), clock=clock)
    grants: list[int] = []

    async def one() -> None:
        async with limiter.acquire():
            grants.append(clock.now_ns())

    sends = 24_000
    await asyncio.gather(*(one() for _ in range(sends)))
    # With instant answers: 600 per minute up to 20,000, then the hour's tokens return.
    expected = []
    for k in range(sends):
        at = (k // 600) * 60 * NS
        if k >= 20_000:
            at = max(at, expected[k - 20_000] + 3600 * NS)
        if k >= 600:
            at = max(at, expected[k - 600] + 60 * NS)
        expected.append(at)
    assert grants == expected
    assert clock.now_ns() == expected[-1]  # more than an hour of virtual time


async def test_odd_window_lengths_stay_exact() -> None:
    limiter, clock = make((3, 1 / 3))
    grants: list[int] = []

    async def one() -> None:
        async with limiter.acquire():
            grants.append(clock.now_ns())

    await asyncio.gather(*(one() for _ in range(3000)))
    assert grants == [(k // 3) * 333_333_333 for k in range(3000)]


# -- fairness ----------------------------------------------------------------------


async def test_fifo_a_newcomer_never_overtakes_a_waiter_even_when_it_wakes_first() -> None:
    """aiolimiter's flaw: under loop lag, a task that runs first takes the freed token."""
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)

    async def newcomer() -> None:
        await until(clock, 1.0)  # registered first: it runs before the limiter's timer
        assert limiter.state().windows[0].tokens_left == 1  # the token is back...
        async with limiter.acquire():  # asked before the limiter's timer ran
            log.append(("newcomer", clock.time()))

    late = asyncio.create_task(newcomer())
    await send("first")  # settles at 0
    waiting = send("waiter")
    await asyncio.gather(late, waiting)
    assert log == [("first", 0.0), ("waiter", 1.0), ("newcomer", 2.0)]  # ...but not for it


async def test_a_woken_waiters_grant_is_reserved_until_it_runs() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    waiter = send("waiter")
    await until(clock, 1.0)
    # The limiter's timer fired and granted the waiter; the waiter has not run yet.
    for _ in range(3):
        if limiter.state().queued == 0:
            break
        await asyncio.sleep(0)
    assert limiter.state().queued == 0
    assert limiter.state().windows[0].tokens_left == 0  # reserved for it
    assert log == [("first", 0.0)]
    intruder = send("intruder")
    await asyncio.gather(waiter, intruder)
    assert log == [("first", 0.0), ("waiter", 1.0), ("intruder", 2.0)]


async def test_nobody_starves_with_a_steady_stream_of_newcomers() -> None:
    limiter, clock = make((2, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    tasks = [send(f"early{i}") for i in range(5)]

    async def stream() -> None:
        for i in range(20):
            tasks.append(send(f"late{i}"))
            await clock.sleep(0.1)

    await stream()
    await asyncio.gather(*tasks)
    names = [name for name, _ in log]
    assert names[:5] == [f"early{i}" for i in range(5)]
    assert names[5:] == [f"late{i}" for i in range(20)]


# -- cancellation ------------------------------------------------------------------


async def test_a_waiter_cancelled_while_waiting_takes_nothing_and_delays_no_one() -> None:
    limiter, clock = make((1, 1.0), (5, 100.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    doomed = send("doomed")
    behind = send("behind")
    await until(clock, 0.5)
    assert limiter.state().queued == 2
    doomed.cancel()
    await until(clock, 0.6)
    state = limiter.state()
    assert state.queued == 1
    assert [w.tokens_left for w in state.windows] == [0, 4]  # nothing taken by doomed
    await behind
    assert log == [("first", 0.0), ("behind", 1.0)]
    assert doomed.cancelled()


async def test_a_grant_cancelled_before_its_task_ran_goes_to_the_next_waiter() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    doomed = send("doomed")
    behind = send("behind")
    await until(clock, 1.0)
    while limiter.state().queued == 2:  # until the timer granted doomed
        await asyncio.sleep(0)
    doomed.cancel()  # woken, its tokens taken for it, but it never ran
    await behind
    assert log == [("first", 0.0), ("behind", 1.0)]
    assert limiter.state().in_flight == 0


async def test_a_send_cancelled_mid_flight_keeps_its_token_until_w_after_cancellation() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    inflight = send("inflight", 60.0)
    behind = send("behind")
    await until(clock, 0.3)
    inflight.cancel()
    await behind
    assert log == [("inflight", 0.0), ("behind", 1.3)]


# -- atomic windows ----------------------------------------------------------------


async def test_waiting_for_one_window_takes_nothing_from_the_others() -> None:
    """The `limits` flaw: checking limits one by one spends tokens of some."""
    limiter, clock = make((1, 1.0), (3, 10.0), (10, 100.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    waiting = [send(f"w{i}") for i in range(3)]
    await until(clock, 0.5)
    state = limiter.state()
    assert [w.tokens_left for w in state.windows] == [0, 2, 9]
    assert (state.queued, state.in_flight) == (3, 0)
    await asyncio.gather(*waiting)
    assert log == [("first", 0.0), ("w0", 1.0), ("w1", 2.0), ("w2", 10.0)]


# -- quiet -------------------------------------------------------------------------


async def test_ten_thousand_waiters_one_timer_and_one_wake_up_each(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    limiter, clock = make((10, 1.0))
    waiters: set[asyncio.Task[None]] = set()
    resumed = 0
    most_sleepers = 0
    original = asyncio.events.Handle._run

    def counting_run(handle: asyncio.Handle) -> None:
        nonlocal resumed
        if getattr(handle._callback, "__self__", None) in waiters:  # type: ignore[attr-defined]
            resumed += 1
        original(handle)

    async def one() -> None:
        nonlocal most_sleepers
        async with limiter.acquire():
            most_sleepers = max(most_sleepers, clock.sleepers)

    monkeypatch.setattr(asyncio.events.Handle, "_run", counting_run)
    waiters.update(asyncio.create_task(one()) for _ in range(10_000))
    await asyncio.gather(*waiters)
    monkeypatch.undo()
    assert clock.time() == 999.0
    assert most_sleepers <= 1  # one timer, for the head, never one per waiter
    # Each waiter runs once to queue, once when granted (and once to finish).
    print("RESUMED", resumed)
    assert resumed <= 10_000 * 3


# -- wait budget -------------------------------------------------------------------


async def test_max_wait_refuses_before_taking_anything_with_the_expected_wait() -> None:
    limiter, clock = make((1, 1.0), (5, 60.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    await until(clock, 0.25)
    assert limiter.estimated_wait() == pytest.approx(0.75)
    with pytest.raises(WaitBudgetExceededError) as caught:
        async with limiter.acquire(max_wait=0.5):
            pass
    assert caught.value.expected_wait == pytest.approx(0.75)
    assert caught.value.max_wait == 0.5
    state = limiter.state()
    assert ([w.tokens_left for w in state.windows], state.queued) == ([0, 4], 0)
    async with limiter.acquire(max_wait=0.75):
        assert clock.time() == 1.0


async def test_max_wait_counts_the_queue_ahead() -> None:
    limiter, clock = make((2, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    tasks = [send(str(i)) for i in range(7)]  # 0,1 at 0; 2,3 at 1; 4,5 at 2; 6 at 3
    await asyncio.sleep(0)
    assert limiter.estimated_wait() == 3.0  # the 8th goes at 3
    with pytest.raises(WaitBudgetExceededError):
        async with limiter.acquire(max_wait=2.5):
            pass
    await asyncio.gather(*tasks)


async def test_a_wait_that_runs_past_max_wait_gives_up_its_place_and_takes_nothing() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    slow = send("slow", 5.0)  # in flight: the estimate (1 s) is too hopeful
    await asyncio.sleep(0)

    async def bounded() -> float:
        with pytest.raises(WaitBudgetExceededError):
            async with limiter.acquire(max_wait=2.0):
                pass
        return clock.time()

    gave_up = asyncio.create_task(bounded())
    patient = send("patient")
    assert await gave_up == 2.0
    await asyncio.gather(slow, patient)
    assert log == [("slow", 0.0), ("patient", 6.0)]
    assert limiter.state().in_flight == 0


# -- pause (429) -------------------------------------------------------------------


async def test_pause_holds_every_sender_and_keeps_the_longest() -> None:
    limiter, clock = make((100, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await limiter.pause(5.0)
    await until(clock, 1.0)
    await limiter.pause(1.0)  # shorter: the 5 s pause stands
    state = limiter.state()
    assert state.paused_until == 4.0
    waiting = [send(str(i)) for i in range(3)]
    await asyncio.sleep(0)
    assert limiter.estimated_wait() == 4.0
    await asyncio.gather(*waiting)
    assert log == [("0", 5.0), ("1", 5.0), ("2", 5.0)]
    assert limiter.state().paused_until is None


async def test_pause_extends_a_wait_already_armed() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    waiter = send("waiter")
    await until(clock, 0.5)
    await limiter.pause(2.0)
    await waiter
    assert log == [("first", 0.0), ("waiter", 2.5)]


# -- state and closing ---------------------------------------------------------------


async def test_state_reports_tokens_queue_and_in_flight() -> None:
    limiter, clock = make((2, 1.0), (3, 5.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    tasks = [send(str(i), 0.5) for i in range(4)]
    await asyncio.sleep(0)
    state = limiter.state()
    assert [(w.max_sends, w.seconds, w.tokens_left) for w in state.windows] == [
        (2, 1.0, 0),
        (3, 5.0, 1),
    ]
    assert (state.queued, state.in_flight, state.paused_until) == (2, 2, None)
    await asyncio.gather(*tasks)
    assert [t for _, t in log] == [0.0, 0.0, 1.5, 5.5]


async def test_aclose_fails_waiters_and_later_acquires() -> None:
    limiter, clock = make((1, 1.0))
    log: list[tuple[str, float]] = []
    send = sender(limiter, clock, log)
    await send("first")
    waiter = send("waiter")
    await asyncio.sleep(0)
    await limiter.aclose()
    with pytest.raises(ClientClosedError):
        await waiter
    with pytest.raises(ClientClosedError):
        async with limiter.acquire():
            pass
    assert clock.sleepers == 0


# -- end to end, real time, loopback -------------------------------------------------


async def _send_all(
    limiter: RateLimiter, url: str, count: int, *, settle_at_hand_off: bool
) -> tuple[list[int], list[int], list[int]]:
    """``count`` concurrent POSTs through ``limiter``: grant, settle instants and statuses."""
    import time

    import httpx

    grants: list[int] = []
    settles: list[int] = []
    statuses: list[int] = []
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=count)) as http:

        async def one() -> None:
            async with limiter.acquire() as permit:
                grants.append(time.monotonic_ns())
                if settle_at_hand_off:
                    permit.settle()  # the unsafe rule: back W after hand-off
                response = await http.post(url, content=b"{}")
                settles.append(time.monotonic_ns())
            statuses.append(response.status_code)

        await asyncio.gather(*(one() for _ in range(count)))
    return grants, settles, statuses


async def test_end_to_end_at_the_cap_no_429_and_close_to_the_oracle() -> None:
    from tests.support.window_server import WindowServer

    windows = ((4, 0.5), (10, 1.5))
    async with WindowServer(windows, max_count_delay=0.03) as server:
        limiter = RateLimiter(RateLimit(windows=windows))
        grants, settles, statuses = await _send_all(
            limiter, server.url, 24, settle_at_hand_off=False
        )
    assert statuses.count(429) == 0
    assert server.refused == 0
    assert len(server.counted) == 24
    # The oracle, from the settle instants measured: grant k at max of settle(k-N) + W.
    # (Settles are sorted: the k-th token back is the k-th earliest settle + W.)
    start, ends = grants[0], sorted(settles)
    oracle = [
        max([start, *(ends[k - n] + round(s * 1e9) for n, s in windows if k >= n)])
        for k in range(24)
    ]
    assert all(g >= o for g, o in zip(sorted(grants), oracle, strict=True))
    assert (grants[-1] - start) <= 1.05 * (oracle[-1] - start)


async def test_end_to_end_tokens_back_w_after_hand_off_are_refused() -> None:
    """Regression test of the rule: settling at hand-off lets the server refuse sends."""
    from tests.support.window_server import WindowServer

    windows = ((4, 0.5),)
    async with WindowServer(windows, max_count_delay=0.03) as server:
        limiter = RateLimiter(RateLimit(windows=windows))
        _, _, statuses = await _send_all(limiter, server.url, 16, settle_at_hand_off=True)
    assert statuses.count(429) > 0
