"""A small forwarding HTTP proxy on loopback that records what it carried.

``async with ForwardingProxy() as proxy:`` then ``proxy.url``, and after the client's
requests ``proxy.carried`` lists each one: plain HTTP requests in absolute form
(``POST http://127.0.0.1:port/sms``), forwarded to the server, and ``CONNECT
host:port`` tunnels (for ``https://``), piped both ways unread.

With ``credentials=(user, password)`` the proxy wants ``Proxy-Authorization: Basic
...`` and answers 407 without it.  It speaks just enough HTTP/1.1: ``Content-Length``
bodies, one request per upstream connection (it asks the server to close, and tells
the client so, so no connection is reused behind its back).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import ssl
from dataclasses import dataclass
from types import TracebackType
from urllib.parse import urlsplit

from tests.support.faults import read_request

__all__ = ["Carried", "ForwardingProxy"]


@dataclass(frozen=True)
class Carried:
    """One request the proxy got: its method, target and headers (names in lower case)."""

    method: str
    target: str
    headers: dict[str, str]

    @property
    def authorized_as(self) -> str | None:
        """The ``user:password`` of its ``Proxy-Authorization``, if any."""
        value = self.headers.get("proxy-authorization", "")
        if not value.startswith("Basic "):
            return None
        return base64.b64decode(value[6:]).decode()


class ForwardingProxy:
    """An HTTP proxy on 127.0.0.1 (a free port) that counts what it carried.

    Args:
        credentials: ``(user, password)`` the proxy requires, or None for none.
        tls: a server-side ``ssl.SSLContext``: an ``https://`` proxy.
    """

    def __init__(
        self, *, credentials: tuple[str, str] | None = None, tls: ssl.SSLContext | None = None
    ) -> None:
        self.credentials = credentials
        self.tls = tls
        self.carried: list[Carried] = []
        self.refused = 0
        """Requests answered 407 (no or wrong credentials)."""
        self.port = 0
        self._server: asyncio.Server | None = None
        self._handlers: set[asyncio.Task[None]] = set()

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://127.0.0.1:{self.port}"

    def url_with(self, user: str, password: str) -> str:
        """The proxy's URL with credentials in it."""
        return self.url.replace("://", f"://{user}:{password}@")

    async def __aenter__(self) -> ForwardingProxy:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0, ssl=self.tls)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._server is not None:
            self._server.close()
            self._server = None
        for task in self._handlers:
            task.cancel()
        if self._handlers:
            await asyncio.wait(self._handlers)

    def _allowed(self, headers: dict[str, str]) -> bool:
        if self.credentials is None:
            return True
        user, password = self.credentials
        token = base64.b64encode(f"{user}:{password}".encode()).decode()
        return headers.get("proxy-authorization") == f"Basic {token}"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._handlers.add(task)
        task.add_done_callback(self._handlers.discard)
        try:
            while await self._one(reader, writer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()
            with contextlib.suppress(Exception, asyncio.CancelledError):
                await writer.wait_closed()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bool:
        """Carry one request; False when the client's connection is to be closed."""
        request = await read_request(reader)
        if request is None:
            return False
        method, target, headers, body = request
        self.carried.append(Carried(method, target, headers))
        if not self._allowed(headers):
            self.refused += 1
            writer.write(
                b"HTTP/1.1 407 Proxy Authentication Required\r\n"
                b'Proxy-Authenticate: Basic realm="test"\r\nContent-Length: 0\r\n\r\n'
            )
            await writer.drain()
            return method != "CONNECT"
        if method == "CONNECT":
            host, _, port = target.rpartition(":")
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()
            await self._pipe_both(reader, writer, up_reader, up_writer)
            return False
        # Plain HTTP: the request in absolute form, sent on in origin form.
        url = urlsplit(target)
        up_reader, up_writer = await asyncio.open_connection(url.hostname, url.port or 80)
        path = url.path + (f"?{url.query}" if url.query else "")
        skip = {"proxy-authorization", "proxy-connection", "connection"}
        sent = [f"{method} {path} HTTP/1.1"]
        sent += [f"{name}: {value}" for name, value in headers.items() if name not in skip]
        sent.append("Connection: close")
        up_writer.write("\r\n".join(sent).encode("latin-1") + b"\r\n\r\n" + body)
        await up_writer.drain()
        # The answer, told to close: the client opens a new connection for its next one.
        answer_head = await up_reader.readuntil(b"\r\n\r\n")
        status_line, *answer_lines = answer_head.decode("latin-1").split("\r\n")
        kept = [
            line
            for line in answer_lines
            if line and line.partition(":")[0].strip().lower() != "connection"
        ]
        writer.write("\r\n".join([status_line, *kept, "Connection: close"]).encode() + b"\r\n\r\n")
        await self._pipe(up_reader, writer)
        up_writer.close()
        return False

    @staticmethod
    async def _pipe(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError):
            while chunk := await source.read(65536):
                sink.write(chunk)
                await sink.drain()
        with contextlib.suppress(ConnectionError, OSError):
            if sink.can_write_eof():
                sink.write_eof()

    async def _pipe_both(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        up_reader: asyncio.StreamReader,
        up_writer: asyncio.StreamWriter,
    ) -> None:
        try:
            await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))
        finally:
            up_writer.close()
