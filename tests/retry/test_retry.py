"""The retry layer on its own: what is retried, how long it waits, when it stops.

Time is a fake clock: its ``sleep`` records the wait and moves virtual time at once,
so no test sleeps.  Attempts are plain coroutines that raise the errors the HTTP
layer would (the layer knows no HTTP).
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Callable, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support.clock import NS, START, RecordingClock
from vortext_async import (
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    ConnectError,
    InvalidRequestError,
    InvalidResponseError,
    LimiterUnavailableError,
    NotFoundError,
    PoolTimeoutError,
    ProtocolError,
    RateLimitedError,
    RequestTimeoutError,
    RetryEvent,
    RetryPolicy,
    ServerError,
    UncertainSendError,
    UnexpectedStatusError,
    VortextError,
    WaitBudgetExceededError,
)
from vortext_async._retry import call_with_retries, should_retry

URL = "http://vortext.invalid/sms"
NO_JITTER = RetryPolicy(jitter=0)


class Script:
    """An attempt function that raises (or returns) the given outcomes in turn."""

    def __init__(
        self, outcomes: Sequence[BaseException | str], *, clock: RecordingClock, duration: float = 0
    ) -> None:
        self.outcomes = list(outcomes)
        self.clock = clock
        self.duration = duration
        self.calls = 0

    async def __call__(self) -> str:
        outcome = self.outcomes[self.calls]
        self.calls += 1
        self.clock.advance(self.duration)
        if isinstance(outcome, BaseException):
            raise outcome
        return outcome


async def run(
    outcomes: Sequence[BaseException | str],
    *,
    operation: Any = "send",
    policy: RetryPolicy = NO_JITTER,
    duration: float = 0,
    clock: RecordingClock | None = None,
    rng: random.Random | None = None,
) -> tuple[str | VortextError, Script, RecordingClock, list[RetryEvent]]:
    """Run ``call_with_retries`` over ``outcomes``: (result or error, script, clock, events)."""
    clock = clock if clock is not None else RecordingClock()
    script = Script(outcomes, clock=clock, duration=duration)
    events: list[RetryEvent] = []
    try:
        result: str | VortextError = await call_with_retries(
            script,
            operation=operation,
            policy=policy,
            clock=clock,
            on_retry=events.append,
            rng=rng,
        )
    except VortextError as error:
        result = error
    return result, script, clock, events


# -- the errors the HTTP layer raises ------------------------------------------------


def connect() -> ConnectError:
    return ConnectError("connection refused", method="POST", url=URL)


def pool_timeout() -> PoolTimeoutError:
    return PoolTimeoutError("no connection free", method="POST", url=URL)


def read_timeout() -> RequestTimeoutError:
    return RequestTimeoutError("read timed out", method="POST", url=URL, request_sent=True)


def write_timeout() -> RequestTimeoutError:
    return RequestTimeoutError("write timed out", method="POST", url=URL, request_sent=False)


def dropped() -> ProtocolError:
    return ProtocolError("server disconnected", method="POST", url=URL, request_sent=True)


def status(code: int, *, retry_after: float | None = None) -> VortextError:
    fields: dict[str, Any] = {"method": "POST", "url": URL, "headers": {}, "body": b"{}"}
    if code == 429:
        return RateLimitedError(code, retry_after=retry_after, **fields)
    if code >= 500:
        return ServerError(code, certainly_not_sent=code == 503, retry_after=retry_after, **fields)
    classes = {400: BadRequestError, 401: AuthenticationError, 403: AuthenticationError}
    classes[404] = NotFoundError
    return classes.get(code, UnexpectedStatusError)(code, **fields)


def uncertain(cause: VortextError | None = None) -> UncertainSendError:
    return UncertainSendError("the sms", cause if cause is not None else read_timeout())


def invalid_answer() -> InvalidResponseError:
    return InvalidResponseError("not JSON", body=b"<html>")


# -- RetryPolicy ---------------------------------------------------------------------


def test_policy_defaults() -> None:
    policy = RetryPolicy()
    assert (policy.attempts, policy.timeout, policy.initial_wait, policy.max_wait) == (
        5,
        60.0,
        0.25,
        10.0,
    )
    assert (policy.jitter, policy.max_retry_after, policy.retry_uncertain_sends) == (
        1.0,
        60.0,
        False,
    )
    assert RetryPolicy.no_retries() == RetryPolicy(attempts=1)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("attempts", 0),
        ("attempts", -1),
        ("attempts", 2.5),
        ("attempts", True),
        ("attempts", "3"),
        ("timeout", -1.0),
        ("timeout", math.nan),
        ("initial_wait", -0.1),
        ("initial_wait", math.inf),
        ("max_wait", math.nan),
        ("max_wait", "10"),
        ("jitter", -1),
        ("jitter", math.inf),
        ("max_retry_after", -5),
        ("max_retry_after", None),
        ("retry_uncertain_sends", "yes"),
        ("retry_uncertain_sends", 1),
    ],
)
def test_a_bad_policy_value_is_refused_naming_the_field(field: str, value: Any) -> None:
    with pytest.raises(ConfigurationError, match=f"RetryPolicy {field} .*{value!r}"):
        RetryPolicy(**{field: value})


def test_a_policy_may_have_no_deadline_and_no_waits() -> None:
    policy = RetryPolicy(timeout=math.inf, initial_wait=0, jitter=0, max_wait=0)
    assert policy.backoff(30, random.Random()) == 0


def test_policy_is_frozen_and_keyword_only() -> None:
    with pytest.raises(AttributeError):
        RetryPolicy().attempts = 3  # type: ignore[misc]
    with pytest.raises(TypeError):
        RetryPolicy(3)  # type: ignore[call-arg]


@settings(max_examples=200)
@given(
    initial=st.floats(0, 5),
    cap=st.floats(0, 30),
    jitter=st.floats(0, 3),
    retry_number=st.integers(1, 2000),
    seed=st.integers(0, 2**32),
)
def test_backoff_is_exponential_jittered_and_capped(
    initial: float, cap: float, jitter: float, retry_number: int, seed: int
) -> None:
    policy = RetryPolicy(initial_wait=initial, max_wait=cap, jitter=jitter)
    wait = policy.backoff(retry_number, random.Random(seed))
    base = min(cap, initial * 2.0 ** min(retry_number - 1, 64))
    assert base <= wait <= min(cap, base + jitter)


def test_backoff_without_jitter_doubles_up_to_the_cap() -> None:
    policy = RetryPolicy(initial_wait=0.25, max_wait=3, jitter=0)
    rng = random.Random(0)
    assert [policy.backoff(n, rng) for n in range(1, 7)] == [0.25, 0.5, 1.0, 2.0, 3.0, 3.0]


# -- which errors are retried ----------------------------------------------------------

ErrorFactory = Callable[[], VortextError]

SEND_RETRIED: list[tuple[str, ErrorFactory]] = [
    ("connect failure", connect),
    ("pool timeout", pool_timeout),
    ("429", lambda: status(429)),
    ("503", lambda: status(503)),
]
SEND_NOT_RETRIED: list[tuple[str, ErrorFactory]] = [
    ("uncertain (read timeout)", uncertain),
    ("uncertain (500)", lambda: uncertain(status(500))),
    ("uncertain (dropped)", lambda: uncertain(dropped())),
    ("500 not wrapped", lambda: status(500)),
    ("502 not wrapped", lambda: status(502)),
    ("read timeout not wrapped", read_timeout),
    ("write timeout", write_timeout),
    ("400", lambda: status(400)),
    ("401", lambda: status(401)),
    ("403", lambda: status(403)),
    ("404", lambda: status(404)),
    ("408", lambda: status(408)),
    ("409", lambda: status(409)),
    ("invalid answer", invalid_answer),
    ("invalid input", lambda: InvalidRequestError("phone_number", "x", "not a number")),
    ("wait budget", lambda: WaitBudgetExceededError(5.0, 1.0)),
    ("client closed", lambda: ClientClosedError("closed")),
    ("limiter down", lambda: LimiterUnavailableError("redis://h", OSError("down"))),
]
READ_RETRIED: list[tuple[str, ErrorFactory]] = [
    ("connect failure", connect),
    ("pool timeout", pool_timeout),
    ("read timeout", read_timeout),
    ("write timeout", write_timeout),
    ("dropped connection", dropped),
    *((str(code), lambda code=code: status(code)) for code in (408, 429, 500, 502, 503, 504)),
]
READ_NOT_RETRIED: list[tuple[str, ErrorFactory]] = [
    *((str(code), lambda code=code: status(code)) for code in (400, 401, 403, 404, 409)),
    ("invalid answer", invalid_answer),
    ("client closed", lambda: ClientClosedError("closed")),
]


def _ids(cases: list[tuple[str, ErrorFactory]]) -> dict[str, Any]:
    return {"argvalues": [f for _, f in cases], "ids": [name for name, _ in cases]}


@pytest.mark.parametrize("make_error", **_ids(SEND_RETRIED))
async def test_a_send_certainly_not_sent_is_retried(make_error: ErrorFactory) -> None:
    result, script, clock, events = await run([make_error(), "sent"])
    assert result == "sent"
    assert script.calls == 2
    assert clock.waits == [0.25]
    assert [(e.attempt, e.wait, e.operation) for e in events] == [(1, 0.25, "send")]


@pytest.mark.parametrize("make_error", **_ids(SEND_NOT_RETRIED))
async def test_a_send_not_certainly_refused_is_never_retried(make_error: ErrorFactory) -> None:
    error = make_error()
    result, script, clock, events = await run([error, "sent twice!"])
    assert result is error
    assert error.attempts == 1
    assert script.calls == 1
    assert clock.waits == []
    assert events == []


@pytest.mark.parametrize(
    "make_error",
    [uncertain, lambda: uncertain(status(500)), lambda: uncertain(invalid_answer())],
    ids=["read timeout", "500", "invalid answer"],
)
async def test_an_uncertain_send_is_retried_only_when_opted_in(make_error: ErrorFactory) -> None:
    policy = RetryPolicy(jitter=0, retry_uncertain_sends=True)
    result, script, clock, _ = await run([make_error(), "sent"], policy=policy)
    assert result == "sent"
    assert script.calls == 2
    assert clock.waits == [0.25]


async def test_opting_in_does_not_retry_a_4xx_send() -> None:
    policy = RetryPolicy(jitter=0, retry_uncertain_sends=True)
    error = status(400)
    result, script, _, _ = await run([error, "sent"], policy=policy)
    assert result is error
    assert script.calls == 1


@pytest.mark.parametrize("make_error", **_ids(READ_RETRIED))
async def test_a_read_is_retried_on_every_transient_failure(make_error: ErrorFactory) -> None:
    result, script, clock, events = await run([make_error(), "status"], operation="read")
    assert result == "status"
    assert script.calls == 2
    assert clock.waits == [0.25]
    assert [e.operation for e in events] == ["read"]


@pytest.mark.parametrize("make_error", **_ids(READ_NOT_RETRIED))
async def test_a_read_is_not_retried_on_a_definite_refusal(make_error: ErrorFactory) -> None:
    error = make_error()
    result, script, clock, _ = await run([error, "status"], operation="read")
    assert result is error
    assert script.calls == 1
    assert clock.waits == []


def test_should_retry_ignores_anything_but_our_errors() -> None:
    for operation in ("send", "read"):
        assert not should_retry(OSError("boom"), operation, RetryPolicy())
        assert not should_retry(asyncio.CancelledError(), operation, RetryPolicy())


async def test_other_exceptions_propagate_untouched_and_are_not_retried() -> None:
    clock = RecordingClock()
    script = Script([KeyError("bug"), "never"], clock=clock)
    with pytest.raises(KeyError, match="bug"):
        await call_with_retries(script, operation="read", policy=RetryPolicy(), clock=clock)
    assert script.calls == 1
    assert clock.waits == []


# -- waits, counts, deadline -------------------------------------------------------------


async def test_retries_run_out_at_attempts_with_the_last_error_and_its_count() -> None:
    errors = [connect() for _ in range(5)]
    result, script, clock, events = await run([*errors, "too late"])
    assert result is errors[-1]
    assert errors[-1].attempts == 5
    assert "after 5 attempts" in str(errors[-1])
    assert script.calls == 5
    assert clock.waits == [0.25, 0.5, 1.0, 2.0]
    assert [e.attempt for e in events] == [1, 2, 3, 4]
    assert [e.error for e in events] == errors[:4]
    assert [e.wait for e in events] == clock.waits


async def test_the_error_raised_is_the_last_attempts_one() -> None:
    last = status(404)
    result, script, _, _ = await run([connect(), status(503), last, "never"])
    assert result is last
    assert last.attempts == 3
    assert script.calls == 3


async def test_success_after_failures_returns_the_value() -> None:
    result, script, clock, events = await run([status(429), pool_timeout(), "sent"])
    assert result == "sent"
    assert script.calls == 3
    assert clock.waits == [0.25, 0.5]
    assert len(events) == 2


async def test_no_retries_policy_makes_one_attempt() -> None:
    error = connect()
    result, script, clock, _ = await run([error, "sent"], policy=RetryPolicy.no_retries())
    assert result is error
    assert error.attempts == 1
    assert (script.calls, clock.waits) == (1, [])


async def test_each_wait_is_capped_at_max_wait() -> None:
    policy = RetryPolicy(attempts=6, initial_wait=1, max_wait=3, jitter=0.5)
    result, _, clock, _ = await run([connect()] * 6, policy=policy, rng=random.Random(7))
    assert isinstance(result, ConnectError)
    assert len(clock.waits) == 5
    assert all(w <= 3 for w in clock.waits)
    assert clock.waits[-2:] == [3, 3]  # base already at the cap: jitter cannot exceed it


async def test_jitter_spreads_waits_within_its_bound() -> None:
    policy = RetryPolicy(attempts=2, initial_wait=1, jitter=1)
    waits = set()
    for seed in range(20):
        _, _, clock, _ = await run([connect(), "ok"], policy=policy, rng=random.Random(seed))
        (wait,) = clock.waits
        assert 1 <= wait <= 2
        waits.add(wait)
    assert len(waits) == 20  # not a constant: callers do not retry in lockstep


async def test_the_deadline_stops_before_a_wait_that_would_end_past_it() -> None:
    # Waits 0.25, 0.5 (0.75 in all); the next (1.0) would end at 1.75 > 1.5.
    policy = RetryPolicy(attempts=10, timeout=1.5, jitter=0)
    errors = [connect() for _ in range(10)]
    result, _script, clock, _ = await run(errors, policy=policy)
    assert result is errors[2]
    assert errors[2].attempts == 3
    assert clock.waits == [0.25, 0.5]


async def test_a_wait_ending_exactly_at_the_deadline_is_taken() -> None:
    policy = RetryPolicy(attempts=10, timeout=0.75, jitter=0)
    result, _script, clock, _ = await run([connect(), connect(), "ok"], policy=policy)
    assert result == "ok"
    assert clock.waits == [0.25, 0.5]


async def test_the_deadline_counts_the_attempts_own_time_on_the_injected_clock() -> None:
    # Each attempt takes 2 s of virtual time: after attempt 1 (t=2) a 0.25 wait ends at
    # 2.25 <= 5; after attempt 2 (t=4.25) a 0.5 wait would end at 4.75 <= 5; after
    # attempt 3 (t=6.75) nothing more starts.
    policy = RetryPolicy(attempts=10, timeout=5, jitter=0)
    result, _script, clock, _ = await run(
        [read_timeout()] * 10, operation="read", policy=policy, duration=2
    )
    assert isinstance(result, RequestTimeoutError)
    assert result.attempts == 3
    assert clock.waits == [0.25, 0.5]


async def test_an_infinite_timeout_leaves_only_the_attempt_count() -> None:
    policy = RetryPolicy(attempts=4, timeout=math.inf, initial_wait=1000, max_wait=1000, jitter=0)
    _result, script, clock, _ = await run([connect()] * 4, policy=policy)
    assert script.calls == 4
    assert clock.waits == [1000, 1000, 1000]


async def test_the_deadline_starts_with_the_call_not_with_the_first_failure() -> None:
    # The first attempt alone takes the whole budget: no retry.
    policy = RetryPolicy(timeout=3, jitter=0)
    result, script, _clock, _ = await run([connect(), "ok"], policy=policy, duration=3)
    assert isinstance(result, ConnectError)
    assert script.calls == 1


# -- Retry-After ----------------------------------------------------------------------


async def test_retry_after_of_a_429_is_waited_exactly() -> None:
    result, _script, clock, events = await run([status(429, retry_after=7), "sent"])
    assert result == "sent"
    assert clock.waits == [7.0]
    assert events[0].wait == 7.0


async def test_retry_after_of_a_503_is_obeyed_too() -> None:
    result, _, clock, _ = await run([status(503, retry_after=2.5), "sent"])
    assert result == "sent"
    assert clock.waits == [2.5]


async def test_a_retry_after_of_zero_retries_at_once() -> None:
    result, _, clock, _ = await run([status(429, retry_after=0), "sent"])
    assert result == "sent"
    assert clock.waits == [0.0]


async def test_a_429_without_retry_after_backs_off() -> None:
    result, _, clock, _ = await run([status(429), status(429), "sent"])
    assert result == "sent"
    assert clock.waits == [0.25, 0.5]


async def test_a_retry_after_at_the_cap_is_waited() -> None:
    policy = RetryPolicy(jitter=0, max_retry_after=60, timeout=math.inf)
    result, _, clock, _ = await run([status(429, retry_after=60), "sent"], policy=policy)
    assert result == "sent"
    assert clock.waits == [60.0]


@pytest.mark.parametrize("operation", ["send", "read"])
async def test_a_retry_after_over_the_cap_raises_at_once_with_its_value(operation: str) -> None:
    error = status(429, retry_after=3600)
    result, script, clock, events = await run([error, "sent"], operation=operation)
    assert result is error
    assert isinstance(result, RateLimitedError)
    assert result.retry_after == 3600
    assert result.attempts == 1
    assert (script.calls, clock.waits, events) == (1, [], [])


async def test_a_retry_after_beyond_the_deadline_is_not_waited() -> None:
    policy = RetryPolicy(timeout=10, max_retry_after=60)
    error = status(429, retry_after=30)
    result, _script, clock, _ = await run([error, "sent"], policy=policy)
    assert result is error
    assert clock.waits == []


async def test_retry_after_on_the_cause_of_an_opted_in_uncertain_send_is_obeyed() -> None:
    policy = RetryPolicy(jitter=0, retry_uncertain_sends=True)
    cause = ServerError(502, method="POST", url=URL, headers={}, body=b"", retry_after=4.0)
    result, _, clock, _ = await run([uncertain(cause), "sent"], policy=policy)
    assert result == "sent"
    assert clock.waits == [4.0]


# -- observability -------------------------------------------------------------------


async def test_without_a_hook_each_retry_is_logged_with_attempt_wait_and_cause(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    errors = [connect(), status(503), status(429, retry_after=3)]
    clock = RecordingClock()
    with pytest.raises(VortextError) as raised:
        await call_with_retries(
            Script(errors, clock=clock),
            operation="send",
            policy=RetryPolicy(attempts=3, jitter=0),
            clock=clock,
        )
    assert raised.value is errors[-1]
    records = [r for r in caplog.records if r.name == "vortext_async.retry"]
    # Two retries: two lines (the final failure is raised, not logged as a retry).
    assert [r.levelno for r in records] == [logging.DEBUG, logging.DEBUG]
    first, second = (r.getMessage() for r in records)
    assert "send attempt 1 of 3" in first
    assert "0.250 s" in first
    assert "ConnectError" in first
    assert "connection refused" in first
    assert "send attempt 2 of 3" in second
    assert "0.500 s" in second
    assert "503" in second
    assert [(r.vortext_attempt, r.vortext_wait) for r in records] == [(1, 0.25), (2, 0.5)]  # type: ignore[attr-defined]


async def test_a_hook_reports_each_retry_instead_of_the_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    _, _, _, events = await run([connect(), status(503), "sent"])
    assert [event.attempt for event in events] == [1, 2]
    assert [r for r in caplog.records if r.name == "vortext_async.retry"] == []


async def test_nothing_is_logged_without_a_retry(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    await run(["sent"])
    await run([status(400)])
    assert [r for r in caplog.records if r.name.startswith("vortext_async")] == []


async def test_a_failing_hook_does_not_change_the_outcome(
    caplog: pytest.LogCaptureFixture,
) -> None:
    clock = RecordingClock()
    script = Script([connect(), "sent"], clock=clock)

    def hook(event: RetryEvent) -> None:
        raise RuntimeError("hook bug")

    result = await call_with_retries(
        script, operation="send", policy=NO_JITTER, clock=clock, on_retry=hook
    )
    assert result == "sent"
    assert any("on_retry hook raised" in r.getMessage() for r in caplog.records)


# -- cancellation ----------------------------------------------------------------------


class BlockingClock(RecordingClock):
    """A clock whose sleeps never end by themselves (the test cancels them)."""

    def __init__(self) -> None:
        super().__init__()
        self.sleeping = asyncio.Event()

    async def sleep(self, seconds: float) -> None:
        self.waits.append(seconds)
        self.sleeping.set()
        await asyncio.Future()


async def test_cancelling_during_a_wait_stops_at_once() -> None:
    clock = BlockingClock()
    script = Script([connect(), "sent"], clock=clock)
    task = asyncio.create_task(
        call_with_retries(script, operation="send", policy=NO_JITTER, clock=clock)
    )
    await clock.sleeping.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert script.calls == 1  # no attempt after the cancellation


async def test_cancelling_during_an_attempt_is_not_retried() -> None:
    clock = RecordingClock()
    started = asyncio.Event()
    calls = 0

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        started.set()
        await asyncio.Future()
        return "never"

    task = asyncio.create_task(
        call_with_retries(attempt, operation="read", policy=RetryPolicy(), clock=clock)
    )
    await started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 1
    assert clock.waits == []


async def test_cancelling_a_later_attempt_is_not_retried_either() -> None:
    clock = RecordingClock()
    calls = 0
    second_started = asyncio.Event()

    async def attempt() -> str:
        nonlocal calls
        calls += 1
        if calls == 1:
            raise connect()
        second_started.set()
        await asyncio.Future()
        return "never"

    task = asyncio.create_task(
        call_with_retries(attempt, operation="send", policy=NO_JITTER, clock=clock)
    )
    await second_started.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert calls == 2
    assert clock.waits == [0.25]


# -- property ----------------------------------------------------------------------------

ERRORS: list[ErrorFactory] = [
    connect,
    pool_timeout,
    read_timeout,
    dropped,
    uncertain,
    invalid_answer,
    *(lambda code=code: status(code) for code in (400, 404, 408, 429, 500, 503, 504)),
    lambda: status(429, retry_after=2),
    lambda: status(429, retry_after=100),
    lambda: status(503, retry_after=0.5),
]

outcome_st = st.one_of(st.just("ok"), st.sampled_from(ERRORS))
policy_st = st.builds(
    RetryPolicy,
    attempts=st.integers(1, 6),
    timeout=st.sampled_from([0.0, 1.0, 5.0, 30.0, math.inf]),
    initial_wait=st.sampled_from([0.0, 0.1, 0.25, 1.0]),
    max_wait=st.sampled_from([0.5, 2.0, 10.0]),
    jitter=st.sampled_from([0.0, 0.3, 1.0]),
    max_retry_after=st.sampled_from([1.0, 60.0]),
    retry_uncertain_sends=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(
    outcomes=st.lists(outcome_st, min_size=1, max_size=8),
    policy=policy_st,
    operation=st.sampled_from(["send", "read"]),
    duration=st.sampled_from([0.0, 0.5, 3.0]),
    seed=st.integers(0, 1000),
)
def test_any_sequence_ends_in_one_outcome_within_the_policy(
    outcomes: list[Any], policy: RetryPolicy, operation: Any, duration: float, seed: int
) -> None:
    made = [o if o == "ok" else o() for o in outcomes] + ["ok"] * policy.attempts
    result, script, clock, events = asyncio.run(
        run(made, operation=operation, policy=policy, duration=duration, rng=random.Random(seed))
    )
    tried = made[: script.calls]
    # At most `attempts`; every attempt but the last failed with a retryable error.
    assert 1 <= script.calls <= policy.attempts
    assert all(
        isinstance(o, VortextError) and should_retry(o, operation, policy) for o in tried[:-1]
    )
    # The outcome is the last attempt's: its value, or its error with the count; but a
    # send's refusal after an attempt that may have been accepted stays uncertain.
    earlier_uncertain = operation == "send" and any(
        not o.certainly_not_sent for o in tried[:-1] if isinstance(o, VortextError)
    )
    if tried[-1] == "ok":
        assert result == "ok"
    else:
        if earlier_uncertain and tried[-1].certainly_not_sent:
            assert isinstance(result, UncertainSendError)
            assert result.cause is tried[-1]
            assert result.attempts == script.calls
            result = result.cause
        assert result is tried[-1]
        assert isinstance(result, VortextError)
        assert result.attempts == script.calls
        if should_retry(result, operation, policy) and script.calls < policy.attempts:
            # Stopped early: a Retry-After over the cap, or the next wait would have
            # ended past the deadline (whatever its jitter).
            retry_after = getattr(getattr(result, "cause", result), "retry_after", None)
            if retry_after is not None:
                assert retry_after > policy.max_retry_after or (
                    clock.now + retry_after * NS > START * NS + policy.timeout * NS
                )
            else:
                base = min(policy.max_wait, policy.initial_wait * 2.0 ** (script.calls - 1))
                longest = min(policy.max_wait, base + policy.jitter)
                assert clock.now + longest * NS > START * NS + policy.timeout * NS
    # One event and one wait per retry, and the waits are the events' waits.
    assert len(events) == len(clock.waits) == script.calls - 1
    assert [e.wait for e in events] == clock.waits
    assert [e.attempt for e in events] == list(range(1, script.calls))
    # No wait went past the deadline.
    waited = 0.0
    for index, wait in enumerate(clock.waits):
        waited += wait
        assert duration * (index + 1) + waited <= policy.timeout + 1e-9
    # A send is only ever retried after a certain refusal, unless opted in.
    if operation == "send" and not policy.retry_uncertain_sends:
        assert all(o.certainly_not_sent for o in tried[:-1])
