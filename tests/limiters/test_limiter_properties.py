"""Property tests of the rate limiter's rule, in virtual time.

Random window sets, arrival patterns, answer latencies, refunds and cancellations
(while waiting and mid-send).  For every run we check, from the outside:

- safety: no rolling window of W ever holds more than N sends, wherever between
  its hand-off and its answer the server counts each one;
- exactness: every grant comes at the instant the oracle gives: the latest of its
  arrival, the previous grant, and over windows the (k - N)-th earliest return of
  the tokens of the grants before it (settle + W, or the refund instant);
- FIFO: sends enter in the order they asked.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from vortext_async import RateLimit, RateLimiter
from vortext_async.testing import VirtualClock

MS = 1_000_000  # nanoseconds


@dataclass
class Send:
    arrive_ms: int
    latency_ms: int
    refund: bool
    cancel_ms: int | None  # absolute virtual instant at which its task is cancelled


@dataclass
class Record:
    index: int
    asked: int = -1  # position in the order of asking
    asked_at: int = -1
    granted: int | None = None
    ended: int | None = None
    refunded: bool = False


windows_st = st.lists(
    st.tuples(st.integers(1, 4), st.integers(1, 40).map(lambda tenths: tenths * 100)),
    min_size=0,
    max_size=3,
)
sends_st = st.lists(
    st.builds(
        Send,
        arrive_ms=st.integers(0, 6000),
        latency_ms=st.integers(0, 2500),
        refund=st.sampled_from([False, False, False, True]),
        cancel_ms=st.none() | st.none() | st.integers(0, 9000),
    ),
    min_size=1,
    max_size=25,
)


async def run(windows: list[tuple[int, int]], sends: list[Send]) -> list[Record]:
    clock = VirtualClock()
    limiter = RateLimiter(
        RateLimit(windows=tuple((n, w_ms / 1000) for n, w_ms in windows)), clock=clock
    )
    records = [Record(i) for i in range(len(sends))]
    order: list[int] = []

    async def one(send: Send, record: Record) -> None:
        await clock.sleep(send.arrive_ms / 1000)
        record.asked, record.asked_at = len(order), clock.now_ns()
        order.append(record.index)
        async with limiter.acquire() as permit:
            record.granted = clock.now_ns()
            try:
                await clock.sleep(send.latency_ms / 1000)
                if send.refund:
                    permit.refund()
                    record.refunded = True
            finally:
                record.ended = clock.now_ns()

    async def cancel_at(task: asyncio.Task[None], at_ms: int) -> None:
        await clock.sleep(at_ms / 1000)
        task.cancel()

    tasks = [asyncio.create_task(one(s, r)) for s, r in zip(sends, records, strict=True)]
    killers = [
        asyncio.create_task(cancel_at(task, s.cancel_ms))
        for task, s in zip(tasks, sends, strict=True)
        if s.cancel_ms is not None
    ]
    await asyncio.gather(*tasks, *killers, return_exceptions=True)
    state = limiter.state()
    assert (state.in_flight, state.queued) == (0, 0)
    await limiter.aclose()
    return records


def oracle(windows: list[tuple[int, int]], granted: list[Record]) -> list[int]:
    """When each send (in asking order) may go at the earliest under the rule."""
    instants: list[int] = []
    returns: list[list[int]] = [[] for _ in windows]
    for k, record in enumerate(granted):
        assert record.ended is not None
        at = max(record.asked_at, instants[-1] if instants else 0)
        for (n, _), back in zip(windows, returns, strict=True):
            if k >= n:
                at = max(at, sorted(back)[k - n])
        instants.append(at)
        for (_, w_ms), back in zip(windows, returns, strict=True):
            back.append(record.ended if record.refunded else record.ended + w_ms * MS)
    return instants


def check(windows: list[tuple[int, int]], records: list[Record]) -> None:
    granted = sorted((r for r in records if r.granted is not None), key=lambda r: r.asked)
    times = [r.granted for r in granted]
    # FIFO: sends enter in asking order, and exactly at the oracle's instants.
    assert times == oracle(windows, granted)
    # Safety: count each rolling window as an adversarial server could.
    counted = [(r.granted, r.ended) for r in granted if not r.refunded]
    for n, w_ms in windows:
        width = w_ms * MS
        for _, start in counted:
            inside = [g for g, s in counted if s >= start and g < start + width]  # type: ignore[operator]
            assert len(inside) <= n, (n, w_ms, start, inside)


@settings(max_examples=150, deadline=None)
@given(windows=windows_st, sends=sends_st)
def test_rule_holds_grants_are_exact_and_fifo(
    windows: list[tuple[int, int]], sends: list[Send]
) -> None:
    records = asyncio.run(run(windows, sends))
    check(windows, records)
    # Every send that was not cancelled while waiting got in.
    for send, record in zip(sends, records, strict=True):
        if send.cancel_ms is None:
            assert record.granted is not None


@settings(max_examples=40, deadline=None)
@given(
    windows=st.lists(
        st.tuples(st.integers(1, 3), st.integers(1, 30).map(lambda t: t * 100)),
        min_size=1,
        max_size=2,
    ),
    latency_ms=st.integers(0, 500),
    count=st.integers(1, 40),
)
def test_saturated_demand_matches_the_issue_formula(
    windows: list[tuple[int, int]], latency_ms: int, count: int
) -> None:
    """All sends ask at once: the k-th goes at the latest of settle(k - N) + W."""
    sends = [Send(arrive_ms=0, latency_ms=latency_ms, refund=False, cancel_ms=None)] * count
    records = sorted(asyncio.run(run(windows, sends)), key=lambda r: r.asked)
    for k, record in enumerate(records):
        expected = max(
            [0, *(records[k - n].ended + w * MS for n, w in windows if k >= n)]  # type: ignore[operator]
        )
        assert record.granted == expected
