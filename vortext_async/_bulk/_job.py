"""Bulk sends: many messages through one client, a result for each, resumable.

:func:`send_bulk` reads its input lazily (a message is read only when a send slot
is free), keeps at most ``concurrency`` sends in flight and yields a
:class:`~vortext_async.SendResult` per message as each finishes.  It uses only the
client's public :meth:`~vortext_async.VortextClient.send`: the client's limiter sets
the pace and its retry policy decides what is tried again.

A message the server refused for its rate limit (a 429: certainly not sent) is not a
final FAILED: it waits for the client's limiter again (which paused, and learned from
the refusal) and is sent again, until the account has refused every send of the job
for ``rate_limit_patience`` seconds; then the job gives up on it, and the messages
left fail unsent.  A resent message's journal row stays ``attempting`` meanwhile
(nothing of it went out): settled once, when its last send ends.

With a journal (:mod:`vortext_async._bulk._journal`: a SQLite file, or a PostgreSQL
database shared by several hosts) each message is recorded as ``attempting``
(committed) before its request can go out, then as ``sent``, ``failed`` or
``uncertain``; a rerun with the same journal reports what an earlier run did
instead of sending again, and hosts running one job together skip the messages
another live host holds.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import functools
import logging
import math
import os
import time
import types
from collections.abc import AsyncIterable, AsyncIterator, Callable, Iterable, Iterator
from typing import Any, Final, Protocol

import attrs

from vortext_async._clock import Clock
from vortext_async._errors import (
    ClientClosedError,
    InvalidRequestError,
    JournalError,
    RateLimitedError,
    UncertainSendError,
    VortextError,
)
from vortext_async._models import Outcome, SendResult, SentSms, Sms
from vortext_async._outcome import outcome_of

from ._claims import DEFAULT_JOB, Claim, ClaimKind, JournalBackend, fingerprint, journal_key
from ._journal import make_journal

__all__ = ["BulkJob", "BulkProgress", "BulkSummary", "Sender", "send_bulk"]

logger = logging.getLogger("vortext_async.bulk")

_NS: Final = 1_000_000_000
_MAX_PUT_OFF: Final = 4
"""Shares of other hosts a job keeps to come back to (its memory: as many x their size)."""


class Sender(Protocol):
    """What a bulk job needs of a client: :meth:`~vortext_async.VortextClient.send`.

    Bulk types against this rather than the client, so the client may compose bulk
    (``client.send_bulk``) without an import cycle.
    """

    @property
    def clock(self) -> Clock:
        """The clock of the client's limiter: the job's patience is measured on it."""
        ...

    async def send(
        self,
        sms: Sms,
        *,
        max_wait: float | None,
        on_handover: Callable[[], object] | None,
        on_settled: Callable[[bool], object] | None,
    ) -> SentSms:
        """Send ``sms``; call ``on_handover`` when an attempt's request may reach the
        server, ``on_settled`` when that attempt ends (with whether it may have been
        accepted)."""
        ...


@attrs.frozen
class BulkProgress:
    """Where a bulk job stands, passed to ``on_progress`` after each result.

    ``done`` results so far (``sent + failed + uncertain``), of which ``resumed``
    came from the journal; ``in_flight`` messages read and not finished; ``rate``
    sends per second (resumed results excluded); ``finished`` on the last call;
    ``skipped`` messages another live host of the job holds (no result here).
    """

    done: int
    in_flight: int
    sent: int
    failed: int
    uncertain: int
    resumed: int
    elapsed: float
    rate: float
    finished: bool = False
    skipped: int = 0


@attrs.frozen
class BulkSummary:
    """What a bulk job did: counts per outcome, duration and pace.

    ``sent``, ``failed`` and ``uncertain`` count every result, those taken from the
    journal included (``resumed`` says how many were).  ``total`` is the number of
    messages read.  ``rate`` is sends per second, resumed results excluded.
    ``stopped`` is true when the job ended before its input did (stopped, cancelled,
    or the input or the journal failed).  ``skipped`` counts the messages another
    live host of the same job held (a shared PostgreSQL journal): they have no result
    here (that host reports them) and are not in ``total``.
    """

    sent: int
    failed: int
    uncertain: int
    resumed: int
    total: int
    duration: float
    rate: float
    stopped: bool = False
    skipped: int = 0

    def count(self, outcome: Outcome) -> int:
        """The number of results with ``outcome``."""
        return {Outcome.SENT: self.sent, Outcome.FAILED: self.failed}.get(outcome, self.uncertain)


def send_bulk(
    client: Sender,
    messages: Iterable[Sms] | AsyncIterable[Sms],
    *,
    concurrency: int = 64,
    journal: str | os.PathLike[str] | None = None,
    job: str = DEFAULT_JOB,
    resend_uncertain: bool = False,
    retry_failed: bool = True,
    replace_changed: bool = False,
    on_progress: Callable[[BulkProgress], object] | None = None,
    grace: float = 10.0,
    max_wait: float | None = None,
    rate_limit_patience: float = 7200.0,
) -> BulkJob:
    """Send ``messages`` through ``client``; iterate the job for one result per message.

    ``messages`` (any iterable or async iterable of :class:`Sms`) is read lazily, a
    message at a time as send slots free up; a generator is closed when the job ends.  At most
    ``concurrency`` messages are in flight, and at most ``concurrency`` results wait for a
    caller who is behind: reading is never more than ``2 * concurrency`` messages ahead
    (with a PostgreSQL journal, plus the shares of other hosts put off: about five
    shares of 500 messages, see "Bulk jobs and journals").

    ``journal``: a SQLite file recording each message, or a ``postgresql://`` URL
    (extra ``postgres``) whose journal several hosts share (see "Bulk jobs and
    journals" in the documentation).  A SQLite journal is held by one job at a time
    (:class:`~vortext_async.JournalBusyError` otherwise, before anything is sent).
    ``job`` names the job within the journal: keys are unique per job.
    A message's key is its :attr:`Sms.key`, else its position in the input, so a
    resumed job without keys must read the same messages in the same order.  On a
    rerun, messages already sent are yielded as SENT with ``resumed=True``; those left
    uncertain (or ``attempting`` by a process that died) are yielded as UNCERTAIN and
    not resent unless ``resend_uncertain`` (may send an SMS twice); those that failed
    for a passing reason (network, rate limit, credentials) are sent again unless
    ``retry_failed=False``.  A key whose journal row names another message is refused
    (FAILED), unless ``replace_changed`` and that earlier message FAILED (so surely
    did not go out): then the corrected message takes the key and is sent.  A key
    whose message was SENT or UNCERTAIN is never replaced.  With a PostgreSQL
    journal, messages that another live host of the job holds are skipped (no result;
    :attr:`BulkSummary.skipped`); a job that stops reports the messages of other
    hosts' shares it had put off and not claimed as FAILED (not sent by it).

    Stopping (``break``, :meth:`BulkJob.aclose`, cancelling the task) stops reading
    the input, stops at once the sends still waiting for the rate limit or to be sent
    again after a refusal (FAILED: nothing of theirs is out, a rerun sends them) and
    gives sends in flight ``grace`` seconds (one refused meanwhile ends then, FAILED);
    those still unanswered are UNCERTAIN.  ``max_wait`` is each send's wait budget for
    the rate limiter (None: wait as long as the pace needs, whatever the client's
    default).

    A message the server refused for its rate limit (429, certainly not sent) once the
    client's retry policy gave up is not reported FAILED: it is sent again when the
    client's limiter lets it (the refusal paused it, and a client without caps learns
    the account's pace from it).  ``rate_limit_patience`` bounds that: once the
    account has refused every send of the job for that many seconds (counted from
    the first refusal since it last accepted one, plus the ``Retry-After`` it asks
    for), the job gives up on the account: that refusal is its message's result, and
    every message left, waiting for its turn or not read yet, is FAILED at once
    without being sent (unclaimed in the journal: a rerun sends it).  The default,
    two hours, is twice the longest cap the API documents (per hour); 0 makes a
    refusal final, as for a single send.  A refusal while the job stops is final.
    """
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise InvalidRequestError("concurrency", concurrency, "must be an integer >= 1")
    if not grace >= 0:
        raise InvalidRequestError("grace", grace, "must be >= 0 seconds")
    if max_wait is not None and not max_wait >= 0:
        raise InvalidRequestError("max_wait", max_wait, "must be >= 0 seconds or None")
    if (
        isinstance(rate_limit_patience, bool)
        or not isinstance(rate_limit_patience, int | float)
        or not rate_limit_patience >= 0
    ):
        raise InvalidRequestError(
            "rate_limit_patience", rate_limit_patience, "must be a number of seconds >= 0"
        )
    if isinstance(messages, (str, bytes)) or not (isinstance(messages, (AsyncIterable, Iterable))):
        raise InvalidRequestError(
            "messages", type(messages).__name__, "must be an iterable or async iterable of Sms"
        )
    return BulkJob(
        client,
        messages,
        concurrency=concurrency,
        journal=make_journal(
            journal,
            job=job,
            resend_uncertain=resend_uncertain,
            retry_failed=retry_failed,
            replace_changed=replace_changed,
        )
        if journal is not None
        else None,
        on_progress=on_progress,
        grace=float(grace),
        max_wait=max_wait,
        rate_limit_patience=float(rate_limit_patience),
    )


class _End:
    """The input is exhausted (or failed, or the job is stopping)."""


class _Send:
    """Where one message's send stands: what stopping the job may cut, and as what."""

    __slots__ = ("in_flight", "possibly_accepted")

    def __init__(self) -> None:
        self.in_flight = False
        """An attempt's request is handed over and not answered yet: it may be accepted."""
        self.possibly_accepted = False
        """An earlier attempt ended that the server may have accepted."""


_END: Final = _End()


class BulkJob:
    """A running bulk send: ``async for result in job`` yields one result per message.

    Iterate it once.  ``async with`` closes it on exit (waiting for the stop to
    finish); a bare ``break`` also stops it, in the background.  :attr:`summary`
    is final once iteration has ended.
    """

    def __init__(
        self,
        client: Sender,
        messages: Iterable[Sms] | AsyncIterable[Sms],
        *,
        concurrency: int,
        journal: JournalBackend | None,
        on_progress: Callable[[BulkProgress], object] | None,
        grace: float,
        max_wait: float | None,
        rate_limit_patience: float,
    ) -> None:
        self._client = client
        self._messages = messages
        self._concurrency = concurrency
        self._journal = journal
        self._on_progress = on_progress
        self._grace = grace
        self._max_wait = max_wait
        self._patience_ns = (
            round(rate_limit_patience * _NS) if math.isfinite(rate_limit_patience) else None
        )
        # The instant (client's clock) of the first refusal for the rate limit since the
        # account last accepted a send of this job; None: no refusal since.
        self._refused_since: int | None = None
        self._patience = rate_limit_patience
        # Why every message left fails unsent, once the job gave up on the account.
        self._gave_up: str | None = None
        self._cut: set[asyncio.Task[Any]] = set()  # sends the give-up stopped

        self._sync_input: Iterator[Any] | None = None
        self._async_input: AsyncIterator[Any] | None = None
        self._read_lock = asyncio.Lock()
        self._ready: collections.deque[SendResult] = collections.deque()
        self._space: collections.deque[asyncio.Future[None]] = collections.deque()
        self._waiter: asyncio.Future[None] | None = None
        self._workers: list[asyncio.Task[None]] = []
        self._sending: set[asyncio.Task[Any]] = set()
        # Workers inside client.send, and where their send stands.
        self._sends: dict[asyncio.Task[Any], _Send] = {}
        self._live = 0
        self._settling = 0  # results waiting for the journal's commit

        self._iterated = False
        self._started = False
        self._exhausted = False  # no more input will be read (end, error or stop)
        self._stop_requested = False
        self._error: BaseException | None = None
        self._closer: asyncio.Task[None] | None = None

        self._read = 0
        self._in_flight = 0
        self._sent = 0
        self._failed = 0
        self._uncertain = 0
        self._resumed = 0
        self._skipped = 0
        # Shared journal: the share being read, whether it is this job's; the shares of
        # other hosts put off (oldest first), and their messages to claim after all.
        self._share: tuple[int, asyncio.Future[bool]] | None = None
        self._deferred: collections.deque[tuple[int, list[tuple[int, Sms]]]] = collections.deque()
        self._replay: collections.deque[tuple[int, Sms]] = collections.deque()
        self._revisiting = 0  # shares being read again (their messages join the replay)
        self._revisited: asyncio.Future[None] | None = None  # workers waiting for one
        self._input_error: BaseException | None = None
        self._failed_again = False
        self._started_at = 0.0
        self._ended_at: float | None = None

    # -- public API ----------------------------------------------------------------

    @property
    def summary(self) -> BulkSummary:
        """Counts so far; final once iteration (or :meth:`aclose`) has ended."""
        end = self._ended_at if self._ended_at is not None else time.perf_counter()
        duration = end - self._started_at if self._started else 0.0
        return BulkSummary(
            sent=self._sent,
            failed=self._failed,
            uncertain=self._uncertain,
            resumed=self._resumed,
            total=self._sent + self._failed + self._uncertain,
            duration=duration,
            rate=_rate(self._sent + self._failed + self._uncertain - self._resumed, duration),
            stopped=self._stop_requested or self._error is not None,
            skipped=self._skipped,
        )

    @property
    def progress(self) -> BulkProgress:
        """Where the job stands now (what ``on_progress`` is given), for polling."""
        return self._progress(finished=self._ended_at is not None)

    def __aiter__(self) -> AsyncIterator[SendResult]:
        if self._iterated:
            raise RuntimeError("a BulkJob can be iterated only once")
        self._iterated = True
        # A separate generator, not referenced by the job: when a caller breaks out of
        # ``async for``, it is finalised and its ``finally`` stops the job.
        return self._results()

    async def aclose(self) -> None:
        """Stop: read no more input, give sends in flight ``grace`` seconds, close.

        A consumer still iterating receives the results of the sends that finish,
        then the iteration ends.  Safe to call more than once.
        """
        if self._closer is None:
            self._stop_requested = True
        await self._close()

    async def __aenter__(self) -> BulkJob:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __repr__(self) -> str:
        s = self.summary
        return (
            f"<BulkJob sent={s.sent} failed={s.failed} uncertain={s.uncertain} "
            f"resumed={s.resumed} in_flight={self._in_flight}>"
        )

    # -- the consumer ----------------------------------------------------------------

    async def _results(self) -> AsyncIterator[SendResult]:
        ended = False
        try:
            await self._start()
            ready, space, limit = self._ready, self._space, self._concurrency
            loop = asyncio.get_running_loop()
            while True:
                if ready:
                    result = ready.popleft()
                    if space and len(ready) + self._settling < limit:
                        _wake_one(space)
                    yield result
                elif self._live == 0 and self._settling == 0:
                    ended = True
                    break
                else:
                    self._waiter = loop.create_future()
                    await self._waiter
        finally:
            if not ended and self._closer is None:
                self._stop_requested = True  # break, cancellation or an error in _start
            await self._close()
        if self._error is not None:
            raise self._error

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    # -- start and stop -----------------------------------------------------------------

    async def _start(self) -> None:
        if self._started or self._closer is not None:
            return
        self._started = True
        self._started_at = time.perf_counter()
        messages = self._messages
        if isinstance(messages, AsyncIterable):
            self._async_input = aiter(messages)
        else:
            self._sync_input = iter(messages)
        if self._journal is not None:
            await self._journal.open()
        self._live = self._concurrency
        self._workers = [
            asyncio.create_task(self._worker(), name=f"vortext bulk sender {n}")
            for n in range(self._concurrency)
        ]

    async def _close(self) -> None:
        if self._closer is None:
            self._closer = asyncio.get_running_loop().create_task(self._shutdown())
        await asyncio.shield(self._closer)

    async def _shutdown(self) -> None:
        self._exhausted = True
        try:
            if self._started:
                await self._stop_workers()
                if self._journal is not None:
                    await self._journal.aclose()
        finally:
            self._ended_at = time.perf_counter()
            self._wake()
            self._report_progress(finished=True)

    async def _stop_workers(self) -> None:
        """Stop reading, close the input, give the sends ``grace`` seconds, cut the rest."""
        workers = [task for task in self._workers if not task.done()]
        idle = [task for task in workers if task not in self._sending]
        for task in idle:
            task.cancel()  # waiting for room or for the input: nothing to lose
        if idle:
            await asyncio.wait(idle)
        await self._close_input()
        busy = [task for task in workers if not task.done()]
        for task in busy:
            send = self._sends.get(task)
            if send is not None and not send.in_flight and not send.possibly_accepted:
                # Waiting for the rate limit, or to be sent again after a refusal:
                # nothing of it went out (FAILED, and a rerun sends it).
                task.cancel()
        if busy and self._grace > 0:
            await asyncio.wait(busy, timeout=self._grace)
        for task in busy:
            task.cancel()  # no-op on finished ones; cuts the late sends (UNCERTAIN)
        await asyncio.gather(*busy, return_exceptions=True)

    async def _close_input(self) -> None:
        """Close a generator input, so its own cleanup (``finally``, ``with``) runs."""
        try:
            if isinstance(self._async_input, types.AsyncGeneratorType):
                await self._async_input.aclose()
            elif isinstance(self._sync_input, types.GeneratorType):
                self._sync_input.close()
        except Exception:
            logger.exception("closing the bulk job's input raised")

    def _fail(self, error: BaseException) -> None:
        """A job-wide failure: read no more; raise ``error`` once the sends settle."""
        if self._error is None:
            self._error = error
        elif error is not self._input_error:
            self._failed_again = True  # after an input error: this one stops the job
        self._exhausted = True

    @property
    def _halted(self) -> bool:
        """Whether the job sends nothing more: stopped, or failed for another reason than
        its input (after an input error, what was read still goes out)."""
        return (
            self._stop_requested
            or self._failed_again
            or self._error not in (None, self._input_error)
        )

    # -- workers -----------------------------------------------------------------------

    async def _worker(self) -> None:
        """Send one message at a time; there are ``concurrency`` workers."""
        task = asyncio.current_task()
        assert task is not None
        sending, ready, limit = self._sending, self._ready, self._concurrency
        sync_input = self._sync_input
        replay, deferred = self._replay, self._deferred
        try:
            while not self._halted:
                if len(ready) + self._settling >= limit:  # the caller is behind: wait
                    await self._wait_for_space()
                    continue
                if replay:  # messages of a share put off, to claim now
                    position, message = replay.popleft()
                    scheduled = False
                elif not self._exhausted:
                    item = self._next_sync() if sync_input is not None else await self._next_async()
                    if isinstance(item, _End):
                        continue  # the shares put off, if any, are next
                    position, message = item
                    scheduled = True
                elif deferred:
                    await self._revisit(deferred.popleft())
                    continue
                elif self._revisiting:  # more messages to claim, in a moment
                    await self._wait_for_revisit()
                    continue
                else:
                    return
                self._in_flight += 1
                sending.add(task)
                try:
                    result = await self._send_one(position, message, scheduled)
                finally:
                    sending.discard(task)
                    self._in_flight -= 1
                if result is not None:  # None: emitted once the journal has committed it
                    self._emit(result)
        except asyncio.CancelledError:
            raise
        except BaseException as error:  # a bug here must end the job, not hang it
            logger.exception("bulk sender failed")
            self._fail(error)
        finally:
            self._live -= 1
            if self._live == 0:
                self._unsent_put_off()
            if self._live == 0 and self._settling == 0:
                self._wake()
            elif self._space:
                _wake_one(self._space)  # let another worker see why this one stopped

    async def _wait_for_space(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._space.append(future)
        await future

    def _next_sync(self) -> tuple[int, Any] | _End:
        assert self._sync_input is not None
        try:
            message = next(self._sync_input)
        except StopIteration:
            self._exhausted = True
            return _END
        except Exception as error:
            self._input_failed(error)
            return _END
        position = self._read
        self._read = position + 1
        return position, message

    async def _next_async(self) -> tuple[int, Any] | _End:
        assert self._async_input is not None
        async with self._read_lock:
            if self._exhausted:
                return _END
            try:
                message = await anext(self._async_input)
            except StopAsyncIteration:
                self._exhausted = True
                return _END
            except asyncio.CancelledError:
                raise
            except Exception as error:
                self._input_failed(error)
                return _END
        position = self._read
        self._read = position + 1
        return position, message

    def _input_failed(self, error: Exception) -> None:
        error.add_note(
            f"raised by the bulk job's input after {self._read} messages; "
            "every message read before it has its result"
        )
        self._input_error = error  # the messages read still go out (shares put off too)
        self._fail(error)

    def _unsent_put_off(self) -> None:
        """The job stopped before coming back to what it had put off, or before claiming
        it: read, never claimed, so not sent by this job (FAILED; a rerun reports or
        sends each, as the host holding its share may have sent it meanwhile)."""
        while self._deferred:
            self._replay.extend(self._deferred.popleft()[1])
        while self._replay:
            self._emit(SendResult(self._replay.popleft()[1], Outcome.FAILED, error=_stopped()))

    async def _wait_for_revisit(self) -> None:
        if self._revisited is None:
            self._revisited = asyncio.get_running_loop().create_future()
        await asyncio.shield(self._revisited)

    async def _revisit(self, put_off: tuple[int, list[tuple[int, Sms]]]) -> None:
        """Come back to a share another host held: skip the messages claimed by now by a
        host that ran alongside this one (a claim would say ELSEWHERE: that host reports
        them, or a rerun if it died), claim the others as usual."""
        journal = self._journal
        assert journal is not None
        _, items = put_off
        keys = [journal_key(sms.key, position) for position, sms in items]
        self._revisiting += 1
        try:
            theirs = await journal.held_elsewhere(keys)
        except asyncio.CancelledError:
            self._deferred.appendleft(put_off)  # stopped: still put off
            raise
        except Exception as error:
            self._deferred.appendleft(put_off)
            self._fail(_journal_error(journal, error))
            return
        finally:
            self._revisiting -= 1
            waiting, self._revisited = self._revisited, None
            if waiting is not None and not waiting.done():
                waiting.set_result(None)
        for item, key in zip(items, keys, strict=True):
            if key in theirs:
                self._skipped += 1  # a host that ran alongside this one has it
            else:
                self._replay.append(item)

    def _put_off(self, position: int, sms: Sms, share: int) -> None:
        """Keep a message of a share another host holds, to come back to it later."""
        deferred = self._deferred
        if deferred and deferred[-1][0] == share:
            deferred[-1][1].append((position, sms))
        else:
            deferred.append((share, [(position, sms)]))

    def _share_of(self, journal: JournalBackend, size: int, position: int) -> asyncio.Future[bool]:
        """Whether the share of the input holding ``position`` is this job's: claimed once,
        by the first worker to reach it (messages are read in order, so only the latest
        share is kept)."""
        share = position // size
        current = self._share
        if current is None or current[0] != share:
            current = self._share = (share, journal.claim_share(share))
        return current[1]

    async def _send_one(
        self, position: int, message: Any, scheduled: bool = False
    ) -> SendResult | None:
        if not isinstance(message, Sms):
            error = InvalidRequestError("messages", message, f"item {position} is not an Sms")
            return SendResult(message, Outcome.FAILED, error=error)
        sms = message
        journal = self._journal
        key = ""
        claim: Claim | None = None
        if journal is not None:
            if scheduled and journal.share_size is not None:
                try:
                    # Shielded: the workers reading this share wait on one future.
                    ours = await asyncio.shield(
                        self._share_of(journal, journal.share_size, position)
                    )
                except asyncio.CancelledError:
                    # Stopped before its claim: not sent, nothing in the journal.
                    self._emit(SendResult(sms, Outcome.FAILED, error=_stopped()))
                    raise
                except Exception as error:
                    self._fail(_journal_error(journal, error))
                    return SendResult(sms, Outcome.FAILED, error=error)
                if not ours:
                    self._put_off(position, sms, position // journal.share_size)
                    if len(self._deferred) > _MAX_PUT_OFF:
                        await self._revisit(self._deferred.popleft())
                    return None
            key = journal_key(sms.key, position)
            try:
                claim = await journal.claim(
                    key, fingerprint(sms.phone_number, sms.message), sms.phone_number
                )
            except asyncio.CancelledError:
                # Stopped while the journal was committing: its row may say attempting.
                self._emit(_uncertain(sms, "the bulk job stopped before this message was sent"))
                raise
            except Exception as error:
                self._fail(_journal_error(journal, error))
                return SendResult(sms, Outcome.FAILED, error=error)
            if claim.kind is ClaimKind.ELSEWHERE:
                self._skipped += 1  # another live host sends and reports it
                return None
            if claim.kind is not ClaimKind.SEND:
                return _from_journal(sms, key, claim)
        if self._stop_requested:
            if journal is not None and claim is not None:
                journal.unclaim(key, claim.previous)
            stopped = _stopped()
            return SendResult(sms, Outcome.FAILED, error=stopped)
        if self._gave_up is not None:  # the account refuses everything: not sent
            if journal is not None and claim is not None:
                journal.unclaim(key, claim.previous)
            return SendResult(sms, Outcome.FAILED, error=VortextError(self._gave_up))

        # Until the client hands a request over, stopping the job loses nothing; an
        # attempt the server refused (429, 503: certainly not sent) leaves nothing
        # out either, whether the client then waits to retry it or the job to send it
        # again.
        worker = asyncio.current_task()
        assert worker is not None
        send = _Send()

        def handed_over() -> None:
            send.in_flight = True

        def settled(possibly_accepted: bool) -> None:
            send.in_flight = False
            send.possibly_accepted = send.possibly_accepted or possibly_accepted
            if not possibly_accepted and (self._stop_requested or self._gave_up is not None):
                # Refused while the job stops (or gave up): nothing of it is out, so
                # it waits neither for a retry nor for the grace.
                _once_taken(worker, functools.partial(self._cut_refused, worker, send))

        self._sends[worker] = send
        try:
            while True:
                try:
                    sent = await self._client.send(
                        sms, max_wait=self._max_wait, on_handover=handed_over, on_settled=settled
                    )
                except asyncio.CancelledError:
                    out = send.in_flight or send.possibly_accepted
                    if worker in self._cut:
                        self._cut.discard(worker)
                        if not out and worker.uncancel() == 0:
                            # Only the give-up cut it, while nothing of it was out: not
                            # sent; the worker goes on (with the next messages, unsent too).
                            if journal is not None and claim is not None:
                                journal.unclaim(key, claim.previous)
                            assert self._gave_up is not None
                            return SendResult(
                                sms, Outcome.FAILED, error=VortextError(self._gave_up)
                            )
                    if send.in_flight:
                        result = _uncertain(sms, "the bulk job stopped before the server answered")
                    elif send.possibly_accepted:  # opted-in resends of an uncertain send
                        result = _uncertain(
                            sms,
                            "the bulk job stopped while this message waited to be sent again, "
                            "and an earlier attempt of it may have been accepted",
                        )
                    else:  # waiting for its turn or to be sent again: a rerun sends it
                        stopped = _stopped()
                        result = SendResult(sms, Outcome.FAILED, error=stopped)
                    if journal is not None and claim is not None:
                        if out:
                            journal.settle_nowait(key, "uncertain", reason=str(result.error))
                        else:
                            journal.unclaim(key, claim.previous)
                    self._emit(result)
                    raise
                except UncertainSendError as error:
                    result = SendResult(sms, Outcome.UNCERTAIN, error=error)
                except Exception as error:  # anything not ours: we cannot know how far it went
                    if self._send_again(error):
                        continue  # its journal row stays 'attempting': it is being sent
                    if outcome_of(error) is Outcome.FAILED:
                        result = SendResult(sms, Outcome.FAILED, error=error)
                        if isinstance(error, ClientClosedError):
                            self._fail(error)
                    else:
                        result = SendResult(
                            sms, Outcome.UNCERTAIN, error=UncertainSendError(sms, error)
                        )
                else:
                    result = SendResult(sms, Outcome.SENT, sent=sent)
                    self._refused_since = None  # the account takes sends again
                break
        finally:
            del self._sends[worker]

        if journal is None:
            return result
        # The result is yielded once its state is committed, but this worker does not
        # wait for that: it goes on with its next message (one journal round trip each).
        self._settling += 1
        _record(journal, key, result).add_done_callback(
            functools.partial(self._settled, journal, result)
        )
        return None

    def _send_again(self, error: Exception) -> bool:
        """Whether a message refused with ``error`` waits for the limiter and goes again.

        Only a refusal for the rate limit (429: certainly not sent, and the account
        takes it later), while the job runs and within its patience: the account has
        refused every send of the job for less than ``rate_limit_patience``, counting
        the wait the server asks (``Retry-After``).
        """
        if (
            not isinstance(error, RateLimitedError)
            or self._patience_ns == 0
            or self._halted
            or self._gave_up is not None
        ):
            return False
        now = self._client.clock.now_ns()
        if self._refused_since is None:
            self._refused_since = now
        if self._patience_ns is None:  # infinite patience
            return True
        asked = error.retry_after if error.retry_after is not None else 0.0
        refused_for = now - self._refused_since
        if 0 <= asked < math.inf and refused_for + round(asked * _NS) < self._patience_ns:
            return True
        self._give_up(refused_for / _NS, asked)
        return False

    def _give_up(self, refused_for: float, asked: float) -> None:
        """The account refused the job's sends for its whole patience: stop sending.

        Every message left (those waiting for their turn, and those not read yet) is
        FAILED at once without being sent, and left unclaimed in the journal: a rerun
        sends it.  Sending them one by one would cost each a pause of the limiter.
        """
        more = f" and asked for {asked:g} s more" if asked else ""
        self._gave_up = (
            f"not sent: the account refused this bulk job's sends for {refused_for:.0f} s"
            f"{more}, beyond its rate_limit_patience of {self._patience:g} s; the job "
            "gave up on the account (a rerun sends this message)"
        )
        logger.warning(
            "the account refused every send of the bulk job for %.0f s%s, beyond "
            "rate_limit_patience=%g s: the messages left fail without being sent",
            refused_for,
            more,
            self._patience,
            extra={"vortext_refused_for": refused_for, "vortext_patience": self._patience},
        )
        current = asyncio.current_task()
        for task, send in self._sends.items():
            if task is not current and not send.in_flight and not send.possibly_accepted:
                self._cut.add(task)
                task.cancel()

    def _cut_refused(self, worker: asyncio.Task[Any], send: _Send) -> None:
        """Stop a send whose attempt was refused while the job stops or gives up.

        Nothing of it is out: unless it went on meanwhile (a new attempt, or its end),
        it is cut now rather than left to wait for a retry or the grace period.
        """
        if self._sends.get(worker) is not send or send.in_flight or worker.done():
            return
        if not self._stop_requested:  # the give-up: the worker goes on, unsent
            if send.possibly_accepted:
                return
            self._cut.add(worker)
        worker.cancel()

    def _settled(
        self, journal: JournalBackend, result: SendResult, done: asyncio.Future[None]
    ) -> None:
        self._settling -= 1
        if not done.cancelled() and done.exception() is not None:
            error = done.exception()
            assert isinstance(error, Exception)
            self._fail(_journal_error(journal, error))
        self._emit(result)
        if self._live == 0 and self._settling == 0:
            self._wake()

    # -- results -----------------------------------------------------------------------

    def _emit(self, result: SendResult) -> None:
        outcome = result.outcome
        if outcome is Outcome.SENT:
            self._sent += 1
        elif outcome is Outcome.FAILED:
            self._failed += 1
        else:
            self._uncertain += 1
        if result.resumed:
            self._resumed += 1
        self._ready.append(result)
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)
        if self._on_progress is not None:
            self._report_progress(finished=False)

    def _report_progress(self, *, finished: bool) -> None:
        if self._on_progress is None:
            return
        try:
            self._on_progress(self._progress(finished=finished))
        except Exception:
            logger.exception("the bulk job's on_progress callback raised")

    def _progress(self, *, finished: bool) -> BulkProgress:
        summary = self.summary
        return BulkProgress(
            done=summary.total,
            in_flight=self._in_flight + self._settling,
            sent=summary.sent,
            failed=summary.failed,
            uncertain=summary.uncertain,
            resumed=summary.resumed,
            elapsed=summary.duration,
            rate=summary.rate,
            finished=finished,
            skipped=summary.skipped,
        )


def _once_taken(worker: asyncio.Task[Any], callback: Callable[[], object]) -> None:
    """Call ``callback`` once ``worker`` has taken the end of the attempt running now.

    Called from inside the attempt, which ends right after.  The client runs an
    attempt in a task of its own (``shield_sends``): cancelling the worker before it
    has taken that task's end would leave the answer to the client's background
    report.  After it, the worker is waiting again (to retry, or for its turn).
    """
    loop = asyncio.get_running_loop()
    attempt = asyncio.current_task()
    if attempt is None or attempt is worker:
        loop.call_soon(callback)  # the worker's own step goes on to its next wait first
    else:  # its last step wakes the worker; its done callbacks run after: one more turn
        attempt.add_done_callback(lambda _: loop.call_soon(callback))


def _wake_one(waiters: collections.deque[asyncio.Future[None]]) -> None:
    while waiters:
        waiter = waiters.popleft()
        if not waiter.done():
            waiter.set_result(None)
            return


def _rate(count: int, seconds: float) -> float:
    return count / seconds if seconds > 0 else 0.0


def _stopped() -> VortextError:
    """Why a message the job stopped before sending was not sent."""
    return VortextError("the bulk job stopped before this message was sent")


def _uncertain(sms: Sms, why: str) -> SendResult:
    return SendResult(sms, Outcome.UNCERTAIN, error=UncertainSendError(sms, VortextError(why)))


def _retryable(error: VortextError) -> bool:
    """Whether a later run may send again a message that failed with ``error``."""
    return not error.about_the_message  # the message itself is wrong: it would fail again


def _record(journal: JournalBackend, key: str, result: SendResult) -> asyncio.Future[None]:
    if result.outcome is Outcome.SENT:
        return journal.settle(key, "sent", message_id=result.message_id)
    if result.outcome is Outcome.FAILED:
        error = result.error
        retryable = isinstance(error, VortextError) and _retryable(error)
        return journal.settle(key, "failed", reason=str(error), retryable=retryable)
    return journal.settle(key, "uncertain", reason=str(result.error))


_UNCERTAIN_PREFIX: Final = str(UncertainSendError(None, VortextError("")))


def _from_journal(sms: Sms, key: str, claim: Claim) -> SendResult:
    kind = claim.kind
    if kind is ClaimKind.SENT:
        sent = SentSms(claim.message_id or "")
        return SendResult(sms, Outcome.SENT, sent=sent, resumed=True)
    if kind is ClaimKind.FAILED:
        error = VortextError(f"failed in an earlier run: {claim.reason}")
        return SendResult(sms, Outcome.FAILED, error=error, resumed=True)
    if kind is ClaimKind.UNCERTAIN:
        why = claim.reason or "an earlier run stopped while this message was being sent"
        # The row keeps str(UncertainSendError): its prefix is the new error's own.
        why = why.removeprefix(_UNCERTAIN_PREFIX)
        return SendResult(
            sms, Outcome.UNCERTAIN, error=UncertainSendError(sms, VortextError(why)), resumed=True
        )
    if kind is ClaimKind.DUPLICATE:
        reason = "is the key of another message of this job; keys must be unique"
    else:  # MISMATCH: the journal says why, and what to do
        reason = claim.reason or "names a different message in the journal"
    return SendResult(sms, Outcome.FAILED, error=InvalidRequestError("key", key[2:], reason))


def _journal_error(journal: JournalBackend, error: Exception) -> Exception:
    if isinstance(error, JournalError):
        return error  # says which journal already
    with contextlib.suppress(Exception):
        error.add_note(f"the bulk job's journal {journal.name!r} failed")
    return error
