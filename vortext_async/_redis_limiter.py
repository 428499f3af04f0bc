"""The rate limiter shared through Redis by every process and host of one account.

Same rule as :class:`~vortext_async._limiter.RateLimiter`: a send takes one token
of every window and each comes back W after its attempt settles.  In Redis, each
window is a sorted set of the tokens not yet back, scored by the instant (Redis
``TIME``, microseconds) they come back:

- one Lua script per acquire checks every window and the shared 429 pause, and
  takes a token of each, all or nothing; otherwise it answers, for each send it
  could not serve, a lower bound of its wait (a token in flight comes back W
  after it settles, so not before now + W), so a send whose ``max_wait`` is too
  short fails at once, as with the in-memory limiter;
- a token is first recorded as back at ``acquire + attempt_timeout + W``
  (provisional, so a process that dies mid-send still frees it, late but surely),
  and moved to ``settle + W`` when the attempt settles, in batches sent by a
  background task, off the send's path;
- in each process only the head of the local FIFO queue talks to Redis;
- time is Redis's own, never the hosts' clocks; host time only measures how long
  an attempt took, which needs no agreement between hosts.

Redis failing: every call is bounded by ``redis_timeout``; any error (refused,
reset, no answer, or an error answer such as READONLY, NOPERM, OOM, MOVED) becomes
:class:`LimiterUnavailableError` (naming the URL without its password) for every
send waiting, or, if given, the ``fallback`` limiter; a waiting send's own
``max_wait`` ends its wait on time even while a call is outstanding (a timer per
such send, on the event loop's clock: Redis I/O takes real time).

Calls given up.  An acquire call that got no answer (a timeout, a reset, a
cancellation) may have run, or may run later: a stopped Redis runs the request
still in its socket buffer when it resumes, after we gave up.  Its grant never
reached us, so nobody would settle it: a phantom token, held until its
provisional bound.  Hence:

- the client names the call's tokens before sending it (``p:<call id>-<j>``), so it
  can free them without having seen the answer (and a call that redis-py sends
  twice over a broken connection takes the same tokens twice, not twice as many);
- every call given up is released as soon as Redis answers again (before this
  process's next acquire, and by a background retry after 1 s, then 2, 4... 30): the
  release removes its tokens if it ran, and sets a tombstone (``x:<call id>``, 20
  minutes) that makes the script grant nothing if it runs after the release.  The
  next acquire also waits for a release the background task has out, so that it
  reaches Redis after it, never on another connection ahead of it;
- a call answered with an error (READONLY, NOPERM, OOM, MOVED) took nothing, as
  Redis refuses the script at its first write at the latest; it is released all
  the same (one cheap call), which also covers an error of the script itself.

Over-grant is thus impossible from our side; what Redis itself can do (a clock
step, a failover) is said in :class:`RedisRateLimiter`.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import os
import secrets
from collections import deque
from contextlib import AbstractAsyncContextManager
from functools import partial
from types import TracebackType
from typing import Any

import attrs

from ._clock import Clock, MonotonicClock
from ._errors import (
    ClientClosedError,
    ConfigurationError,
    LimiterUnavailableError,
    WaitBudgetExceededError,
)
from ._limiter import Limiter, LimiterState, Permit, RateLimit, WindowState
from ._redact import redact_url

__all__ = ["RedisRateLimiter"]

logger = logging.getLogger("vortext_async.limiter")

_NS = 1_000_000_000
_US = 1_000_000

# KEYS: window sets..., pause key, this call's tombstone.  ARGV: member prefix,
# attempt timeout (us), in-flight recheck (us), sends wanted, then (max_sends,
# width us) per window.  Grants as many of the wanted sends as every window
# allows (one token of each per send), all or nothing per send.  Returns
# {granted, re-ask in us, acquired_at_us, paused_until_us, tokens left per
# window..., lower bound of the wait in us of each send not granted...}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local windows = #KEYS - 2
local timeout = tonumber(ARGV[2])
local recheck = tonumber(ARGV[3])
local wanted = tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[windows + 1]) or '0')
if redis.call('EXISTS', KEYS[windows + 2]) == 1 then
  -- its sender gave this call up (no answer in time) and released it already
  return {0, 0, now, paused}
end
local grant = wanted
if paused > now then grant = 0 end
local used = {}
for i = 1, windows do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  used[i] = redis.call('ZCARD', KEYS[i])
  grant = math.max(0, math.min(grant, tonumber(ARGV[3 + 2 * i]) - used[i]))
end
local result = {grant, 0, now, paused}
local rest = wanted - grant
local start = math.max(now, paused)
local bounds = {}
for k = 1, rest do bounds[k] = start end
local in_flight = false
for i = 1, windows do
  local n = tonumber(ARGV[3 + 2 * i])
  local width = tonumber(ARGV[4 + 2 * i])
  if grant > 0 then
    local entries = {}
    for j = 1, grant do
      entries[2 * j - 1] = now + timeout + width
      entries[2 * j] = 'p:' .. ARGV[1] .. '-' .. j
    end
    redis.call('ZADD', KEYS[i], unpack(entries))
    local ttl = math.ceil((timeout + width) / 1000) + 1000
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
  local taken = used[i] + grant
  local free = n - taken
  result[4 + i] = free
  -- The k-th send not granted needs token (k - 1) mod n of those held now,
  -- sorted by when they come back, once more per full turn of n.  A token
  -- back at `score` (settled, or its provisional bound) is free then; one in
  -- flight comes back W after it settles, so not before now + W.
  local needed = math.min(rest, n) - free
  if needed > 0 then
    local held = redis.call('ZRANGE', KEYS[i], 0, needed - 1, 'WITHSCORES')
    for k = 1, rest do
      local turn = math.floor((k - 1) / n)
      local b = (k - 1) % n
      local at = now
      if b >= free then
        local score = tonumber(held[2 * (b - free) + 2])
        at = math.min(score, now + width)
        if k == 1 and score > now + width then in_flight = true end
      end
      at = at + turn * width
      if at > bounds[k] then bounds[k] = at end
    end
  end
end
if rest > 0 then
  local head = bounds[1]
  if in_flight then head = math.max(head, now + recheck) end
  result[2] = head - now
end
for k = 1, rest do result[4 + windows + k] = bounds[k] - now end
return result
"""

