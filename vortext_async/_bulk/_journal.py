"""The bulk job's journal: which message was attempted, sent or failed.

:class:`JournalBackend` is what a bulk job needs of a journal; :class:`Journal` keeps
it in a SQLite file (this module), ``PostgresJournal`` on a PostgreSQL server shared
by several hosts (:mod:`vortext_async._journal_postgres`).  :func:`make_journal`
picks one from what the user passed (a path, or a ``postgresql://`` URL).

One row per message of a job, in a ``messages`` table::

    job           the job's name (a journal holds many jobs; keys are unique per job)
    key           'k:<Sms.key>' or 'p:<position in the input>'
    state         'attempting' | 'sent' | 'failed' | 'uncertain'
    run           the run (``runs`` table) that last handled the row
    fingerprint   a hash of the phone number and text (a reordered input is caught)
    phone_number, message_id, reason, retryable

A message's ``attempting`` row is **committed** before :meth:`Journal.claim`
returns, so before its request can be written: a process killed at any moment
leaves each message never attempted (no row), finished (``sent``/``failed``/
``uncertain``) or ``attempting`` (perhaps sent, never resent by default).

A SQLite journal is held by one job at a time: :meth:`Journal.open` takes an
exclusive lock on ``<path>.lock`` (released by the system if the process dies) and
raises :class:`~vortext_async.JournalBusyError` when another job holds it.

Every write goes through one thread that owns the connection and commits whatever
has queued up in one transaction (group commit): the event loop never waits on the
disk, and one ``fsync`` covers many messages.  WAL mode with ``synchronous=FULL``
keeps a commit durable across a power cut, not only across a killed process.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import queue
import re
import socket
import sqlite3
import sys
import threading
import time
from collections.abc import Callable
from typing import IO, Any, Final

from vortext_async._errors import JournalBusyError, JournalError

from ._claims import (
    DEFAULT_JOB,
    SEND_NEW,
    STATES,
    Claim,
    ClaimKind,
    JournalBackend,
    JournalRun,
    JournalStatus,
    Previous,
    decide,
    fingerprint,
    journal_key,
    storable,
)

__all__ = [
    "Claim",
    "ClaimKind",
    "Journal",
    "JournalBackend",
    "JournalRun",
    "JournalStatus",
    "fingerprint",
    "journal_jobs",
    "journal_key",
    "journal_status",
    "make_journal",
]

logger = logging.getLogger("vortext_async")

_SCHEMA_VERSION: Final = 2
_MAX_BATCH: Final = 1024

_SCHEMA: Final = """
CREATE TABLE IF NOT EXISTS runs (
    run INTEGER PRIMARY KEY AUTOINCREMENT,
    started_at REAL NOT NULL,
    job TEXT NOT NULL DEFAULT 'default',
    host TEXT,
    pid INTEGER
);
CREATE TABLE IF NOT EXISTS messages (
    job TEXT NOT NULL,
    key TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('attempting', 'sent', 'failed', 'uncertain')),
    run INTEGER NOT NULL,
    fingerprint TEXT NOT NULL,
    phone_number TEXT,
    message_id TEXT,
    reason TEXT,
    retryable INTEGER,
    PRIMARY KEY (job, key)
) WITHOUT ROWID;
"""

# Version 1 had no jobs: its rows become the job "default".
_MIGRATE_1_TO_2: Final = """
ALTER TABLE messages RENAME TO messages_v1;
ALTER TABLE runs ADD COLUMN job TEXT NOT NULL DEFAULT 'default';
ALTER TABLE runs ADD COLUMN host TEXT;
ALTER TABLE runs ADD COLUMN pid INTEGER;
{schema}
INSERT INTO messages (job, key, state, run, fingerprint, phone_number, message_id, reason,
                      retryable)
    SELECT 'default', key, state, run, fingerprint, phone_number, message_id, reason, retryable
    FROM messages_v1;
