"""A hostile HTTP/1.1 server on loopback: dripping, huge, gzip-bomb and redirect answers.

It runs in threads (not on an event loop), so one server serves clients of several
``asyncio.run`` calls and of child processes alike.  What it does to a request is
chosen by the first segment of its path, so a client picks the edge through its
``base_url`` (``POST /huge-50000000/sms`` for ``base_url=server.url_for("huge-50000000")``):

- ``ok``: 200 with a fresh ``messageId`` (to a send), ``{"status": "OK"}`` (to a read);
- ``drip-<ms>``: a 200 with a ``messageId``, written one byte every ``<ms>`` milliseconds,
  status line and headers included (every byte arrives well within a read timeout);
- ``huge-<bytes>``: a 200 whose ``Content-Length`` body is ``<bytes>`` long, written in
  64 KiB chunks (never held whole);
- ``bomb-<megabytes>``: a 200 with ``Content-Encoding: gzip`` whose body inflates to
  ``<megabytes>`` MiB of zeros (about 1 KiB sent per MiB);
- ``gzip``, ``deflate`` (zlib-wrapped, as the RFC says), ``rawdeflate`` (sent as
  ``deflate`` without the zlib wrapper, as some servers do), ``br`` (labelled brotli,
  which the client does not ask for): as ``ok``, the body so encoded;
- ``fail-<bytes>``: a 500 whose body is ``<bytes>`` long;
- ``redirect-<status>``: that status with ``Location: /ok/sms`` (a place that would
  accept the request, were it followed).

Every request is recorded (:attr:`EdgeServer.requests`); :attr:`EdgeServer.written`
counts the bytes of each answer actually written, to tell a cut answer from a whole one.
"""

from __future__ import annotations

import contextlib
import functools
import gzip
import importlib
import importlib.util
import itertools
import json
import socket
import socketserver
import threading
import time
import zlib
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from types import ModuleType, TracebackType
from typing import Any

from tests.support.library import LIBRARY
from vortext_async import VortextClient, aiohttp_transport

__all__ = ["TRANSPORTS", "EdgeServer", "Seen", "gzip_bomb", "http_module", "open_client"]

_CHUNK = 64 * 1024


@dataclass(frozen=True)
class Seen:
    """One request the server read: method, path, body."""

    method: str
    path: str
    body: bytes


@functools.cache
def gzip_bomb(megabytes: int) -> bytes:
    """A gzip member that inflates to ``megabytes`` MiB of zeros (computed once)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    zeros = bytes(1024 * 1024)
    parts = [packer.compress(zeros) for _ in range(megabytes)]
    parts.append(packer.flush())
    return b"".join(parts)


class EdgeServer:
    """``with EdgeServer() as server:`` then ``server.url_for("drip-20")``, ``server.requests``."""

    def __init__(self) -> None:
        self.requests: list[Seen] = []
        #: Bytes of each answer written, in order of the requests answered.
        self.written: list[int] = []
        self._ids = itertools.count(1)
        self._answered = threading.Condition()  # guards requests and written
        #: The length of a dripped answer, whole (status line, headers and body).
        self.drip_size = 0
        server = self

        class Handler(socketserver.BaseRequestHandler):
            def handle(self) -> None:
                server._serve(self.request)

        self._server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Handler)
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def url_for(self, edge: str) -> str:
        """The base URL whose requests get ``edge`` (see the module docstring)."""
        return f"{self.url}/{edge}"

    def sends(self) -> list[Seen]:
        """The ``POST`` requests seen, in order of arrival."""
        with self._answered:
            return [r for r in self.requests if r.method == "POST"]

    def __enter__(self) -> EdgeServer:
        self._thread.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._server.shutdown()
        self._server.server_close()

    # -- serving -------------------------------------------------------------------------

    def _serve(self, sock: socket.socket) -> None:
        reader = sock.makefile("rb")
        with contextlib.suppress(OSError), reader:
            while True:
                request_line = reader.readline()
                if not request_line.strip():
                    return
                method, path, _ = request_line.decode("latin-1").split(" ", 2)
                length = 0
                while (line := reader.readline()) not in (b"\r\n", b"\n", b""):
                    name, _, value = line.decode("latin-1").partition(":")
                    if name.strip().lower() == "content-length":
                        length = int(value)
                body = reader.read(length) if length else b""
                with self._answered:
                    self.requests.append(Seen(method, path, body))
                    self._answered.notify_all()
                written = self._answer(sock, method, path)
                with self._answered:
                    self.written.append(written)
                    self._answered.notify_all()

    def _answer(self, sock: socket.socket, method: str, path: str) -> int:
        """Answer one request as its path says; the bytes written before the client left."""
        out = _Writer(sock)
        edge = path.lstrip("/").split("/", 1)[0]
        kind, _, arg = edge.partition("-")
        with contextlib.suppress(OSError):
            if kind == "redirect":
                out.send(_head(int(arg), 0, ("Location", "/ok/sms")))
            elif kind == "huge":
                out.send(_head(200, int(arg)))
                chunk = b"x" * _CHUNK
                left = int(arg)
                while left > 0:
                    out.send(chunk[: min(left, _CHUNK)])
                    left -= _CHUNK
            elif kind == "fail":
                out.send(_head(500, int(arg)) + b"e" * int(arg))
            elif kind == "bomb":
                bomb = gzip_bomb(int(arg))
                out.send(_head(200, len(bomb), ("Content-Encoding", "gzip")) + bomb)
            else:
                payload = self._success(method, path)
                answer = _head(200, len(payload)) + payload
                if kind in _ENCODERS:
                    coding, encode = _ENCODERS[kind]
                    packed = encode(payload)
                    answer = _head(200, len(packed), ("Content-Encoding", coding)) + packed
                if kind == "drip":
                    self.drip_size = len(answer)
                    for byte in answer:
                        out.send(bytes([byte]))
                        time.sleep(int(arg) / 1000)
                else:
                    out.send(answer)
        return out.written

    def wait_requests(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` requests have arrived (a guard, not a timing)."""
        with self._answered:
            if not self._answered.wait_for(lambda: len(self.requests) >= count, timeout):
                raise TimeoutError(f"{len(self.requests)} requests of {count} after {timeout} s")

    def wait_answered(self, count: int, timeout: float = 5.0) -> None:
        """Until ``count`` answers are finished or abandoned (a guard, not a timing)."""
        with self._answered:
            if not self._answered.wait_for(lambda: len(self.written) >= count, timeout):
                raise TimeoutError(f"{len(self.written)} answers of {count} after {timeout} s")

    def _success(self, method: str, path: str) -> bytes:
        if method == "POST":
            return json.dumps({"messageId": f"m-{next(self._ids)}"}).encode()
        if path.endswith("/status"):
            return b'{"status": "OK"}'
        message_id = path.rsplit("/", 1)[-1]
        return json.dumps({"messageId": message_id, "phoneNumber": "+33611272727"}).encode()