# KEYS: window sets..., then tombstones of calls given up.  ARGV: number of
# windows, tombstone lifetime (ms), width us per window, then (kind, member,
# settled_at_us) triples: kind 's' moves a provisional token to back at
# settle + W, 'r' frees it.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local windows = tonumber(ARGV[1])
for j = windows + 3, #ARGV, 3 do
  local kind, member = ARGV[j], ARGV[j + 1]
  local settled = math.min(tonumber(ARGV[j + 2]), now)
  for i = 1, windows do
    local removed = redis.call('ZREM', KEYS[i], member)
    if removed == 1 and kind == 's' then
      local width = tonumber(ARGV[2 + i])
      if settled + width > now then
        redis.call('ZADD', KEYS[i], settled + width, 's' .. string.sub(member, 2))
        local ttl = math.ceil((settled + width - now) / 1000) + 1000
        if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
      end
    end
  end
end
-- after the ZREMs: under maxmemory, Redis refuses only a script's first write
for k = windows + 1, #KEYS do
  redis.call('SET', KEYS[k], '1', 'PX', tonumber(ARGV[2]))
end
return 1
"""

# KEYS: pause key.  ARGV: seconds (us).  Returns the pause's end (us).
_PAUSE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local until_ = now + tonumber(ARGV[1])
local current = tonumber(redis.call('GET', KEYS[1]) or '0')
if current >= until_ then return current end
redis.call('SET', KEYS[1], until_, 'PX', math.ceil(tonumber(ARGV[1]) / 1000) + 1000)
return until_
"""


class _Unavailable(Exception):
    """Redis did not serve a call: the redis-py or OS error, or no answer in time."""


_BATCH = 256  # most local waiters served by one script call
_GIVEN_UP_MAX = 10_000  # calls given up whose release still waits for Redis
_GIVEN_UP_PER_CALL = 1024  # tokens released by one script call
# A send's budget also covers one round trip to Redis: it ends this much after
# max_wait, so that max_wait=0 still gets a token that is free now.
_ROUND_TRIP_GRACE = 0.05
_RETRY_RELEASE = (1.0, 30.0)  # first and longest pause between tries to release them
# How long a given-up call's tombstone lives: longer than Linux keeps
# retransmitting a request already written (tcp_retries2 = 15, about 15 min).
_TOMBSTONE_MS = 20 * 60 * 1000