DROP TABLE messages_v1;
"""

_POSTGRES_URL: Final = re.compile(r"^postgres(ql)?://", re.IGNORECASE)


def is_postgres_url(journal: object) -> bool:
    """Whether ``journal`` names a PostgreSQL journal (else it is a SQLite path)."""
    return isinstance(journal, str) and _POSTGRES_URL.match(journal) is not None


def make_journal(
    journal: str | os.PathLike[str],
    *,
    job: str = DEFAULT_JOB,
    resend_uncertain: bool = False,
    retry_failed: bool = True,
    replace_changed: bool = False,
) -> JournalBackend:
    """The journal ``journal`` names: a ``postgresql://`` URL, else a SQLite file path."""
    if is_postgres_url(journal):
        from ._journal_postgres import PostgresJournal

        return PostgresJournal(
            str(journal),
            job=job,
            resend_uncertain=resend_uncertain,
            retry_failed=retry_failed,
            replace_changed=replace_changed,
        )
    return Journal(
        journal,
        job=job,
        resend_uncertain=resend_uncertain,
        retry_failed=retry_failed,
        replace_changed=replace_changed,
    )


async def journal_status(journal: str | os.PathLike[str], job: str = DEFAULT_JOB) -> JournalStatus:
    """Read a job's counts from a journal (either kind), without changing it."""
    if is_postgres_url(journal):
        from ._journal_postgres import postgres_status

        return await postgres_status(str(journal), job)
    return await asyncio.to_thread(_sqlite_status, os.fspath(journal), job)


async def journal_jobs(journal: str | os.PathLike[str]) -> dict[str, dict[str, int]]:
    """Every job a journal holds (either kind), with its messages per state."""
    if is_postgres_url(journal):
        from ._journal_postgres import postgres_jobs

        return await postgres_jobs(str(journal))
    return await asyncio.to_thread(_sqlite_jobs, os.fspath(journal))


def _read_sqlite(path: str) -> sqlite3.Connection:
    if not os.path.exists(path):
        raise JournalError(path, "does not exist")
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == 0:
            raise JournalError(path, "is not a bulk journal (an SQLite file without its tables)")
        if version != _SCHEMA_VERSION:
            raise JournalError(path, f"is of schema version {version}, not {_SCHEMA_VERSION}")
    except BaseException as error:
        conn.close()
        if isinstance(error, sqlite3.DatabaseError):
            raise _unusable(path, error) from error
        raise
    return conn


def _unusable(path: str, error: sqlite3.DatabaseError) -> JournalError:
    """The :class:`JournalError` naming ``path`` for SQLite's ``error`` about it."""
    if getattr(error, "sqlite_errorcode", None) == sqlite3.SQLITE_NOTADB:
        return JournalError(path, "is not a bulk journal (not an SQLite database)")
    return JournalError(path, f"cannot be used: {error}")


def _sqlite_jobs(path: str) -> dict[str, dict[str, int]]:
    try:
        return _read_jobs(path)
    except sqlite3.DatabaseError as error:
        raise _unusable(path, error) from error


def _sqlite_status(path: str, job: str) -> JournalStatus:
    try:
        return _read_status(path, job)
    except sqlite3.DatabaseError as error:
        raise _unusable(path, error) from error


def _read_jobs(path: str) -> dict[str, dict[str, int]]:
    conn = _read_sqlite(path)
    try:
        jobs: dict[str, dict[str, int]] = {}
        for job, state, count in conn.execute(
            "SELECT job, state, count(*) FROM messages GROUP BY job, state ORDER BY job"
        ):
            jobs.setdefault(job, dict.fromkeys(STATES, 0))[state] = count
    finally:
        conn.close()
    return jobs


