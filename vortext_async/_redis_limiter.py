"""The rate limiter shared through Redis by every process and host of one account.

Same rule as :class:`~vortext_async._limiter.RateLimiter`: a send takes one token
of every window and each comes back W after its attempt settles.  In Redis, each
window is a sorted set of the tokens not yet back, scored by the instant (Redis
``TIME``, microseconds) they come back:

- one Lua script per acquire checks every window and the shared 429 pause, and
  takes a token of each, all or nothing; it answers how long to wait otherwise;
- a token is first recorded as back at ``acquire + attempt_timeout + W``
  (provisional, so a process that dies mid-send still frees it, late but surely),
  and moved to ``settle + W`` when the attempt settles, in batches sent by a
  background task, off the send's path;
- in each process only the head of the local FIFO queue talks to Redis;
- time is Redis's own, never the hosts' clocks; host time only measures how long
  an attempt took, which needs no agreement between hosts.

Redis unreachable: :class:`LimiterUnavailableError` (naming the URL without its
password), or, if given, the ``fallback`` limiter.
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
from urllib.parse import urlsplit, urlunsplit

import attrs

from ._clock import Clock, MonotonicClock
from ._errors import ClientClosedError, LimiterUnavailableError, WaitBudgetExceededError
from ._limiter import Limiter, LimiterState, Permit, RateLimit, WindowState

__all__ = ["RedisRateLimiter", "redact_url"]

logger = logging.getLogger("vortext_async.limiter")

_NS = 1_000_000_000
_US = 1_000_000

# KEYS: window sets..., pause key.  ARGV: token prefix, attempt timeout (us),
# in-flight recheck (us), tokens wanted, then (max_sends, width us) per window.
# Grants as many of the wanted sends as every window allows (one token of each
# per send), all or nothing per send.  Returns {granted, wait_us for the next,
# acquired_at_us, paused_until_us, tokens left per window...}.
_ACQUIRE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local stamp = t[1] .. string.format('%06d', tonumber(t[2]))
local windows = #KEYS - 1
local timeout = tonumber(ARGV[2])
local recheck = tonumber(ARGV[3])
local grant = tonumber(ARGV[4])
local paused = tonumber(redis.call('GET', KEYS[#KEYS]) or '0')
local wait = 0
if paused > now then
  wait = paused - now
  grant = 0
end
local used = {}
for i = 1, windows do
  redis.call('ZREMRANGEBYSCORE', KEYS[i], '-inf', now)
  used[i] = redis.call('ZCARD', KEYS[i])
  grant = math.max(0, math.min(grant, tonumber(ARGV[3 + 2 * i]) - used[i]))
end
local result = {grant, 0, now, paused}
for i = 1, windows do
  local n = tonumber(ARGV[3 + 2 * i])
  local width = tonumber(ARGV[4 + 2 * i])
  if grant > 0 then
    local entries = {}
    for j = 1, grant do
      entries[2 * j - 1] = now + timeout + width
      entries[2 * j] = 'p:' .. stamp .. ':' .. ARGV[1] .. '-' .. j
    end
    redis.call('ZADD', KEYS[i], unpack(entries))
    local ttl = math.ceil((timeout + width) / 1000) + 1000
    if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
  end
  local taken = used[i] + grant
  result[4 + i] = n - taken
  if grant < tonumber(ARGV[4]) and taken >= n then
    -- the next send needs the (taken - n + 1)-th earliest token back
    local entry = redis.call('ZRANGE', KEYS[i], taken - n, taken - n, 'WITHSCORES')
    local back = tonumber(entry[2])
    local acquired = string.match(entry[1], '^p:(%d+):')
    if acquired then
      -- still in flight: back W after it settles, which we learn when it does
      back = math.max(tonumber(acquired) + width, now + recheck)
    end
    wait = math.max(wait, back - now)
  end
end
result[2] = wait
return result
"""

# KEYS: window sets.  ARGV: width us per window, then (kind, member, settled_at_us)
# triples: kind 's' moves a provisional token to back at settle + W, 'r' frees it.
_SETTLE = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local windows = #KEYS
for j = windows + 1, #ARGV, 3 do
  local kind, member = ARGV[j], ARGV[j + 1]
  local settled = math.min(tonumber(ARGV[j + 2]), now)
  for i = 1, windows do
    local removed = redis.call('ZREM', KEYS[i], member)
    if removed == 1 and kind == 's' then
      local width = tonumber(ARGV[i])
      if settled + width > now then
        redis.call('ZADD', KEYS[i], settled + width, 's' .. string.sub(member, 2))
        local ttl = math.ceil((settled + width - now) / 1000) + 1000
        if redis.call('PTTL', KEYS[i]) < ttl then redis.call('PEXPIRE', KEYS[i], ttl) end
      end
    end
  end
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


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    user = parts.username or ""
    host = parts.hostname or ""
    if parts.port is not None:
        host = f"{host}:{parts.port}"
    return urlunsplit(parts._replace(netloc=f"{user}:***@{host}"))


