"""The bulk job's journal: which message was attempted, sent or failed, in SQLite.

One row per message key, in a ``messages`` table::

    key           'k:<Sms.key>' or 'p:<position in the input>'
    state         'attempting' | 'sent' | 'failed' | 'uncertain'
    run           the run (``runs`` table) that last handled the row
    fingerprint   a hash of the phone number and text (a reordered input is caught)
    phone_number, message_id, reason, retryable

A message's ``attempting`` row is **committed** before :meth:`Journal.claim`
returns, so before its request can be written: a process killed at any moment
leaves each message never attempted (no row), finished (``sent``/``failed``/
``uncertain``) or ``attempting`` (perhaps sent, never resent by default).

Every write goes through one thread that owns the connection and commits whatever
has queued up in one transaction (group commit): the event loop never waits on the
disk, and one ``fsync`` covers many messages.  WAL mode with ``synchronous=FULL``
keeps a commit durable across a power cut, not only across a killed process.
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import hashlib
import os
import queue
import sqlite3
import threading
import time
from collections.abc import Callable
from typing import Any, Final

import attrs

__all__ = ["Claim", "ClaimKind", "Journal", "fingerprint", "journal_key"]

_SCHEMA_VERSION: Final = 1
_MAX_BATCH: Final = 1024

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS messages (
    key TEXT PRIMARY KEY,
    state TEXT NOT NULL CHECK (state IN ('attempting', 'sent', 'failed', 'uncertain')),
    run INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    phone_number TEXT,
    message_id TEXT,
    reason TEXT,
    retryable INTEGER
) WITHOUT ROWID;
"""

Previous = tuple[str, str | None, str | None, int | None] | None
"""What a message's row held before a claim changed it, to put back (None: no row)."""


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


@attrs.frozen
class Claim:
    """The journal's answer for one message (``previous``: its row before, for undo)."""

    kind: ClaimKind
    message_id: str | None = None
    reason: str | None = None
    previous: Previous = None


_SEND_NEW: Final = Claim(ClaimKind.SEND)


def journal_key(sms_key: str | None, position: int) -> str:
    """The journal key of a message: its own key, else its position in the input."""
    if sms_key is None:
        return f"p:{position}"
    return f"k:{_storable(sms_key)}"


def _storable(text: str) -> str:
    """``text`` as SQLite can store it: a lone surrogate (not UTF-8) as ``\\udc80``."""
    return text if text.isascii() else text.encode("utf-8", "backslashreplace").decode("utf-8")


def fingerprint(phone_number: object, message: object) -> str:
    """A short hash of what a message says, to notice a key reused for another one."""
    data = f"{phone_number}\x00{message}".encode("utf-8", "surrogatepass")
    return hashlib.blake2b(data, digest_size=8).hexdigest()


def _create_private(path: str) -> None:
    """Create the journal file readable and writable by its owner only (0600), whatever
    the umask; SQLite gives its ``-wal`` and ``-shm`` files the database file's mode."""
    if path in (":memory:", ""):
        return
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # an existing journal keeps the mode its owner gave it
    except OSError:
        return  # no such folder, no permission...: sqlite3.connect says so, as before
    os.close(fd)


_Op = tuple[Callable[..., Any], tuple[Any, ...], "asyncio.Future[Any] | None"]
_CLOSE: Final = object()


