"""The one fault-injecting HTTP/1.1 server of the tests, on loopback, on raw asyncio streams.

httpx-level mocks cannot drop a TCP connection half way or leave a client waiting
for an answer that never comes; this server does, on a real socket.  Every test
that needs raw HTTP uses it (a scripted fault, a canned answer, or a policy in a
subclass's :meth:`FaultServer.respond`, like ``WindowServer``)::

    async with FaultServer() as server:
        server.script(Fault.answer(503), Fault.reset(), Fault.ok())
        client = VortextClient("u", "p", base_url=server.url)
        ...
        assert server.processed_for("hello") == 1

Each request, once it has fully arrived, takes the next :class:`Fault` of the script
(or :attr:`FaultServer.default`, a success, when the script is empty; a subclass may
decide in :meth:`FaultServer.respond` instead) and the server does what it says.
Every request that arrived is recorded as a :class:`Received` with whether the
server *processed* it (it may have acted on it: an SMS it may have sent) or not
(it refused it, or dropped it unread).

It speaks just enough HTTP/1.1 for the client: keep-alive, ``Content-Length``
bodies.  :func:`refused_url` gives an address where nothing listens.

:class:`EdgeServer` is the same server on an event loop of its own, in a thread (so
it serves clients of several ``asyncio.run`` calls and of child processes alike),
answering by the first segment of the request's path: a dripped answer, a huge one,
a gzip bomb, a redirect...

To add a behaviour: a new ``Kind``, a class method on :class:`Fault` that builds it,
and one branch in ``FaultServer._act``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gzip
import itertools
import json
import socket
import ssl
import struct
import threading
import zlib
from collections import deque
from collections.abc import Callable, Coroutine, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from http import HTTPStatus
from types import TracebackType
from typing import Any, Literal, TypeVar

__all__ = [
    "EdgeServer",
    "Fault",
    "FaultServer",
    "Received",
    "gzip_bomb",
    "read_request",
    "refused_url",
]

T = TypeVar("T")
_CHUNK = 64 * 1024

Kind = Literal[
    "answer",
    "ok",
    "raw",
    "close_unread",
    "reset_unread",
    "close_after_read",
    "reset_after_read",
    "hold",
    "drip",
    "drip_body",
    "stream",
]
Headers = Mapping[str, str] | Sequence[tuple[str, str]]


@dataclass(frozen=True)
class Fault:
    """What the server does with one request (build them with the class methods)."""

    kind: Kind
    status: int = 200
    headers: tuple[tuple[str, str], ...] = ()
    body: bytes = b""
    delay: float = 0.0
    """Seconds the server waits, once the request is read, before doing the rest."""
    interval: float = 0.0
    """Seconds between two bytes of a dripped answer."""
    length: int = 0
    """Bytes of a streamed body."""

    @classmethod
    def ok(cls) -> Fault:
        """A success: 200 with a fresh ``messageId`` to a send, a status or a detail to a read."""
        return cls("ok")

    @classmethod
    def answer(cls, status: int, body: bytes | str = b"", headers: Headers | None = None) -> Fault:
        """Exactly this status, body and headers (the request counts as processed
        unless the status says it was refused: 4xx or 503).

        ``headers`` is a mapping, or pairs to repeat a header; ``Content-Length`` is
        added, and ``Content-Type: application/json`` unless given.  The body is sent
        as is: gzip it and say ``Content-Encoding: gzip`` for a compressed answer.
        """
        raw = body.encode() if isinstance(body, str) else body
        pairs = headers.items() if isinstance(headers, Mapping) else headers or ()
        return cls("answer", status, tuple(pairs), raw)

    @classmethod
    def raw(cls, data: bytes) -> Fault:
        """Write exactly these bytes (not HTTP, if you like) and close: processed."""
        return cls("raw", body=data)

    @classmethod
    def close_unread(cls) -> Fault:
        """Close the connection (FIN) without handling the request: never processed."""
        return cls("close_unread")

    @classmethod
    def reset_unread(cls) -> Fault:
        """Reset the connection (RST, ``SO_LINGER`` 0) without handling the request."""
        return cls("reset_unread")

    @classmethod
    def close(cls) -> Fault:
        """Handle the request (processed), then close the connection (FIN), no answer."""
        return cls("close_after_read")

    @classmethod
    def reset(cls) -> Fault:
        """Handle the request (processed), then reset the connection instead of answering."""
        return cls("reset_after_read")

    @classmethod
    def hold(cls) -> Fault:
        """Handle the request (processed) and never answer, until the client gives up."""
        return cls("hold")

    @classmethod
    def drip(cls, interval: float) -> Fault:
        """A success (as :meth:`ok`), written one byte every ``interval`` seconds, status
        line and headers included: each byte comes well within a read timeout."""
        return cls("drip", interval=interval)

    @classmethod
    def drip_body(cls, interval: float) -> Fault:
        """A success whose status line and headers come at once and whose body then
        comes one byte every ``interval`` seconds (the deadline must hold mid-body)."""
        return cls("drip_body", interval=interval)

    @classmethod
    def stream(cls, length: int) -> Fault:
        """A 200 whose ``Content-Length`` body is ``length`` bytes, written in 64 KiB
        chunks (never held whole)."""
        return cls("stream", length=length)

    def after(self, seconds: float) -> Fault:
        """The same, once the server has waited ``seconds`` after reading the request."""
        return replace(self, delay=seconds)

    @property
    def processes(self) -> bool:
        """Whether the server may have acted on a request treated so."""
        if self.kind in ("close_unread", "reset_unread"):
            return False
        if self.kind == "answer":
            return not (400 <= self.status < 500 or self.status == 503)
        return True


@dataclass
class Received:
    """One request that arrived, and what the server did with it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    fault: Fault
    connection: int
    message_id: str | None = None
    answer_size: int | None = None
    """Bytes of the whole answer (status line, headers and body), once chosen."""
    written: int | None = None
    """Bytes of the answer written before the client left, once the answer ended."""

    @property
    def processed(self) -> bool:
        return self.fault.processes

    def json(self) -> Any:
        return json.loads(self.body) if self.body else None

    @property
    def message(self) -> str | None:
        """The SMS text of a send, to count requests per message."""
        if self.method != "POST":
            return None
        data = self.json()
        return data.get("message") if isinstance(data, dict) else None