def _read_status(path: str, job: str) -> JournalStatus:
    conn = _read_sqlite(path)
    try:
        counts = dict.fromkeys(STATES, 0)
        for state, count in conn.execute(
            "SELECT state, count(*) FROM messages WHERE job = ? GROUP BY state", (job,)
        ):
            counts[state] = count
        runs = tuple(
            JournalRun(run, host, pid, started, None, attempting)
            for run, host, pid, started, attempting in conn.execute(
                "SELECT r.run, r.host, r.pid, r.started_at, "
                "(SELECT count(*) FROM messages m WHERE m.job = r.job AND m.run = r.run "
                "AND m.state = 'attempting') FROM runs r WHERE r.job = ? ORDER BY r.run",
                (job,),
            )
        )
    finally:
        conn.close()
    return JournalStatus(path, job, counts, runs)


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
    """A bulk job's journal file (SQLite); open with :meth:`open`, close with :meth:`aclose`.

    Args:
        path: The SQLite file (created if missing).
        job: The job's name: a file may hold many jobs, keys are unique per job.
        resend_uncertain: Claims of ``attempting``/``uncertain`` rows say SEND
            (at-least-once).
        retry_failed: Claims of retryable ``failed`` rows say SEND.
        replace_changed: A changed message may take the key of a ``failed`` row
            (never of a ``sent``, ``attempting`` or ``uncertain`` one).
        synchronous: SQLite's ``synchronous`` pragma (``FULL``: durable across a power cut).

    One job at a time holds the file: :meth:`open` raises
    :class:`~vortext_async.JournalBusyError` while another job has it open.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        job: str = DEFAULT_JOB,
        resend_uncertain: bool = False,
        retry_failed: bool = True,
        replace_changed: bool = False,
        synchronous: str = "FULL",
    ) -> None:
        self.path = os.fspath(path)
        self.job = job
        self.resend_uncertain = resend_uncertain
        self.retry_failed = retry_failed
        self.replace_changed = replace_changed
        self._synchronous = synchronous
        self._lock_file: IO[str] | None = None
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
        self.share_size: int | None = None
        """None: one job holds the file, the whole input is its (no shares to claim)."""

    @property
    def name(self) -> str:
        """The journal's path."""
        return self.path

    # -- event loop side ---------------------------------------------------------------

    async def open(self) -> None:
        """Lock the file, start the writer thread, create the tables, record a new run."""
        if self._thread is not None:
            raise RuntimeError("the journal is already open")
        self._lock_file = _lock_exclusively(self.path)
        self._loop = asyncio.get_running_loop()
        self._closed = self._loop.create_future()
        self._thread = threading.Thread(
            target=self._serve, name=f"vortext-journal {self.path}", daemon=True
        )
        self._thread.start()
        try:
            self.run = await self._submit(self._open_db, ())
        except sqlite3.DatabaseError as error:
            raise _unusable(self.path, error) from error

    def claim(self, key: str, fingerprint: str, phone_number: object) -> asyncio.Future[Claim]:
        """Decide what to do with a message; a SEND claim's row is committed when done."""
        return self._submit(self._claim, (key, fingerprint, phone_number))

    def claim_share(self, share: int) -> asyncio.Future[bool]:
        """Always this job's: a SQLite journal is not shared (see :attr:`share_size`)."""
        future: asyncio.Future[bool] = asyncio.get_running_loop().create_future()
        future.set_result(True)
        return future

    def held_elsewhere(self, keys: list[str]) -> asyncio.Future[set[str]]:
        """None: a SQLite journal is not shared (see :attr:`share_size`)."""
        future: asyncio.Future[set[str]] = asyncio.get_running_loop().create_future()
        future.set_result(set())
        return future

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
        try:
            if self._thread is None or self._closed is None:
                return
            if not self._closed.done():
                self._queue.put(_CLOSE)
            await asyncio.shield(self._closed)
            self._thread.join(timeout=1.0)  # it resolved _closed as its last act
        finally:
            lock_file, self._lock_file = self._lock_file, None
            if lock_file is not None:
                lock_file.close()  # releases the lock

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
        if version not in (0, 1, _SCHEMA_VERSION):
            raise JournalError(
                self.path,
                f"is a journal of schema version {version}, this version of "
                f"vortext-async reads version {_SCHEMA_VERSION}",
            )
        if version == 0:
            tables = {row[0] for row in conn.execute("SELECT name FROM sqlite_master")}
            if tables - {"runs", "messages"} and "messages" not in tables:
                raise JournalError(
                    self.path,
                    "is not a bulk journal (an SQLite database with other tables); "
                    "nothing was sent. Give the job a journal file of its own",
                )
        script = _MIGRATE_1_TO_2.format(schema=_SCHEMA) if version == 1 else _SCHEMA
        for statement in script.split(";"):
            if statement.strip():
                conn.execute(statement)
        if version != _SCHEMA_VERSION:
            conn.execute(f"PRAGMA user_version = {_SCHEMA_VERSION}")
            logger.info(
                "bulk journal %s: %s schema version %d",
                self.path,
                "created tables of" if version == 0 else "migrated to",
                _SCHEMA_VERSION,
            )
        cursor = conn.execute(
            "INSERT INTO runs (started_at, job, host, pid) VALUES (?, ?, ?, ?)",
            (time.time(), self.job, socket.gethostname(), os.getpid()),
        )
        run = cursor.lastrowid
        assert run is not None
        return run

    def _claim(
        self, conn: sqlite3.Connection, key: str, fingerprint: str, phone_number: object
    ) -> Claim:
        phone = storable(phone_number) if isinstance(phone_number, str) else repr(phone_number)
        inserted = conn.execute(
            "INSERT OR IGNORE INTO messages (job, key, state, run, fingerprint, phone_number) "
            "VALUES (?, ?, 'attempting', ?, ?, ?)",
            (self.job, key, self.run, fingerprint, phone),
        ).rowcount
        if inserted == 1:
            return SEND_NEW
        state, run, stored_fingerprint, stored_phone, message_id, reason, retryable = conn.execute(
            "SELECT state, run, fingerprint, phone_number, message_id, reason, retryable "
            "FROM messages WHERE job = ? AND key = ?",
            (self.job, key),
        ).fetchone()
        if run == self.run:
            return Claim(ClaimKind.DUPLICATE)
        claim = decide(
            state,
            stored_fingerprint,
            message_id,
            reason,
            bool(retryable),
            fingerprint,
            resend_uncertain=self.resend_uncertain,
            retry_failed=self.retry_failed,
            replace_changed=self.replace_changed,
        )
        if claim.kind is ClaimKind.MISMATCH:
            return claim
        if claim.kind is ClaimKind.SEND:
            conn.execute(
                "UPDATE messages SET state = 'attempting', run = ?, fingerprint = ?, "
                "phone_number = ?, message_id = NULL, reason = NULL, retryable = NULL "
                "WHERE job = ? AND key = ?",
                (self.run, fingerprint, phone, self.job, key),
            )
            previous = (state, message_id, reason, retryable, stored_fingerprint, stored_phone)
            return Claim(ClaimKind.SEND, previous=previous)
        conn.execute(
            "UPDATE messages SET run = ? WHERE job = ? AND key = ?", (self.run, self.job, key)
        )
        return claim

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
            "WHERE job = ? AND key = ?",
            (state, message_id, reason, int(retryable), self.job, key),
        )

    def _unclaim(self, conn: sqlite3.Connection, key: str, previous: Previous) -> None:
        if previous is None:
            conn.execute("DELETE FROM messages WHERE job = ? AND key = ?", (self.job, key))
        else:
            conn.execute(
                "UPDATE messages SET state = ?, message_id = ?, reason = ?, retryable = ?, "
                "fingerprint = ?, phone_number = ? WHERE job = ? AND key = ?",
                (*previous, self.job, key),
            )

    def __repr__(self) -> str:
        return f"<Journal {self.path!r} job={self.job!r} run={self.run}>"


def _lock_exclusively(path: str) -> IO[str]:
    """Hold ``<path>.lock`` for this job's life, or raise JournalBusyError at once."""
    lock_path = path + ".lock"
    try:
        # Readable by its owner only, like the journal (it names the holder's host).
        descriptor = os.open(lock_path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o600)
        lock_file = os.fdopen(descriptor, "a+", encoding="utf-8")
    except OSError as error:
        raise JournalError(path, f"cannot be locked ({lock_path}: {error})") from error
    try:
        if sys.platform == "win32":  # pragma: no cover (POSIX CI)
            import msvcrt

            lock_file.seek(0)
            msvcrt.locking(lock_file.fileno(), msvcrt.LK_NBLCK, 1)
        else:
            import fcntl

            fcntl.flock(lock_file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        lock_file.seek(0)
        holder = lock_file.read().strip() or None
        lock_file.close()
        raise JournalBusyError(path, holder) from None
    lock_file.seek(0)
    lock_file.truncate()
    lock_file.write(f"pid {os.getpid()} on {socket.gethostname()}\n")
    lock_file.flush()
    return lock_file


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