@attrs.define
class _Waiter:
    future: asyncio.Future[Permit]
    asked_at: int
    deadline: int | None
    max_wait: float | None
    timeout_us: int


@attrs.frozen
class _GivenUp:
    """An acquire call that got no answer: its tokens, if it ran, and its tombstone."""

    tombstone: str
    members: tuple[str, ...]


class _RedisAcquire:
    __slots__ = ("_attempt_timeout", "_fallback", "_limiter", "_max_wait", "_permit")

    def __init__(
        self, limiter: RedisRateLimiter, max_wait: float | None, attempt_timeout: float | None
    ) -> None:
        self._limiter = limiter
        self._max_wait = max_wait
        self._attempt_timeout = attempt_timeout
        self._permit: Permit | None = None
        self._fallback: AbstractAsyncContextManager[Permit] | None = None

    async def __aenter__(self) -> Permit:
        limiter = self._limiter
        started = limiter._clock.now_ns()
        try:
            self._permit = await limiter._acquire(self._max_wait, self._attempt_timeout)
        except _Unavailable as error:
            if limiter.fallback is None:
                raise LimiterUnavailableError(limiter.url, error) from None
            limiter._warn_fallback(error)
            max_wait = self._max_wait
            if max_wait is not None:  # what is left of the budget
                max_wait = max(0.0, max_wait - (limiter._clock.now_ns() - started) / _NS)
            self._fallback = limiter.fallback.acquire(
                max_wait=max_wait, attempt_timeout=self._attempt_timeout
            )
            self._permit = await self._fallback.__aenter__()
        return self._permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        if self._fallback is not None:
            await self._fallback.__aexit__(exc_type, exc, traceback)
        elif self._permit is not None:
            self._permit.settle()


