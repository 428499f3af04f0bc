"""What may be tried again, and when: the retry policy (tenacity underneath).

It knows no HTTP: it sees a clock and the :mod:`vortext_async._errors` classes,
and the rule that matters is about sends.  A send is retried only when it certainly
did not reach the server; an uncertain one is not, unless the caller opted in to
at-least-once delivery.  Reads are idempotent and retried on any transient failure.
"""

from __future__ import annotations

import logging
import math
import random
from collections.abc import Awaitable, Callable
from typing import Literal, TypeVar

import attrs
import tenacity

from ._clock import Clock
from ._errors import (
    ConfigurationError,
    ConnectError,
    HTTPStatusError,
    PoolTimeoutError,
    RateLimitedError,
    ServerError,
    TransportError,
    UncertainSendError,
    VortextError,
)

__all__ = ["RetryEvent", "RetryPolicy", "call_with_retries", "should_retry"]

logger = logging.getLogger("vortext_async")

T = TypeVar("T")
Operation = Literal["send", "read"]


def _positive(_instance: object, attribute: attrs.Attribute[float], value: float) -> None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"RetryPolicy {attribute.name} must be >= 0, got {value!r}")
    if math.isinf(value) and attribute.name != "timeout":
        raise ConfigurationError(f"RetryPolicy {attribute.name} must be finite, got {value!r}")


def _attempts(_instance: object, _attribute: object, value: int) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ConfigurationError(f"RetryPolicy attempts must be an integer >= 1, got {value!r}")


@attrs.frozen(kw_only=True)
class RetryPolicy:
    """How hard to try: the numbers of the retry layer, in one place.

    - ``attempts``: requests per call at most (1: no retries);
    - ``timeout``: seconds per call, waits included; no wait is started that would
      end past it;
    - ``initial_wait``, ``max_wait``: exponential backoff from ``initial_wait``,
      doubling, each wait capped at ``max_wait``, plus up to ``jitter`` seconds of
      random jitter;
    - ``max_retry_after``: a ``Retry-After`` longer than this raises at once;
    - ``retry_uncertain_sends``: also resend sends that may have been accepted
      (at-least-once: **may send an SMS twice**).
    """

    attempts: int = attrs.field(default=5, validator=_attempts)
    timeout: float = attrs.field(default=60.0, validator=_positive)
    initial_wait: float = attrs.field(default=0.25, validator=_positive)
    max_wait: float = attrs.field(default=10.0, validator=_positive)
    jitter: float = attrs.field(default=0.5, validator=_positive)
    max_retry_after: float = attrs.field(default=60.0, validator=_positive)
    retry_uncertain_sends: bool = False

    @classmethod
    def no_retries(cls) -> RetryPolicy:
        """One attempt per call."""
        return cls(attempts=1)

    def backoff(self, retry_number: int, rng: random.Random) -> float:
        """The wait before retry ``retry_number`` (1 for the first retry)."""
        base = min(self.max_wait, self.initial_wait * 2 ** (retry_number - 1))
        return float(min(self.max_wait, base + rng.uniform(0, self.jitter)))


@attrs.frozen
class RetryEvent:
    """A retry about to happen: passed to ``on_retry`` hooks and logged."""

    attempt: int
    """The attempt that failed (1 for the first)."""
    wait: float
    """Seconds before the next attempt."""
    error: VortextError
    operation: Operation


def should_retry(error: BaseException, operation: Operation, policy: RetryPolicy) -> bool:
    """Whether ``error`` allows another attempt of ``operation``."""
    if not isinstance(error, VortextError):
        return False
    if operation == "send":
        if isinstance(error, UncertainSendError):
            return policy.retry_uncertain_sends
        return error.certainly_not_sent and (
            isinstance(error, (ConnectError, PoolTimeoutError, RateLimitedError))
            or (isinstance(error, ServerError) and error.certainly_not_sent)
        )
    if isinstance(error, TransportError):
        return True
    return isinstance(error, HTTPStatusError) and (
        error.status_code in (408, 429) or error.status_code >= 500
    )


def _retry_after(error: BaseException) -> float | None:
    if isinstance(error, UncertainSendError):
        error = error.cause
    value = getattr(error, "retry_after", None)
    return float(value) if isinstance(value, int | float) else None


class _GiveUp(Exception):
    """Raised inside the retry loop to stop with the original error."""


async def call_with_retries(
    attempt: Callable[[], Awaitable[T]],
    *,
    operation: Operation,
    policy: RetryPolicy,
    clock: Clock,
    on_retry: Callable[[RetryEvent], object] | None = None,
    rng: random.Random | None = None,
) -> T:
    """Run ``attempt`` until it succeeds or ``policy`` says stop; raise the last error.

    The error raised carries ``attempts``, the number of requests made.
    """
    rng = rng if rng is not None else random.Random()
    deadline = clock.now_ns() + (
        round(policy.timeout * 1e9) if math.isfinite(policy.timeout) else 2**62
    )
    attempts = 0

    def wait(state: tenacity.RetryCallState) -> float:
        assert state.outcome is not None
        error = state.outcome.exception()
        assert isinstance(error, VortextError)
        retry_after = _retry_after(error)
        if retry_after is not None:
            if retry_after > policy.max_retry_after:
                raise _GiveUp from error
            pause = retry_after
        else:
            pause = policy.backoff(state.attempt_number, rng)
        if clock.now_ns() + round(pause * 1e9) > deadline:
            raise _GiveUp from error
        event = RetryEvent(state.attempt_number, pause, error, operation)
        logger.warning(
            "%s attempt %d failed, retrying in %.3f s: %s",
            operation,
            event.attempt,
            pause,
            error,
        )
        if on_retry is not None:
            on_retry(event)
        return pause

    retrying = tenacity.AsyncRetrying(
        stop=tenacity.stop_after_attempt(policy.attempts),
        wait=wait,
        retry=tenacity.retry_if_exception(lambda error: should_retry(error, operation, policy)),
        sleep=clock.sleep,
        reraise=True,
    )
    try:
        async for try_ in retrying:
            with try_:
                attempts += 1
                return await attempt()
    except _GiveUp as give_up:
        error = give_up.__cause__
        assert isinstance(error, VortextError)
        error.attempts = attempts
        raise error from error.__cause__
    except VortextError as error:
        error.attempts = attempts
        raise
    raise AssertionError("unreachable")  # pragma: no cover