class Journal:
    """A bulk job's journal file; open with :meth:`open`, close with :meth:`aclose`.

    ``resend_uncertain``: claims of ``attempting``/``uncertain`` rows say SEND
    (at-least-once).  ``retry_failed``: claims of retryable ``failed`` rows say SEND.
    Only one job should use a journal at a time.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        resend_uncertain: bool = False,
        retry_failed: bool = True,
        synchronous: str = "FULL",
    ) -> None:
        self.path = os.fspath(path)
        self.resend_uncertain = resend_uncertain
        self.retry_failed = retry_failed
        self._synchronous = synchronous
        self._queue: queue.SimpleQueue[_Op | object] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._conn: sqlite3.Connection | None = None
        self._broken: BaseException | None = None
        self._closed: asyncio.Future[None] | None = None
        self.run = 0
        """The run number of this job (set by :meth:`open`)."""
        self.commits = 0
        """Transactions committed so far (one per batch of writes)."""
        self.operations = 0
        """Writes and claims handled so far."""

    # -- event loop side ---------------------------------------------------------------

    async def open(self) -> None:
        """Start the writer thread, create the tables and record a new run."""
        if self._thread is not None:
            raise RuntimeError("the journal is already open")
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, name=f"vortext-journal {self.path}", daemon=True
        )
        self._thread.start()
        self.run = await self._submit(self._open_db, ())

    def claim(self, key: str, fingerprint: str, phone_number: object) -> asyncio.Future[Claim]:
        """Decide what to do with a message; a SEND claim's row is committed when done."""
        return self._submit(self._claim, (key, fingerprint, phone_number))

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
        return self._submit(self._settle, (key, state, message_id, reason, retryable))

    def settle_nowait(
        self, key: str, state: str, *, reason: str | None = None, retryable: bool = False
    ) -> None:
        """Like :meth:`settle` without waiting (committed before :meth:`aclose` returns)."""
        self._queue.put((self._settle, (key, state, None, reason, retryable), None))

    def unclaim(self, key: str, previous: Previous) -> None:
        """Undo a SEND claim whose message was not sent after all (no wait)."""
        self._queue.put((self._unclaim, (key, previous), None))

    async def aclose(self) -> None:
        """Commit every queued write, close the database and stop the thread."""
        if self._thread is None or self._closed is None:
            return
        if not self._closed.done():
            self._queue.put(_CLOSE)
        await asyncio.shield(self._closed)
        self._thread.join(timeout=1.0)  # it resolved _closed as its last act

    def _submit(self, function: Callable[..., Any], args: tuple[Any, ...]) -> asyncio.Future[Any]:
        assert self._loop is not None, "open() the journal first"
        future: asyncio.Future[Any] = self._loop.create_future()
        if self._broken is not None:
            future.set_exception(self._broken)
        else:
            self._queue.put((function, args, future))
        return future

    # -- writer thread -----------------------------------------------------------------

    def _serve(self) -> None:
        conn: sqlite3.Connection | None = None
        try:
            _create_private(self.path)
            conn = sqlite3.connect(self.path, isolation_level=None, timeout=30.0)
            conn.execute("PRAGMA journal_mode=WAL").fetchone()
            conn.execute(f"PRAGMA synchronous={self._synchronous}")
            self._conn = conn
            self._loop_batches(conn)
        except BaseException as error:  # connect failed: fail every pending operation
            self._broken = error
            self._drain_failed(error)
        finally:
            if conn is not None:
                conn.close()
            self._conn = None
            self._call_in_loop(_set_result, self._closed, None)

    def _loop_batches(self, conn: sqlite3.Connection) -> None:
        get, get_nowait = self._queue.get, self._queue.get_nowait
        while True:
            batch: list[Any] = [get()]
            while len(batch) < _MAX_BATCH:
                try:
                    batch.append(get_nowait())
                except queue.Empty:
                    break
            closing = False
            ops: list[_Op] = []
            for item in batch:
                if item is _CLOSE:
                    closing = True
                else:
                    ops.append(item)
            if ops:
                self._run_batch(conn, ops)
            if closing:
                # Anything queued after the close request (late fire-and-forget writes).
                late: list[_Op] = []
                while True:
                    try:
                        item = get_nowait()
                    except queue.Empty:
                        break
                    if item is not _CLOSE:
                        late.append(item)  # type: ignore[arg-type]
                if late:
                    self._run_batch(conn, late)
                return

    def _run_batch(self, conn: sqlite3.Connection, ops: list[_Op]) -> None:
        if self._broken is not None:
            self._call_in_loop(_deliver, [(f, None, self._broken) for _, _, f in ops])
            return
        results: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for function, args, future in ops:
                results.append((future, function(conn, *args), None))
            conn.execute("COMMIT")
        except BaseException as error:
            self._broken = error
            with contextlib.suppress(sqlite3.Error):
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
            results = [(future, None, error) for _, _, future in ops]
        else:
            self.commits += 1
            self.operations += len(ops)
        self._call_in_loop(_deliver, results)

    def _drain_failed(self, error: BaseException) -> None:
        failed: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]] = []
        while True:
            try:
                item = self._queue.get_nowait()
            except queue.Empty:
                break
            if item is not _CLOSE:
                failed.append((item[2], None, error))  # type: ignore[index]
        self._call_in_loop(_deliver, failed)

    def _call_in_loop(self, function: Callable[..., None], *args: Any) -> None:
        loop = self._loop
        if loop is None:
            return
        with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting any more
            loop.call_soon_threadsafe(function, *args)

    def _open_db(self, conn: sqlite3.Connection) -> int:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version not in (0, _SCHEMA_VERSION):
            raise sqlite3.DatabaseError(
                f"{self.path} is a journal of schema version {version}, "
                f"this version of vortext-async reads version {_SCHEMA_VERSION}"
            )
        for statement in _SCHEMA.split(";"):
            if statement.strip():
                conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
        cursor = conn.execute("INSERT INTO runs (started_at) VALUES (?)", (time.time(),))
        run = cursor.lastrowid
        assert run is not None
        return run

    def _claim(
        self, conn: sqlite3.Connection, key: str, fingerprint: str, phone_number: object
    ) -> Claim:
        phone = _storable(phone_number) if isinstance(phone_number, str) else repr(phone_number)
        inserted = conn.execute(
            "INSERT OR IGNORE INTO messages (key, state, run, fingerprint, phone_number) "
            "VALUES (?, 'attempting', ?, ?, ?)",
            (key, self.run, fingerprint, phone),
        ).rowcount
        if inserted == 1:
            return _SEND_NEW
        state, run, stored_fingerprint, message_id, reason, retryable = conn.execute(
            "SELECT state, run, fingerprint, message_id, reason, retryable "
            "FROM messages WHERE key = ?",
            (key,),
        ).fetchone()
        if run == self.run:
            return Claim(ClaimKind.DUPLICATE)
        if stored_fingerprint != fingerprint:
            return Claim(ClaimKind.MISMATCH)
        previous: Previous = (state, message_id, reason, retryable)
        resend = (state == "failed" and bool(retryable) and self.retry_failed) or (
            state in ("attempting", "uncertain") and self.resend_uncertain
        )
        if resend:
            conn.execute(
                "UPDATE messages SET state = 'attempting', run = ?, message_id = NULL, "
                "reason = NULL, retryable = NULL WHERE key = ?",
                (self.run, key),
            )
            return Claim(ClaimKind.SEND, previous=previous)
        conn.execute("UPDATE messages SET run = ? WHERE key = ?", (self.run, key))
        if state == "sent":
            return Claim(ClaimKind.SENT, message_id=message_id)
        if state == "failed":
            return Claim(ClaimKind.FAILED, reason=reason)
        return Claim(ClaimKind.UNCERTAIN, reason=reason)

    def _settle(
        self,
        conn: sqlite3.Connection,
        key: str,
        state: str,
        message_id: str | None,
        reason: str | None,
        retryable: bool,
    ) -> None:
        conn.execute(
            "UPDATE messages SET state = ?, message_id = ?, reason = ?, retryable = ? "
            "WHERE key = ?",
            (state, message_id, reason, int(retryable), key),
        )

    def _unclaim(self, conn: sqlite3.Connection, key: str, previous: Previous) -> None:
        if previous is None:
            conn.execute("DELETE FROM messages WHERE key = ?", (key,))
        else:
            conn.execute(
                "UPDATE messages SET state = ?, message_id = ?, reason = ?, retryable = ? "
                "WHERE key = ?",
                (*previous, key),
            )

    def __repr__(self) -> str:
        return f"<Journal {self.path!r} run={self.run}>"


def _deliver(results: list[tuple[asyncio.Future[Any] | None, Any, BaseException | None]]) -> None:
    for future, value, error in results:
        if future is None or future.done():
            continue
        if error is not None:
            future.set_exception(error)
        else:
            future.set_result(value)


def _set_result(future: asyncio.Future[None] | None, value: None) -> None:
    if future is not None and not future.done():
        future.set_result(value)