class RedisRateLimiter:
    """A :class:`~vortext_async._limiter.Limiter` shared through Redis (extra ``redis``).

    Every limiter built with the same ``url``, ``account`` and ``key_prefix`` shares
    the caps, across processes and hosts::

        limiter = RedisRateLimiter(
            RateLimit(per_minute=600, per_hour=20_000), "redis://redis:6379/0", account="acme"
        )
        client = VortextClient(..., rate_limit=limiter)

    Redis failures: each round trip for the local queue (connect, send, answer) is
    bounded by ``redis_timeout``, and so are the connection pool's socket timeouts
    (redis-py before 8 sets none; 8 sets 5 s).  Whatever goes wrong (Redis down or
    stopped, a replica answering ``READONLY``, an ACL ``NOPERM``, ``OOM``,
    ``MOVED``), every send waiting on that round trip gets
    :class:`LimiterUnavailableError` (or the ``fallback`` takes over) at most
    ``redis_timeout`` after it started, and a send with ``max_wait`` by
    ``max_wait + 0.05`` s at the latest (one round trip's grace, so that
    ``max_wait=0`` still gets a token free now), plus the event loop's scheduling
    delay.

    Redis's clock: tokens are scored in Redis ``TIME``.  A step of Redis's clock
    *forward* by D, or a failover to a replica whose clock is D ahead, frees at once
    every token due within D; a failover also forgets the grants not yet replicated,
    which frees theirs.  Each such event lets a window of N see up to 2N sends in
    some W (all its tokens freed at worst), never more.  A step *back*, or a
    replica behind, only holds tokens D longer: sends wait, none goes over.  Keep
    Redis hosts' clocks slewed, never stepped (the chrony/ntpd default once
    synchronised); after an unplanned failover, if the caps are hard, ``pause()``
    every sender for the longest attempt timeout plus the longest W.

    Args:
        rate_limit: the account's caps.
        url: the Redis URL (``redis://``, ``rediss://``, ``unix://``); its password
            never appears in errors, logs or ``repr``.
        account: the account's name: the keys of every limiter of one account meet.
        key_prefix: the first part of every key.
        clock: the time source for waits and budgets (Redis I/O is real time).
        fallback: used while Redis fails instead of raising
            ``LimiterUnavailableError``.
        attempt_timeout: the default longest attempt (seconds), for sends that do
            not say; a token in flight is held at most this plus W.
        in_flight_recheck: the shortest interval at which the head asks again while
            the token it needs belongs to a send still in flight.
        connect_timeout: the longest a connection to Redis may take to open
            (default: ``redis_timeout``).
        redis_timeout: the longest one Redis call may take, end to end (seconds).

    Raises:
        ConfigurationError: ``redis`` is not installed, the URL is not a Redis URL, or
            a timeout is not a positive number.
    """

    def __init__(
        self,
        rate_limit: RateLimit,
        url: str,
        *,
        account: str,
        key_prefix: str = "vortext",
        clock: Clock | None = None,
        fallback: Limiter | None = None,
        attempt_timeout: float = 60.0,
        in_flight_recheck: float = 0.05,
        connect_timeout: float | None = None,
        redis_timeout: float = 1.0,
    ) -> None:
        try:
            from redis.asyncio.connection import parse_url
        except ImportError as error:
            raise ConfigurationError(
                "RedisRateLimiter needs the redis package: pip install 'vortext-async[redis]'"
            ) from error
        try:
            parse_url(url)
        except ValueError as error:
            raise ConfigurationError(
                f"RedisRateLimiter url {redact_url(url)!r} is not a Redis URL: {error}"
            ) from None
        for name, value in (("redis_timeout", redis_timeout), ("connect_timeout", connect_timeout)):
            if value is not None and not (
                isinstance(value, int | float) and not isinstance(value, bool) and 0 < value < 1e9
            ):
                raise ConfigurationError(
                    f"RedisRateLimiter {name} must be a positive number, got {value!r}"
                )
        self.rate_limit = rate_limit
        self.url = redact_url(url)
        self.fallback = fallback
        self._raw_url = url
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._windows = rate_limit.all_windows()
        self._widths = [round(seconds * _US) for _, seconds in self._windows]
        self._base = f"{key_prefix}:{{{account}}}"  # one hash slot per account (Redis Cluster)
        self._keys = [
            f"{self._base}:w:{n}:{w}" for (n, _), w in zip(self._windows, self._widths, strict=True)
        ]
        self._pause_key = f"{self._base}:pause"
        self._window_args = [
            x for (n, _), w in zip(self._windows, self._widths, strict=True) for x in (n, w)
        ]
        self._attempt_timeout = attempt_timeout
        self._recheck = round(in_flight_recheck * _US)
        self._redis_timeout = float(redis_timeout)
        self._connect_timeout = float(
            min(connect_timeout, redis_timeout) if connect_timeout is not None else redis_timeout
        )
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._tokens = map(str, itertools.count())
        self._origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        # local FIFO: only the head talks to Redis
        self._waiters: deque[_Waiter] = deque()
        self._driver: asyncio.Task[None] | None = None
        self._asking = False  # a call for the local waiters is outstanding
        self._in_flight = 0
        self._pending: list[str] = []
        self._given_up: deque[_GivenUp] = deque()
        # Held while a release of calls given up is out: the calls it took from
        # `_given_up` are then in neither place, and an acquire must wait for it.
        self._releasing = asyncio.Lock()
        self._flusher: asyncio.Task[None] | None = None
        # last answer of Redis, for state() and estimated_wait()
        self._seen_left: tuple[int, ...] = tuple(n for n, _ in self._windows)
        self._seen_pause_ns = 0
        self._head_wakes_ns = 0
        self._warned = False
        self._warned_given_up = False
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self.rate_limit!r}, {self.url!r})"

    # -- public ------------------------------------------------------------------

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        """Wait for one token of every window in Redis (FIFO within this process).

        Raises :class:`WaitBudgetExceededError` (taking nothing) as soon as Redis's
        answer shows the wait is longer than ``max_wait``: tokens of sends still in
        flight count as back no sooner than W from now.
        """
        return _RedisAcquire(self, max_wait, attempt_timeout)

    async def pause(self, seconds: float) -> None:
        """Hold every sender of the account, in every process, for ``seconds``.

        Raises :class:`LimiterUnavailableError` (or pauses the ``fallback``) when
        Redis fails, never a redis-py error.
        """
        try:
            await self._call("pause", [self._pause_key], [max(0, round(seconds * _US))])
        except _Unavailable as error:
            if self.fallback is None:
                raise LimiterUnavailableError(self.url, error) from None
            self._warn_fallback(error)
            await self.fallback.pause(seconds)
            return
        self._seen_pause_ns = self._clock.now_ns() + round(seconds * _NS)

    def state(self) -> LimiterState:
        """This process's view: queue and in flight here, tokens as Redis last said."""
        now = self._clock.now_ns()
        return LimiterState(
            windows=tuple(
                WindowState(n, seconds, left)
                for (n, seconds), left in zip(self._windows, self._seen_left, strict=True)
            ),
            queued=sum(1 for w in self._waiters if not w.future.done()),
            in_flight=self._in_flight,
            paused_until=(self._seen_pause_ns - now) / _NS if self._seen_pause_ns > now else None,
        )

    def estimated_wait(self) -> float:
        """Seconds the head of this process's queue still waits, as Redis last said."""
        return max(0, self._head_wakes_ns - self._clock.now_ns()) / _NS

    async def aclose(self) -> None:
        """Send the settles and releases still pending, then close the connection."""
        self._closed = True
        driver = self._driver
        if driver is not None:
            driver.cancel()  # a call in flight is given up, and released below
            await asyncio.wait([driver])
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(ClientClosedError("the rate limiter is closed"))
        flusher = self._flusher
        if flusher is not None:
            flusher.cancel()
            await asyncio.wait([flusher])
        if self._pending or self._given_up:
            try:
                await self._flush_once()
            except _Unavailable as error:
                logger.warning(
                    "Redis at %s unavailable (%s): %d calls given up are not released",
                    self.url,
                    error,
                    len(self._given_up),
                )
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- Redis -------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._redis is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff
            from redis.exceptions import ConnectionError as RedisConnectionError

            self._redis = redis.asyncio.Redis.from_url(
                self._raw_url,
                # redis-py before 8 sets no socket timeout at all (8 sets 5 s): a
                # stopped Redis would hold every send.
                socket_timeout=self._redis_timeout,
                socket_connect_timeout=self._connect_timeout,
                # Once, on a broken connection only (a pooled one may be stale); never
                # on a timeout, which would only double the wait.  A call sent twice
                # is harmless: its token names are fixed before it is sent.
                retry=Retry(NoBackoff(), 1, supported_errors=(RedisConnectionError,)),
            )
            self._scripts = {
                name: self._redis.register_script(text)
                for name, text in (("acquire", _ACQUIRE), ("settle", _SETTLE), ("pause", _PAUSE))
            }
        return self._redis

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        """One script call, ended after ``redis_timeout``; any failure is ``_Unavailable``."""
        from redis.exceptions import RedisError

        try:
            self._connect()
            async with asyncio.timeout(self._redis_timeout):
                return await self._scripts[script](keys=keys, args=args)
        except TimeoutError:
            raise self._no_answer() from None
        except (RedisError, OSError) as e:  # ResponseError too: READONLY, NOPERM, OOM, MOVED...
            task = asyncio.current_task()
            if task is not None and task.cancelling():
                # A cancellation redis-py lost on the way (it sends through
                # asyncio.wait_for, which before Python 3.12 can swallow one): honour
                # it, or the flusher would retry forever and aclose() never end.
                raise asyncio.CancelledError from e
            raise _Unavailable(f"{type(e).__name__}: {e}") from e

    def _no_answer(self) -> _Unavailable:
        return _Unavailable(f"no answer within redis_timeout={self._redis_timeout:g} s")

    def _warn_fallback(self, error: _Unavailable) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "Redis at %s unavailable (%s): using the fallback limiter", self.url, error
            )

    # -- acquiring ---------------------------------------------------------------

    async def _acquire(self, max_wait: float | None, attempt_timeout: float | None) -> Permit:
        if self._closed:
            raise ClientClosedError("the rate limiter is closed")
        if max_wait is not None and self._waiters and self.estimated_wait() > max_wait:
            raise WaitBudgetExceededError(self.estimated_wait(), max_wait)
        loop = asyncio.get_running_loop()
        now = self._clock.now_ns()
        timeout = self._attempt_timeout if attempt_timeout is None else attempt_timeout
        waiter = _Waiter(
            loop.create_future(),
            now,
            None if max_wait is None else now + round(max_wait * _NS),
            max_wait,
            round(timeout * _US),
        )
        self._waiters.append(waiter)
        if self._driver is None:
            self._driver = loop.create_task(self._drive())
        future = waiter.future
        try:
            if waiter.deadline is not None:
                await self._wait_within_budget(waiter)
            return await future
        except asyncio.CancelledError:
            if not future.done():
                future.cancel()  # it takes nothing; the driver skips it
            elif not future.cancelled() and future.exception() is None:
                future.result().refund()  # granted, but it will never be sent
            raise

    async def _wait_within_budget(self, waiter: _Waiter) -> None:
        """End ``waiter``'s wait at its deadline (and a round trip), even if Redis is silent.

        Redis I/O takes real time whatever the injected clock does, so this waits
        with the event loop's own timer.
        """
        assert waiter.deadline is not None
        assert waiter.max_wait is not None
        future = waiter.future
        delay = (waiter.deadline - self._clock.now_ns()) / _NS + _ROUND_TRIP_GRACE
        await asyncio.wait((future,), timeout=delay)
        if not future.done():
            if self._asking:
                future.set_exception(
                    _Unavailable(
                        f"no answer within max_wait={waiter.max_wait:g} s"
                        f" (+{_ROUND_TRIP_GRACE:g} s for the round trip)"
                    )
                )
            else:
                expected = max(self._head_wakes_ns - waiter.asked_at, 0) / _NS
                future.set_exception(
                    WaitBudgetExceededError(max(expected, waiter.max_wait), waiter.max_wait)
                )

    async def _drive(self) -> None:
        """Ask Redis for the tokens of the local waiters, in order; sleep as told.

        Nothing ends this task but ``aclose()``: any failure is handed to the
        waiters, so none is left hanging.
        """
        try:
            while True:
                waiters = self._waiters
                while waiters and waiters[0].future.done():
                    waiters.popleft()
                if not waiters or self._closed:
                    return
                batch = [w for w in itertools.islice(waiters, _BATCH) if not w.future.done()]
                try:
                    wakes = await self._serve(batch)
                except _Unavailable as error:
                    self._fail_waiting(error)  # Redis failed for those behind too
                    continue
                except Exception as error:  # a bug or an answer we cannot read
                    logger.exception("the Redis rate limiter failed")
                    self._fail_waiting(_Unavailable(f"{type(error).__name__}: {error}"))
                    continue
                if wakes is None:
                    continue
                self._head_wakes_ns = wakes
                self._expire_waiters(wakes)
                if all(w.future.done() for w in self._waiters):
                    continue  # nobody left to wait for
                while (now := self._clock.now_ns()) < wakes:
                    await self._clock.sleep((wakes - now) / _NS)
                self._head_wakes_ns = 0
        finally:
            self._driver = None

    def _fail_waiting(self, error: _Unavailable) -> None:
        for waiter in self._waiters:
            if not waiter.future.done():
                waiter.future.set_exception(error)

    async def _serve(self, batch: list[_Waiter]) -> int | None:
        """Release the calls given up, then ask for ``batch``: ``redis_timeout`` for both."""
        self._asking = True
        try:
            async with asyncio.timeout(self._redis_timeout):
                # Also a release the flusher has out: otherwise this ask could
                # reach Redis first and count a phantom token as held.
                while self._given_up or self._releasing.locked():
                    await self._release_given_up()
                return await self._ask(batch)
        except TimeoutError:
            raise self._no_answer() from None
        finally:
            self._asking = False

    async def _ask(self, batch: list[_Waiter]) -> int | None:
        """One script call for ``batch``; grants the first ones; when to ask again."""
        prefix = f"{self._origin}-{next(self._tokens)}"
        members = tuple(f"p:{prefix}-{j}" for j in range(1, len(batch) + 1))
        tombstone = f"{self._base}:x:{prefix}"
        sent = self._clock.now_ns()
        answered = False
        try:
            answer = await self._call(
                "acquire",
                [*self._keys, self._pause_key, tombstone],
                [
                    prefix,
                    max(w.timeout_us for w in batch),
                    self._recheck,
                    len(batch),
                    *self._window_args,
                ],
            )
            answered = True
        finally:
            # No answer: it may have run, or run later.  (An error answer means it
            # took nothing, unless our script has a bug: released all the same.)
            if not answered:
                self._give_up(_GivenUp(tombstone, members))
        now = self._clock.now_ns()
        granted, reask_us, acquired_at, paused = (int(x) for x in answer[:4])
        windows = len(self._keys)
        if len(answer) >= 4 + windows:
            self._seen_left = tuple(int(x) for x in answer[4 : 4 + windows])
        self._seen_pause_ns = now + (paused - acquired_at) * 1000 if paused > acquired_at else 0
        for j, waiter in enumerate(batch[:granted]):
            self._in_flight += 1
            permit = Permit(partial(self._release, members[j], acquired_at, sent))
            if waiter.future.done():  # cancelled or out of budget meanwhile: never sent
                permit.refund()
            else:
                waiter.future.set_result(permit)
        # The script ran after we sent it: no send goes before `sent` + its bound.
        for waiter, bound_us in zip(batch[granted:], answer[4 + windows :], strict=False):
            at = sent + int(bound_us) * 1000
            deadline = waiter.deadline
            if deadline is not None and at > deadline and not waiter.future.done():
                assert waiter.max_wait is not None
                waiter.future.set_exception(
                    WaitBudgetExceededError((at - waiter.asked_at) / _NS, waiter.max_wait)
                )
        if granted == len(batch):
            return None
        return now + reask_us * 1000

    def _expire_waiters(self, wakes: int) -> None:
        """Fail the local waiters whose budget ends before the next can even go."""
        for waiter in self._waiters:
            deadline = waiter.deadline
            if deadline is not None and deadline < wakes and not waiter.future.done():
                assert waiter.max_wait is not None
                expected = (wakes - waiter.asked_at) / _NS
                waiter.future.set_exception(WaitBudgetExceededError(expected, waiter.max_wait))

    # -- settling and releasing -------------------------------------------------------

    def _release(self, member: str, acquired_at: int, sent: int, refund: bool) -> None:
        self._in_flight -= 1
        if refund:
            self._pending += ("r", member, "0")
        else:
            # An upper bound of the settle instant in Redis time: the script ran
            # after we sent it, so no more than this has elapsed since.
            elapsed_us = -(-(self._clock.now_ns() - sent) // 1000)
            self._pending += ("s", member, str(acquired_at + elapsed_us))
        self._start_flusher()

    def _give_up(self, call: _GivenUp) -> None:
        """Remember a call that got no answer, to release its tokens once Redis answers."""
        if len(self._given_up) >= _GIVEN_UP_MAX:
            self._given_up.popleft()  # if it ran, its tokens come back at their bound
            if not self._warned_given_up:
                self._warned_given_up = True
                logger.warning(
                    "Redis at %s unavailable: over %d calls given up, the oldest are "
                    "no longer released (their tokens come back late)",
                    self.url,
                    _GIVEN_UP_MAX,
                )
        self._given_up.append(call)
        if not self._closed:
            self._start_flusher()

    def _start_flusher(self) -> None:
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        """Send settles off the sends' path; retry releasing calls given up."""
        pause, longest = _RETRY_RELEASE
        try:
            while self._pending or (self._given_up and not self._closed):
                try:
                    await self._flush_once()
                except _Unavailable:
                    await asyncio.sleep(pause)  # Redis I/O: real time
                    pause = min(2 * pause, longest)
        finally:
            self._flusher = None

    async def _flush_once(self) -> None:
        """Send the pending settles (lost if Redis fails), then release calls given up."""
        if self._pending:
            batch, self._pending = self._pending, []
            try:
                await self._call(
                    "settle", self._keys, [len(self._keys), _TOMBSTONE_MS, *self._widths, *batch]
                )
            except asyncio.CancelledError:
                self._pending[:0] = batch  # sent again by aclose(); settling twice is harmless
                raise
            except _Unavailable as error:
                logger.warning(
                    "Redis at %s unavailable (%s): %d tokens come back late",
                    self.url,
                    error,
                    len(batch) // 3,
                )
        while self._given_up:
            await self._release_given_up()

    async def _release_given_up(self) -> None:
        """Free the tokens of calls given up, and bar those calls if they run later.

        One release at a time (the flusher's or the driver's): returns once the
        one already out, if any, has ended, and then Redis has run it or the calls
        are back in ``_given_up``.  Raises ``_Unavailable`` (keeping them for the
        next try) when Redis fails.
        """
        async with self._releasing:
            calls: list[_GivenUp] = []
            tokens = 0
            while self._given_up and tokens < _GIVEN_UP_PER_CALL:
                call = self._given_up.popleft()
                calls.append(call)
                tokens += len(call.members)
            if not calls:
                return
            releases = [x for call in calls for member in call.members for x in ("r", member, "0")]
            try:
                await self._call(
                    "settle",
                    [*self._keys, *(call.tombstone for call in calls)],
                    [len(self._keys), _TOMBSTONE_MS, *self._widths, *releases],
                )
            except BaseException:
                self._given_up.extendleft(reversed(calls))
                raise
