"""What may be tried again, and when: the retry policy (tenacity underneath).

It knows no HTTP: it sees a clock and the :mod:`vortext_async._errors` classes,
and the rule that matters is about sends.  A send is retried only when it certainly
did not reach the server; an uncertain one is not, unless the caller opted in to
at-least-once delivery.  Reads are idempotent and retried on any transient failure.

Time comes from the injected :class:`~vortext_async._clock.Clock` only (tenacity's
own ``stop_after_delay`` reads ``time.monotonic``), so a virtual clock makes every
wait instant in tests.  A :class:`Closing` set by the client's close ends the waits
between attempts at once, with the outcome the attempts made so far allow.
"""

from __future__ import annotations

import asyncio
import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import attrs
import tenacity

from ._clock import Clock
from ._errors import ClientClosedError, ConfigurationError, UncertainSendError, VortextError

__all__ = ["Closing", "RetryEvent", "RetryPolicy", "call_with_retries", "should_retry"]

logger = logging.getLogger("vortext_async.retry")

T = TypeVar("T")
Operation = Literal["send", "read"]

_NS = 1_000_000_000
_RNG = random.Random()


def _seconds(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(
            f"RetryPolicy {attribute.name} must be a number of seconds >= 0, got {value!r}"
        )
    if math.isinf(value) and attribute.name != "timeout":
        raise ConfigurationError(f"RetryPolicy {attribute.name} must be finite, got {value!r}")


def _attempts(_instance: object, _attribute: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RetryPolicy attempts must be an integer >= 1, got {value!r}")


def _flag(_instance: object, attribute: attrs.Attribute[bool], value: bool) -> None:
    if not isinstance(value, bool):
        raise ConfigurationError(
            f"RetryPolicy {attribute.name} must be True or False, got {value!r}"
        )


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try: every number of the retry layer, in one place."""

    attempts: int = attrs.field(default=5, validator=_attempts)
    """Requests per call at most (1: no retries)."""
    timeout: float = attrs.field(default=60.0, validator=_seconds)
    """Seconds per call, waits included (``math.inf``: none).  It is checked before each
    wait: no wait is started that would end past it, and an attempt in flight is never
    cut by it (the HTTP timeouts bound each attempt)."""
    initial_wait: float = attrs.field(default=0.25, validator=_seconds)
    """The first backoff wait in seconds, doubled after each failure, plus a random jitter
    of up to ``jitter`` **seconds**, the whole wait capped at ``max_wait``."""
    max_wait: float = attrs.field(default=10.0, validator=_seconds)
    """The longest backoff wait in seconds, jitter included."""
    jitter: float = attrs.field(default=1.0, validator=_seconds)
    """Seconds of random jitter added to each backoff wait, at most."""
    max_retry_after: float = attrs.field(default=60.0, validator=_seconds)
    """A server's ``Retry-After`` (429, or 503) is waited exactly, up to this many
    seconds; a longer one raises at once, its value on the error (``retry_after``)."""
    retry_uncertain_sends: bool = attrs.field(default=False, validator=_flag)
    """Also resend sends that may have been accepted (at-least-once: **may send an SMS
    twice**)."""

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """One attempt per call: every failure is raised at once."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry), in seconds."""
        # min() before the power would overflow for huge retry numbers.
        doublings = min(retry_number - 1, 64)
        base = min(self.max_wait, self.initial_wait * 2.0**doublings)
        return float(min(self.max_wait, base + rng.uniform(0, self.jitter)))


@attrs.frozen
class RetryEvent:
    """A retry about to happen: passed to ``on_retry`` hooks, and logged."""

    attempt: int
    """The attempt that failed (1 for the first)."""
    wait: float
    """Seconds before the next attempt."""
    error: VortextError
    """Why the attempt failed."""
    operation: Operation
    """``"send"`` (POST /sms) or ``"read"`` (status, SMS detail)."""


def should_retry(error: BaseException, operation: Operation, policy: RetryPolicy) -> bool:
    """Whether ``error`` allows another attempt of ``operation`` (time and count aside).

    The error says it (the HTTP layer sets the facts where it raises): a send only
    when it is :attr:`~VortextError.safe_to_resend` (it certainly did not go out: a
    connect failure, a pool timeout, a 429 or a 503); an uncertain one only with
    ``policy.retry_uncertain_sends``.  A read when the error is
    :attr:`~VortextError.transient` (any transport error, 408, 429, 5xx).
    """
    if not isinstance(error, VortextError):
        return False
    if operation == "send":
        if isinstance(error, UncertainSendError):
            return policy.retry_uncertain_sends
        return error.safe_to_resend
    return error.transient


class _Stopped(Exception):
    """Raised in place of a wait between attempts that a :class:`Closing` ended."""


class Closing:
    """A close in progress, as the retry layer sees it: no more waits between attempts.

    The client passes one to every call (``call_with_retries(closing=...)``) and
    :meth:`set` s it when its close starts.  A call waiting to retry then stops at once,
    and a call about to wait stops instead of waiting, each with the outcome its
    attempts so far allow (see :func:`call_with_retries`).  :meth:`wait_stopped`
    returns once every call so stopped has raised.
    """

    __slots__ = ("_event", "_held", "_idle")

    def __init__(self) -> None:
        self._event = asyncio.Event()
        self._held = 0  # calls in a wait, or stopped and not yet raised
        self._idle = asyncio.Event()
        self._idle.set()

    def is_set(self) -> bool:
        """Whether closing has started."""
        return self._event.is_set()

    def set(self) -> None:
        """Closing starts: end every wait between attempts, now and from now on."""
        self._event.set()

    async def wait_stopped(self) -> None:
        """Until no call waits between attempts or is still raising after its stop."""
        await self._idle.wait()

    def _hold(self) -> None:
        self._held += 1
        self._idle.clear()

    def _release(self) -> None:
        self._held -= 1
        if not self._held:
            self._idle.set()

    async def _sleep(self, clock: Clock, seconds: float) -> None:
        """``clock.sleep(seconds)``, unless closing starts first: then :class:`_Stopped`."""
        if self._event.is_set():
            raise _Stopped
        sleeper = asyncio.ensure_future(clock.sleep(seconds))
        watcher = asyncio.ensure_future(self._event.wait())
        try:
            await asyncio.wait((sleeper, watcher), return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            watcher.cancel()
            await asyncio.wait((sleeper, watcher))  # neither outlives the wait
        if self._event.is_set():
            raise _Stopped
        sleeper.result()  # the clock's own error, if it had one


def _closed_outcome(
    operation: Operation, history: list[VortextError], last: VortextError
) -> VortextError:
    """What a call that closing stopped before attempt ``len(history) + 1`` raises.

    A read, or a send whose every attempt certainly went unprocessed: ``ClientClosedError``
    (not sent).  A send with an attempt that may have been accepted (opted-in resends of
    uncertain sends): ``UncertainSendError``, whatever the later attempts said.
    """
    following = len(history) + 1
    if operation == "send":
        earlier = _first_uncertain(history)
        if earlier is not None:
            number, error = earlier
            closed = ClientClosedError(
                f"the client closed before attempt {following}, "
                f"and attempt {number} may have been accepted"
            )
            closed.__cause__ = last
            return UncertainSendError(getattr(error, "sms", None), closed)
        if isinstance(last, ClientClosedError):
            return last  # refused by the close itself, and rightly so: nothing went out
        return ClientClosedError(
            f"the client closed while the send waited for attempt {following}; "
            "no attempt was processed: it was not sent"
        )
    return ClientClosedError(f"the client closed while the read waited for attempt {following}")


def _first_uncertain(history: list[VortextError]) -> tuple[int, VortextError] | None:
    """The first retried attempt (number, error) that may have been accepted, if any."""
    for number, error in enumerate(history, 1):
        if isinstance(error, UncertainSendError) or not error.certainly_not_sent:
            return number, error
    return None


def _retry_after(error: BaseException | None) -> float | None:
    """The server's ``Retry-After`` carried by ``error`` (or by the cause of an uncertain send)."""
    if isinstance(error, UncertainSendError):
        error = error.cause
    value = error.retry_after if isinstance(error, VortextError) else None
    if isinstance(value, bool) or not isinstance(value, int | float) or math.isnan(value):
        return None
    return float(value)


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    operation: Operation,
    policy: RetryPolicy,
    clock: Clock,
    on_retry: Callable[[RetryEvent], object] | None = None,
    rng: random.Random | None = None,
    closing: Closing | None = None,
) -> T:
    """Await ``attempt()`` until it succeeds or ``policy`` says stop; raise the last error.

    Stops at ``policy.attempts``, before a wait that would end past ``policy.timeout``
    (measured on ``clock`` from the call's start), or at once on a ``Retry-After`` over
    ``policy.max_retry_after``.  The error raised is the last attempt's, with
    ``attempts`` set to the number of attempts made, except for a send an earlier
    attempt of which may have been accepted (opted-in ``retry_uncertain_sends``) and
    a later one refused: that is ``UncertainSendError`` with the refusal as its cause.
    Each retry is passed to ``on_retry``, which reports it (the client logs it);
    without a hook it is logged at DEBUG (logger ``vortext_async.retry``).
    Cancellation propagates at once.

    Once ``closing`` is set, a wait between attempts ends at once (or is not started)
    and the call raises ``ClientClosedError`` chained to the last attempt's error;
    for a send that an earlier attempt may have delivered (``retry_uncertain_sends``),
    ``UncertainSendError`` instead.  So does a send whose next attempt the close refused.
    """
    start = clock.now_ns()
    # Fast path: most calls succeed or fail for good at once, and building tenacity's
    # machinery costs more than a loopback request.
    try:
        return await attempt()
    except VortextError as error:
        if policy.attempts == 1 or not should_retry(error, operation, policy):
            error.attempts = 1
            raise
        first_error: VortextError | None = error
    return await _retry(
        attempt,
        first_error,
        operation=operation,
        policy=policy,
        clock=clock,
        deadline=start + round(policy.timeout * _NS) if math.isfinite(policy.timeout) else None,
        on_retry=on_retry,
        rng=rng if rng is not None else _RNG,
        closing=closing,
    )


async def _retry(
    attempt: Callable[[], Awaitable[T]],
    first_error: VortextError | None,
    *,
    operation: Operation,
    policy: RetryPolicy,
    clock: Clock,
    deadline: int | None,
    on_retry: Callable[[RetryEvent], object] | None,
    rng: random.Random,
    closing: Closing | None,
) -> T:
    """The slow path: tenacity, fed the first attempt's failure as its attempt 1."""

    stop: tenacity.stop.stop_base = tenacity.stop_after_attempt(
        policy.attempts
    ) | _StopOnLongRetryAfter(policy.max_retry_after)
    if deadline is not None:
        stop = stop | _StopPastDeadline(clock, deadline)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        # Only called when a retry will happen (after ``stop`` said go on).
        error = state.outcome.exception() if state.outcome else None
        assert isinstance(error, VortextError)
        history.append(error)
        event = RetryEvent(state.attempt_number, state.upcoming_sleep, error, operation)
        if on_retry is None:
            # DEBUG: one line per retry.  A hook reports it instead (the client logs
            # it once, with the message's key): not twice.
            logger.debug(
                "%s attempt %d of %d failed, retrying in %.3f s: %s: %s",
                operation,
                event.attempt,
                policy.attempts,
                event.wait,
                type(error).__name__,
                error,
                extra={"vortext_attempt": event.attempt, "vortext_wait": event.wait},
            )
        else:
            try:
                on_retry(event)
            except Exception:
                # A broken hook must not turn a send's outcome into something else.
                logger.exception("on_retry hook raised; retrying anyway")

    history: list[VortextError] = []  # the failed attempts that were retried
    held = False  # whether ``closing`` counts this call (waiting, or stopped)

    async def sleep(seconds: float) -> None:
        nonlocal held
        if closing is None:
            await clock.sleep(seconds)
            return
        closing._hold()
        held = True
        await closing._sleep(clock, seconds)
        closing._release()  # waited in full: an attempt is next, not counted
        held = False

    retrying = tenacity.AsyncRetrying(
        stop=stop,
        wait=_WaitRetryAfterOrBackoff(policy, rng),
        retry=tenacity.retry_if_exception(lambda error: should_retry(error, operation, policy)),
        before_sleep=before_sleep,
        sleep=sleep,
        reraise=True,
    )
    made = 0
    try:
        async for try_ in retrying:
            with try_:
                made += 1
                if first_error is not None:
                    error, first_error = first_error, None
                    raise error
                return await attempt()
    except _Stopped:
        stopped = _closed_outcome(operation, history, history[-1])
        stopped.attempts = made
        raise stopped from history[-1]
    except ClientClosedError as error:
        error.attempts = made
        if operation == "send" and history:
            # The close refused a later attempt: say what the earlier ones allow.
            outcome = _closed_outcome(operation, history, error)
            if outcome is not error:
                outcome.attempts = made
                raise outcome from error
        raise
    except VortextError as error:
        error.attempts = made
        earlier = _first_uncertain(history) if operation == "send" else None
        if earlier is not None and error.certainly_not_sent:
            # Opted-in resends of an uncertain send: a later refusal does not undo an
            # earlier attempt that may have been accepted, so the send stays uncertain.
            uncertain = UncertainSendError(getattr(earlier[1], "sms", None), error)
            uncertain.attempts = made
            raise uncertain from error
        raise
    finally:
        if held and closing is not None:
            closing._release()
    raise AssertionError("unreachable: tenacity returns or raises")  # pragma: no cover


def _last_error(state: tenacity.RetryCallState) -> BaseException | None:
    return state.outcome.exception() if state.outcome else None


class _WaitRetryAfterOrBackoff(tenacity.wait.wait_base):
    """The server's ``Retry-After`` exactly when it gave one, else the policy's backoff."""

    def __init__(self, policy: RetryPolicy, rng: random.Random) -> None:
        self.policy = policy
        self.rng = rng

    def __call__(self, retry_state: tenacity.RetryCallState) -> float:
        # tenacity computes the wait before asking ``stop`` (which reads it).
        retry_after = _retry_after(_last_error(retry_state))
        if retry_after is not None:
            return retry_after
        return self.policy.backoff(retry_state.attempt_number, self.rng)


class _StopOnLongRetryAfter(tenacity.stop.stop_base):
    """Stop at once when the server asks for a longer wait than ``max_retry_after``."""

    def __init__(self, max_retry_after: float) -> None:
        self.max_retry_after = max_retry_after

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        retry_after = _retry_after(_last_error(retry_state))
        return retry_after is not None and retry_after > self.max_retry_after


class _StopPastDeadline(tenacity.stop.stop_base):
    """Stop before a wait that would end past ``deadline`` (ns on ``clock``)."""

    def __init__(self, clock: Clock, deadline: int) -> None:
        self.clock = clock
        self.deadline = deadline

    def __call__(self, retry_state: tenacity.RetryCallState) -> bool:
        return self.clock.now_ns() + round(retry_state.upcoming_sleep * _NS) > self.deadline