class _Unavailable(Exception):
    """Redis could not be reached (wraps the redis-py or OS error)."""


_BATCH = 256  # most local waiters served by one script call


@attrs.define
class _Waiter:
    future: asyncio.Future[Permit]
    deadline: int | None
    max_wait: float | None
    timeout_us: int


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
        try:
            self._permit = await limiter._acquire(self._max_wait, self._attempt_timeout)
        except _Unavailable as error:
            if limiter.fallback is None:
                raise LimiterUnavailableError(limiter.url, error.__cause__ or error) from None
            limiter._warn_fallback(error)
            self._fallback = limiter.fallback.acquire(
                max_wait=self._max_wait, attempt_timeout=self._attempt_timeout
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

    ``attempt_timeout`` (seconds) is the default longest attempt, for sends that do
    not say; ``in_flight_recheck`` is how soon the head asks again while the token
    it needs belongs to a send still in flight.  ``fallback``, if given, is used
    while Redis is unreachable instead of raising ``LimiterUnavailableError``.
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
        connect_timeout: float = 2.0,
    ) -> None:
        self.rate_limit = rate_limit
        self.url = redact_url(url)
        self.fallback = fallback
        self._raw_url = url
        self._clock: Clock = clock if clock is not None else MonotonicClock()
        self._windows = rate_limit.all_windows()
        self._widths = [round(seconds * _US) for _, seconds in self._windows]
        base = f"{key_prefix}:{{{account}}}"  # one hash slot per account (Redis Cluster)
        self._keys = [
            f"{base}:w:{n}:{w}" for (n, _), w in zip(self._windows, self._widths, strict=True)
        ]
        self._pause_key = f"{base}:pause"
        self._window_args = [
            x for (n, _), w in zip(self._windows, self._widths, strict=True) for x in (n, w)
        ]
        self._attempt_timeout = attempt_timeout
        self._recheck = round(in_flight_recheck * _US)
        self._connect_timeout = connect_timeout
        self._redis: Any = None
        self._scripts: dict[str, Any] = {}
        self._tokens = map(str, itertools.count())
        self._origin = f"{os.getpid()}-{secrets.token_hex(4)}"
        # local FIFO: only the head talks to Redis
        self._waiters: deque[_Waiter] = deque()
        self._driver: asyncio.Task[None] | None = None
        self._in_flight = 0
        self._pending: list[str] = []
        self._flusher: asyncio.Task[None] | None = None
        # last answer of Redis, for state() and estimated_wait()
        self._seen_left: tuple[int, ...] = tuple(n for n, _ in self._windows)
        self._seen_pause_ns = 0
        self._head_wakes_ns = 0
        self._warned = False
        self._closed = False

    def __repr__(self) -> str:
        return f"RedisRateLimiter({self.rate_limit!r}, {self.url!r})"

    # -- public ------------------------------------------------------------------

    def acquire(
        self, *, max_wait: float | None = None, attempt_timeout: float | None = None
    ) -> AbstractAsyncContextManager[Permit]:
        """Wait for one token of every window in Redis (FIFO within this process)."""
        return _RedisAcquire(self, max_wait, attempt_timeout)

    async def pause(self, seconds: float) -> None:
        """Hold every sender of the account, in every process, for ``seconds``."""
        try:
            await self._call("pause", [self._pause_key], [max(0, round(seconds * _US))])
        except _Unavailable as error:
            if self.fallback is None:
                raise LimiterUnavailableError(self.url, error.__cause__ or error) from None
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
        """Send the settles still pending, then close the connection."""
        self._closed = True
        if self._driver is not None:
            self._driver.cancel()
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.future.done():
                waiter.future.set_exception(ClientClosedError("the rate limiter is closed"))
        if self._flusher is not None:
            await asyncio.wait([self._flusher])
        if self._redis is not None:
            await self._redis.aclose()
            self._redis = None

    # -- Redis -------------------------------------------------------------------

    def _connect(self) -> Any:
        if self._redis is None:
            import redis.asyncio
            from redis.asyncio.retry import Retry
            from redis.backoff import NoBackoff

            self._redis = redis.asyncio.Redis.from_url(
                self._raw_url,
                socket_connect_timeout=self._connect_timeout,
                retry=Retry(NoBackoff(), retries=1),  # once: a pooled connection may be stale
            )
            self._scripts = {
                name: self._redis.register_script(text)
                for name, text in (("acquire", _ACQUIRE), ("settle", _SETTLE), ("pause", _PAUSE))
            }
        return self._redis

    async def _call(self, script: str, keys: list[str], args: list[Any]) -> Any:
        import redis.exceptions

        self._connect()
        try:
            return await self._scripts[script](keys=keys, args=args)
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError, OSError) as e:
            raise _Unavailable(str(e)) from e

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
            None if max_wait is None else now + round(max_wait * _NS),
            max_wait,
            round(timeout * _US),
        )
        self._waiters.append(waiter)
        if self._driver is None:
            self._driver = loop.create_task(self._drive())
        try:
            return await waiter.future
        except asyncio.CancelledError:
            future = waiter.future
            if future.done() and not future.cancelled() and future.exception() is None:
                future.result().refund()  # granted, but it will never be sent
            raise

    async def _drive(self) -> None:
        """Ask Redis for the tokens of the local waiters, in order; sleep as told."""
        try:
            while True:
                waiters = self._waiters
                while waiters and waiters[0].future.done():
                    waiters.popleft()
                if not waiters or self._closed:
                    return
                batch = [w for w in itertools.islice(waiters, _BATCH) if not w.future.done()]
                try:
                    wakes = await self._ask(batch)
                except _Unavailable as error:
                    for waiter in batch:
                        if not waiter.future.done():
                            waiter.future.set_exception(error)
                    continue
                if wakes is None:
                    continue
                self._head_wakes_ns = wakes
                self._expire_waiters(wakes)
                while (now := self._clock.now_ns()) < wakes:
                    await self._clock.sleep((wakes - now) / _NS)
                self._head_wakes_ns = 0
        finally:
            self._driver = None

    async def _ask(self, batch: list[_Waiter]) -> int | None:
        """One script call for ``batch``; grants the first ones; when to ask again."""
        prefix = f"{self._origin}-{next(self._tokens)}"
        sent = self._clock.now_ns()
        answer = await self._call(
            "acquire",
            [*self._keys, self._pause_key],
            [
                prefix,
                max(w.timeout_us for w in batch),
                self._recheck,
                len(batch),
                *self._window_args,
            ],
        )
        now = self._clock.now_ns()
        granted, wait_us, acquired_at, paused = (int(x) for x in answer[:4])
        self._seen_left = tuple(int(x) for x in answer[4:])
        self._seen_pause_ns = now + (paused - acquired_at) * 1000 if paused > acquired_at else 0
        for j, waiter in enumerate(batch[:granted], start=1):
            self._in_flight += 1
            member = f"p:{acquired_at}:{prefix}-{j}"
            permit = Permit(partial(self._release, member, acquired_at, sent))
            if waiter.future.done():  # cancelled meanwhile: never sent
                permit.refund()
            else:
                waiter.future.set_result(permit)
        if granted == len(batch):
            return None
        return now + wait_us * 1000

    def _expire_waiters(self, wakes: int) -> None:
        """Fail the local waiters whose budget ends before the next can even go."""
        for waiter in self._waiters:
            deadline = waiter.deadline
            if deadline is not None and deadline < wakes and not waiter.future.done():
                assert waiter.max_wait is not None
                expected = (wakes - deadline) / _NS + waiter.max_wait  # from when it asked
                waiter.future.set_exception(WaitBudgetExceededError(expected, waiter.max_wait))

    def _release(self, member: str, acquired_at: int, sent: int, refund: bool) -> None:
        self._in_flight -= 1
        if refund:
            self._pending += ("r", member, "0")
        else:
            # An upper bound of the settle instant in Redis time: the script ran
            # after we sent it, so no more than this has elapsed since.
            elapsed_us = -(-(self._clock.now_ns() - sent) // 1000)
            self._pending += ("s", member, str(acquired_at + elapsed_us))
        if self._flusher is None:
            self._flusher = asyncio.get_running_loop().create_task(self._flush())

    async def _flush(self) -> None:
        try:
            while self._pending:
                batch, self._pending = self._pending, []
                try:
                    await self._call("settle", self._keys, [*self._widths, *batch])
                except _Unavailable as error:
                    logger.warning(
                        "Redis at %s unavailable (%s): %d tokens come back late",
                        self.url,
                        error,
                        len(batch) // 3,
                    )
        finally:
            self._flusher = None