def _raw_deflate(data: bytes) -> bytes:
    packer = zlib.compressobj(6, zlib.DEFLATED, -zlib.MAX_WBITS)
    return packer.compress(data) + packer.flush()


_ENCODERS: dict[str, tuple[str, Callable[[bytes], bytes]]] = {
    "gzip": ("gzip", gzip.compress),
    "deflate": ("deflate", zlib.compress),
    "rawdeflate": ("deflate", _raw_deflate),
    "br": ("br", lambda data: b"\x1b" + data),  # not brotli: never decoded anyway
}


def _head(status: int, length: int, *headers: tuple[str, str]) -> bytes:
    lines = [f"HTTP/1.1 {status} Edge", f"Content-Length: {length}"]
    lines.append("Content-Type: application/json")
    lines.extend(f"{name}: {value}" for name, value in headers)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


class _Writer:
    """``sendall`` that counts what went out; raises ``OSError`` once the client left."""

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self.written = 0

    def send(self, data: bytes) -> None:
        self._sock.sendall(data)
        self.written += len(data)


# -- clients over every transport ------------------------------------------------------

#: The ways a client can carry requests: the httpcore pool of a client built here, the
#: direct aiohttp path, a handed-in ``AsyncClient`` (which follows redirects, to prove
#: they are never followed), and a handed-in ``AsyncClient`` over ``aiohttp_transport``.
TRANSPORTS = ("httpcore", "aiohttp", "handed-in client", "handed-in aiohttp_transport")


def http_module() -> ModuleType:
    """The library of this run (``VORTEXT_TEST_HTTP_LIBRARY``, else httpx2 when installed)."""
    return importlib.import_module(LIBRARY)


@contextlib.asynccontextmanager
async def open_client(kind: str, base_url: str, **options: Any) -> AsyncIterator[VortextClient]:
    """A client of ``base_url`` over the transport ``kind`` (one of :data:`TRANSPORTS`)."""
    lib = http_module()
    handed_in: Any = None
    if kind in ("httpcore", "aiohttp"):
        options["http_library"] = lib.__name__
    if kind == "httpcore":
        options["transport"] = lib.AsyncHTTPTransport()
    elif kind == "aiohttp":
        options["transport"] = "aiohttp"
    elif kind == "handed-in client":
        handed_in = lib.AsyncClient(follow_redirects=True)
    elif kind == "handed-in aiohttp_transport":
        handed_in = lib.AsyncClient(transport=aiohttp_transport(lib.__name__))
    else:
        raise ValueError(kind)
    try:
        async with VortextClient(
            "acme", "secret", base_url=base_url, http_client=handed_in, **options
        ) as client:
            yield client
    finally:
        if handed_in is not None:
            await handed_in.aclose()
