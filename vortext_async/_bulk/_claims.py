"""What every bulk journal shares: claims, their answers, and what a journal must do.

A journal (the SQLite :class:`~vortext_async._bulk._journal.Journal`, or
:class:`~vortext_async._bulk._journal_postgres.PostgresJournal`) implements
:class:`JournalBackend`; both judge a row left by an earlier run with :func:`decide`.
"""

from __future__ import annotations

import asyncio
import enum
import hashlib
from typing import Any, Final, Protocol

import attrs

__all__ = [
    "DEFAULT_JOB",
    "STATES",
    "Claim",
    "ClaimKind",
    "JournalBackend",
    "JournalRun",
    "JournalStatus",
    "Previous",
    "decide",
    "fingerprint",
    "journal_key",
    "storable",
]

DEFAULT_JOB: Final = "default"
"""The job name of ``send_bulk`` when none is given."""

STATES: Final = ("attempting", "sent", "failed", "uncertain")


Previous = tuple[str, str | None, str | None, Any, str, str | None] | None
"""What a message's row held before a claim changed it, to put back (None: no row):
state, message_id, reason, retryable, fingerprint, phone_number."""


class ClaimKind(enum.Enum):
    """What the journal says to do with a message."""

    SEND = "send"
    """Send it: its ``attempting`` row is committed."""
    SENT = "sent"
    """An earlier run sent it (``message_id``): report it, do not send."""
    FAILED = "failed"
    """An earlier run failed it for a reason that does not allow a resend."""
    UNCERTAIN = "uncertain"
    """An earlier run may have sent it (``attempting`` or ``uncertain``): do not resend."""
    DUPLICATE = "duplicate"
    """Another message of this run has the same key."""
    MISMATCH = "mismatch"
    """The journal holds a different message under this key (a reordered input)."""
    ELSEWHERE = "elsewhere"
    """Another host running this job holds it (PostgreSQL): skip it, that host reports it."""


@attrs.frozen
class Claim:
    """The journal's answer for one message (``previous``: its row before, for undo)."""

    kind: ClaimKind
    message_id: str | None = None
    reason: str | None = None
    previous: Previous = None


SEND_NEW: Final = Claim(ClaimKind.SEND)


def decide(
    state: str,
    stored_fingerprint: str,
    message_id: str | None,
    reason: str | None,
    retryable: bool,
    new_fingerprint: str,
    *,
    resend_uncertain: bool,
    retry_failed: bool,
    replace_changed: bool,
) -> Claim:
    """What a claim of an existing row (left by an earlier run) says.

    SEND means: take the row over (``attempting`` again, with the new message's
    fingerprint when ``replace_changed`` let a changed message take the key).
    """
    if stored_fingerprint != new_fingerprint:
        # A changed message may take the key only where the earlier one surely did
        # not go out: a FAILED row.  SENT and UNCERTAIN keys are never replaced.
        if replace_changed and state == "failed":
            return SEND_NEW
        return Claim(ClaimKind.MISMATCH, reason=_mismatch(state, message_id, replace_changed))
    if (state == "failed" and retryable and retry_failed) or (
        state in ("attempting", "uncertain") and resend_uncertain
    ):
        return SEND_NEW
    if state == "sent":
        return Claim(ClaimKind.SENT, message_id=message_id)
    if state == "failed":
        return Claim(ClaimKind.FAILED, reason=reason)
    return Claim(ClaimKind.UNCERTAIN, reason=reason)


def _mismatch(state: str, message_id: str | None, replace_changed: bool) -> str:
    """Why a changed message cannot take its key, and what to do about it."""
    if state == "failed":  # so replace_changed is off: it would have taken the key
        return (
            "names a different message in the journal, whose send failed: was the input "
            "reordered, or is this another job's journal?  If the message was corrected, "
            "pass replace_changed=True (vortext bulk --replace-changed) to send it "
            "under this key"
        )
    if state == "sent":
        earlier = f"one already sent (message id {message_id})" if message_id else "one sent"
    else:
        earlier = "one that may have been sent (its send's outcome is uncertain)"
    if replace_changed:
        return (
            f"names a different message in the journal, {earlier}; replace_changed "
            "replaces only a message whose send failed, never one that was or may have "
            "been sent: give the changed message a new key"
        )
    return (
        f"names a different message in the journal, {earlier}: was the input reordered, "
        "or is this another job's journal?  A changed message needs a key of its own"
    )