class FaultServer:
    """``async with FaultServer() as server:`` then ``server.url`` and ``server.script(...)``.

    Args:
        default: what a request gets when the script is empty (a success).
        tls: a server-side ``ssl.SSLContext``: serve HTTPS.
    """

    def __init__(self, *, default: Fault | None = None, tls: ssl.SSLContext | None = None) -> None:
        self.default = default if default is not None else Fault.ok()
        self.tls = tls
        """A server-side TLS context: the server speaks HTTPS (``url`` says so)."""
        self.requests: list[Received] = []
        self.port = 0
        self.connections_opened = 0
        self.most_open_connections = 0
        """The most connections the client held open at once."""
        self._script: deque[Fault] = deque()
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()
        self._open: set[int] = set()
        self._all_closed = asyncio.Event()
        self._all_closed.set()
        self._arrived = asyncio.Condition()
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def script(self, *faults: Fault) -> None:
        """Queue what the next requests get, in order (then :attr:`default`)."""
        self._script.extend(faults)

    async def respond(self, received: Received) -> Fault:
        """The fault for one request that has arrived: the next of the script, else
        :attr:`default`.  Subclasses override it to answer by a policy of their own
        (it may await: the request is recorded once it returns)."""
        return self._script.popleft() if self._script else self.default

    @property
    def pending_faults(self) -> int:
        """Faults of the script not used yet."""
        return len(self._script)

    # -- what happened ------------------------------------------------------------------

    def received_for(self, message: str) -> list[Received]:
        """The send requests of the SMS whose text is ``message``, in order of arrival."""
        return [r for r in self.requests if r.message == message]

    def processed_for(self, message: str) -> int:
        """How many sends of ``message`` the server may have acted on."""
        return sum(1 for r in self.received_for(message) if r.processed)

    @property
    def open_connections(self) -> int:
        """Connections the client still holds open."""
        return len(self._open)

    async def wait_all_closed(self, timeout: float = 5.0) -> None:
        """Until the client has closed every connection (a guard, not a timing)."""
        await asyncio.wait_for(self._all_closed.wait(), timeout)

    async def wait_requests(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` requests have arrived (a guard against hangs, not a timing)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) >= count)

    async def wait_answered(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` answers are written whole or cut by the client (a guard)."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(
                lambda: sum(r.written is not None for r in self.requests) >= count
            )

    # -- lifecycle ----------------------------------------------------------------------

    async def start(self, *, port: int = 0) -> None:
        """Listen on ``port`` (0: a free one); nothing if already listening."""
        if self._server is None:
            self._server = await asyncio.start_server(self._serve, "127.0.0.1", port, ssl=self.tls)
            self.port = self._server.sockets[0].getsockname()[1]

    async def __aenter__(self) -> FaultServer:
        await self.start(port=self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Stop listening, cut the connections left, and wait for every handler."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._handlers:
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers)

    @property
    def handler_tasks(self) -> frozenset[asyncio.Task[None]]:
        """The server's own tasks (to tell them from tasks a client left behind)."""
        return frozenset(self._handlers)

    # -- serving -------------------------------------------------------------------------

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        self.connections_opened += 1
        connection = self.connections_opened
        self._open.add(connection)
        self.most_open_connections = max(self.most_open_connections, len(self._open))
        self._all_closed.clear()
        try:
            while await self._one_request(reader, writer, connection):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass  # the client went away
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()
            self._open.discard(connection)
            if not self._open:
                self._all_closed.set()

    async def _one_request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, connection: int
    ) -> bool:
        """Serve one request; False when the connection is to be closed."""
        request = await read_request(reader)
        if request is None:
            return False  # the client closed an idle connection
        method, path, headers, body = request

        received = Received(method, path, headers, body, self.default, connection)
        received.fault = fault = await self.respond(received)
        async with self._arrived:
            self.requests.append(received)
            self._arrived.notify_all()
        if fault.delay:
            await asyncio.sleep(fault.delay)
        out = _Out(writer)
        try:
            return await self._act(fault, received, reader, out)
        finally:
            async with self._arrived:  # never waits: the lock is only held to notify
                received.written = out.written
                self._arrived.notify_all()

    async def _act(
        self,
        fault: Fault,
        received: Received,
        reader: asyncio.StreamReader,
        out: _Out,
    ) -> bool:
        """Do what ``fault`` says; False when the connection is to be closed."""
        if fault.kind in ("close_unread", "close_after_read"):
            return False
        if fault.kind in ("reset_unread", "reset_after_read"):
            _reset(out.writer)
            return False
        if fault.kind == "hold":
            # Never answer: wait for the client to give up (EOF) or the server to stop.
            await reader.read()
            return False
        if fault.kind == "raw":
            await out.send(fault.body)
            return False
        if fault.kind == "stream":
            head = _response(200, b"", (), length=fault.length)
            received.answer_size = len(head) + fault.length
            await out.send(head)
            chunk = b"x" * _CHUNK
            for left in range(fault.length, 0, -_CHUNK):
                await out.send(chunk[: min(left, _CHUNK)])
            return received.headers.get("connection", "").lower() != "close"
        if fault.kind in ("ok", "drip", "drip_body"):
            status, payload = self._success(received)
            extra: tuple[tuple[str, str], ...] = ()
        else:
            status, payload, extra = fault.status, fault.body, fault.headers
        answer = _response(status, payload, extra)
        received.answer_size = len(answer)
        if fault.kind in ("drip", "drip_body"):
            head = answer.index(b"\r\n\r\n") + 4 if fault.kind == "drip_body" else 0
            if head:
                await out.send(answer[:head])
            for byte in answer[head:]:
                await out.send(bytes([byte]))
                await asyncio.sleep(fault.interval)
        else:
            await out.send(answer)
        return received.headers.get("connection", "").lower() != "close"

    def _success(self, received: Received) -> tuple[int, bytes]:
        if received.method == "POST":
            received.message_id = f"m-{next(self._ids)}"
            return 200, json.dumps({"messageId": received.message_id}).encode()
        if received.path.endswith("/status"):
            return 200, b'{"status": "OK"}'
        message_id = received.path.rsplit("/", 1)[-1]
        detail = {"messageId": message_id, "phoneNumber": "+33611272727", "message": "hello"}
        return 200, json.dumps(detail).encode()


