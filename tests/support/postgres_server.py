"""A throwaway PostgreSQL server for tests and benchmarks: initdb, start, stop.

``PostgresServer(root)`` runs ``initdb`` into ``root/data`` (trust authentication)
and ``postgres -D data -p PORT -k data -c listen_addresses=127.0.0.1``.  The binaries
come from PATH or /usr/lib/postgresql/*/bin.  PostgreSQL refuses to run as root, so as
root the data directory is given to the ``postgres`` user and the server runs as that
user (``runuser -u postgres --``).  :func:`find_postgres_bin` is None where no
PostgreSQL is installed: tests skip with that reason.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

SKIP_REASON = (
    "no PostgreSQL server binaries (initdb, postgres) on PATH or in "
    "/usr/lib/postgresql/*/bin: install the 'postgresql' package"
)


def find_postgres_bin() -> Path | None:
    """The directory holding ``initdb`` and ``postgres``, or None."""
    found = shutil.which("initdb")
    if found is not None and shutil.which("postgres") is not None:
        return Path(os.path.realpath(found)).parent
    for candidate in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if os.access(os.path.join(candidate, "initdb"), os.X_OK):
            return Path(candidate)
    return None


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class PostgresServer:
    """One PostgreSQL cluster in ``root``; :meth:`start` and :meth:`stop` may repeat.

    ``fsync`` off by default: the tests kill processes, not the machine (a benchmark
    turns it on, to compare with SQLite's ``synchronous=FULL`` fairly).
    """

    def __init__(self, root: Path, bin_dir: Path | None = None, *, fsync: bool = False) -> None:
        found = bin_dir or find_postgres_bin()
        if found is None:
            raise RuntimeError(SKIP_REASON)
        self.bin_dir = found
        self.root = root
        self.data = root / "data"
        self.port = _free_port()
        self.fsync = fsync
        self.process: subprocess.Popen[bytes] | None = None
        self._as_postgres = os.geteuid() == 0
        self._initdb()

    @property
    def url(self) -> str:
        """A libpq URL for the ``postgres`` database as the ``postgres`` user."""
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"

    def _command(self, *argv: str) -> list[str]:
        if self._as_postgres:
            return ["runuser", "-u", "postgres", "--", *argv]
        return list(argv)

    def _initdb(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if self._as_postgres:
            user = pwd.getpwnam("postgres")
            os.chown(self.root, user.pw_uid, user.pw_gid)
            # The server must be able to reach its directory through every parent.
            for parent in self.root.parents:
                with contextlib.suppress(OSError):
                    mode = parent.stat().st_mode
                    if not mode & 0o001:
                        os.chmod(parent, mode | 0o001)
        subprocess.run(
            self._command(
                str(self.bin_dir / "initdb"),
                "-D",
                str(self.data),
                "-U",
                "postgres",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ),
            check=True,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )

    def start(self) -> None:
        """Start the server and wait until it accepts connections."""
        assert self.process is None, "already running"
        log = open(self.root / "server.log", "ab")  # noqa: SIM115 (kept for the process)
        self.process = subprocess.Popen(
            self._command(
                str(self.bin_dir / "postgres"),
                "-D",
                str(self.data),
                "-p",
                str(self.port),
                "-k",
                str(self.data),
                "-c",
                "listen_addresses=127.0.0.1",
                "-c",
                f"fsync={'on' if self.fsync else 'off'}",
                "-c",
                "max_connections=200",
            ),
            stdout=log,
            stderr=log,
        )
        log.close()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    "postgres exited: " + (self.root / "server.log").read_text()[-2000:]
                )
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.5):
                    pass
            except OSError:
                time.sleep(0.05)
                continue
            if self._ready():
                return
            time.sleep(0.05)
        raise RuntimeError("postgres did not start in 60 s")

    def _ready(self) -> bool:
        isready = self.bin_dir / "pg_isready"
        if not isready.exists():
            return True
        done = subprocess.run(
            [str(isready), "-h", "127.0.0.1", "-p", str(self.port), "-U", "postgres"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        return done.returncode == 0

    def stop(self, *, fast: bool = True) -> None:
        """Stop the server (``fast``: SIGINT, sessions cut at once) and wait for it."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        # The postmaster itself (under runuser, the Popen is runuser's process).
        sig = signal.SIGINT if fast else signal.SIGTERM
        try:
            pid = int((self.data / "postmaster.pid").read_text().split()[0])
            os.kill(pid, sig)
        except (OSError, ValueError, IndexError):
            process.send_signal(sig)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def running_postgres(*, fsync: bool = False) -> Iterator[PostgresServer]:
    """A started server in a temporary directory of its own, stopped and removed on exit.

    Not under pytest's ``tmp_path``: other pytest processes of the same user prune old
    base directories, and the server's data must outlive them.
    """
    root = Path(tempfile.mkdtemp(prefix="vortext-postgres-"))
    try:
        server = PostgresServer(root / "cluster", fsync=fsync)
        server.start()
        try:
            yield server
        finally:
            server.stop()
    finally:
        shutil.rmtree(root, ignore_errors=True)