class JournalBackend(Protocol):
    """What a bulk job needs of its journal (SQLite :class:`Journal`, ``PostgresJournal``).

    :meth:`claim` answers SEND only once the message's ``attempting`` row is durable
    (committed); every write after it is queued and committed in order.
    """

    @property
    def name(self) -> str:
        """The journal as shown in messages: a path, or a URL without its password."""

    run: int
    """This run's number in the journal (set by :meth:`open`)."""

    share_size: int | None
    """Messages per share of the input, for a journal several hosts share: the job
    claims a share (:meth:`claim_share`) before the messages in it, and puts off the
    shares other hosts hold.  None: no shares."""

    async def open(self) -> None:
        """Connect, create the tables if needed and record a new run."""

    def claim(self, key: str, fingerprint: str, phone_number: object) -> asyncio.Future[Claim]:
        """Decide what to do with a message; a SEND claim's row is committed when done."""

    def claim_share(self, share: int) -> asyncio.Future[bool]:
        """Whether this run takes share ``share`` of the input (positions ``share *
        share_size`` on) now; False: another live host does, come back to it later."""

    def held_elsewhere(self, keys: list[str]) -> asyncio.Future[set[str]]:
        """Those of ``keys`` claimed by a host of this job that ran alongside this one:
        a claim of each would answer :attr:`ClaimKind.ELSEWHERE`."""

    def settle(
        self,
        key: str,
        state: str,
        *,
        message_id: str | None = None,
        reason: str | None = None,
        retryable: bool = False,
    ) -> asyncio.Future[None]:
        """Record how a message's send ended (``sent``, ``failed`` or ``uncertain``)."""

    def settle_nowait(
        self, key: str, state: str, *, reason: str | None = None, retryable: bool = False
    ) -> None:
        """Like :meth:`settle` without waiting (committed before :meth:`aclose` returns)."""

    def unclaim(self, key: str, previous: Previous) -> None:
        """Undo a SEND claim whose message was not sent after all (no wait)."""

    async def aclose(self) -> None:
        """Commit every queued write and close."""


@attrs.frozen
class JournalRun:
    """One run of a job, as the journal recorded it."""

    run: int
    """The run's number in the journal."""
    host: str | None
    """The host name of the process that ran it."""
    pid: int | None
    """The process id that ran it."""
    started_at: float
    """When it started (seconds since the epoch)."""
    live: bool | None
    """Whether its process still runs (PostgreSQL: it holds its lock); None: unknown."""
    attempting: int
    """Its messages still ``attempting`` (being sent, or left uncertain by a dead run)."""


@attrs.frozen
class JournalStatus:
    """A job's counts in a journal, for ``vortext journal``."""

    journal: str
    """The journal: a path, or a URL without its password."""
    job: str
    """The job's name."""
    counts: dict[str, int]
    """Messages per state: ``attempting``, ``sent``, ``failed``, ``uncertain``."""
    runs: tuple[JournalRun, ...]
    """The job's runs, oldest first."""

    @property
    def total(self) -> int:
        """Every message the journal holds for the job."""
        return sum(self.counts.values())


def journal_key(sms_key: str | None, position: int) -> str:
    """The journal key of a message: its own key, else its position in the input."""
    if sms_key is None:
        return f"p:{position}"
    return f"k:{storable(sms_key)}"


def storable(text: str) -> str:
    """``text`` as a journal can store it: a lone surrogate (not UTF-8) as ``\\udc80``."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def fingerprint(phone_number: object, message: object) -> str:
    """A short hash of what a message says, to notice a key reused for another one."""
    data = f"{phone_number}\x00{message}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()