class EdgeServer(FaultServer):
    """``with EdgeServer() as server:`` then ``server.url_for("drip-20")``, ``server.requests``.

    A fault server on an event loop of its own, in a thread: it serves clients of
    several ``asyncio.run`` calls and of child processes alike, and a test may block
    on it (:meth:`run`).  What it does to a request is chosen by the first segment
    of its path, so a client picks the edge through its ``base_url`` (``POST
    /huge-50000000/sms`` for ``base_url=server.url_for("huge-50000000")``):

    - ``ok``: 200 with a fresh ``messageId`` (to a send), ``{"status": "OK"}`` (to a read);
    - ``drip-<ms>``: that success written one byte every ``<ms>`` milliseconds, status
      line and headers included (every byte arrives well within a read timeout);
    - ``bodydrip-<ms>``: that success with its status line and headers at once, then its
      body one byte every ``<ms>`` milliseconds;
    - ``huge-<bytes>``: a 200 whose body is ``<bytes>`` long, in 64 KiB chunks;
    - ``bomb-<megabytes>``: a 200 with ``Content-Encoding: gzip`` whose body inflates to
      ``<megabytes>`` MiB of zeros (about 1 KiB sent per MiB);
    - ``gzip``, ``deflate`` (zlib-wrapped, as the RFC says), ``rawdeflate`` (sent as
      ``deflate`` without the zlib wrapper, as some servers do), ``br`` (labelled
      brotli, which the client does not ask for): as ``ok``, the body so encoded;
    - ``fail-<bytes>``: a 500 whose body is ``<bytes>`` long;
    - ``redirect-<status>``: that status with ``Location: /ok/sms`` (a place that would
      accept the request, were it followed).
    """

    def __init__(self) -> None:
        super().__init__()
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None

    def url_for(self, edge: str) -> str:
        """The base URL whose requests get ``edge``."""
        return f"{self.url}/{edge}"

    def sends(self) -> list[Received]:
        """The ``POST`` requests seen, in order of arrival."""
        return [r for r in list(self.requests) if r.method == "POST"]

    def run(self, coroutine: Coroutine[Any, Any, T]) -> T:
        """Run ``coroutine`` on the server's loop from another thread, until it ends:
        ``server.run(server.wait_answered(1))``."""
        assert self._loop is not None, "the server is not running"
        return asyncio.run_coroutine_threadsafe(coroutine, self._loop).result()

    async def respond(self, received: Received) -> Fault:
        edge = received.path.lstrip("/").split("/", 1)[0]
        kind, _, arg = edge.partition("-")
        if kind == "drip":
            return Fault.drip(int(arg) / 1000)
        if kind == "bodydrip":
            return Fault.drip_body(int(arg) / 1000)
        if kind == "huge":
            return Fault.stream(int(arg))
        if kind == "bomb":
            return Fault.answer(200, gzip_bomb(int(arg)), {"Content-Encoding": "gzip"})
        if kind == "fail":
            return Fault.answer(500, b"e" * int(arg))
        if kind == "redirect":
            return Fault.answer(int(arg), headers={"Location": "/ok/sms"})
        if kind in _ENCODERS:
            coding, encode = _ENCODERS[kind]
            _, payload = self._success(received)
            return Fault.answer(200, encode(payload), {"Content-Encoding": coding})
        return Fault.ok()

    def __enter__(self) -> EdgeServer:
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        self.run(self.start())
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._loop is not None
        assert self._thread is not None
        self.run(self.aclose())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join()
        self._loop.close()
        self._loop = self._thread = None


async def read_request(
    reader: asyncio.StreamReader,
) -> tuple[str, str, dict[str, str], bytes] | None:
    """The next request on a connection: method, target, headers (names in lower case)
    and ``Content-Length`` body; ``None`` if the client closed it first.  The one HTTP
    request parser of the tests (the fault server's and the forwarding proxy's)."""
    try:
        head = await reader.readuntil(b"\r\n\r\n")
    except asyncio.IncompleteReadError:
        return None
    request_line, *lines = head.decode("latin-1").split("\r\n")
    method, target, _version = request_line.split(" ", 2)
    headers: dict[str, str] = {}
    for line in lines:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if "chunked" in headers.get("transfer-encoding", ""):
        raise NotImplementedError("the test servers read Content-Length bodies only")
    body = await reader.readexactly(int(headers.get("content-length", "0")))
    return method, target, headers, body


@functools.cache
def gzip_bomb(megabytes: int) -> bytes:
    """A gzip member that inflates to ``megabytes`` MiB of zeros (computed once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(megabytes)]
    parts.append(packer.flush())
    return b"".join(parts)


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


_ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "rawdeflate": ("deflate", _raw_deflate),
    "br": ("br", lambda data: b"\x1b" + data),  # not brotli: never decoded anyway
}


class _Out:
    """Writes an answer and counts the bytes written; ``ConnectionError`` once the client left."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer
        self.written = 0

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()
        self.written += len(data)


def _response(
    status: int, body: bytes, headers: tuple[tuple[str, str], ...], *, length: int | None = None
) -> bytes:
    """Status line, headers and ``body``; ``length`` for a body sent apart."""
    try:
        reason = HTTPStatus(status).phrase
    except ValueError:
        reason = "Whatever"
    size = len(body) if length is None else length
    lines = [f"HTTP/1.1 {status} {reason}", f"Content-Length: {size}"]
    if not any(name.lower() == "content-type" for name, _ in headers):
        lines.append("Content-Type: application/json")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP RST rather than a FIN."""
    sock = writer.get_extra_info("socket")
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@contextlib.contextmanager
def refused_url() -> Iterator[str]:
    """A loopback URL where nothing listens: a bound socket that never calls listen().

    Holding the port bound keeps anyone else from taking it while the test runs.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        sock.bind(("127.0.0.1", 0))
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        sock.close()
