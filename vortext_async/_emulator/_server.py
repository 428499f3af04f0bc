"""Serving the emulator on a real socket: a small built-in HTTP/1.1 server, or uvicorn.

Why a built-in server: a dropped connection (the request read and processed, then
the TCP connection reset with no answer, the case a client cannot tell from a lost
SMS) cannot be produced by an ASGI app under uvicorn, which hides its transport and
answers ``500`` for an app that fails before answering.  The built-in server (h11,
asyncio streams, keep-alive) offers the ``vortext.drop_connection`` ASGI extension
and resets the connection (``SO_LINGER`` 0, then ``abort``).  ``server="auto"``
uses uvicorn (the project's ASGI server) unless drops are asked for.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import struct
from collections.abc import AsyncIterator, Callable
from typing import Any, Literal
from urllib.parse import unquote

import h11

from ._app import DROP_CONNECTION_EXTENSION, Emulator, _Message, _Scope

__all__ = ["ServerKind", "run_emulator", "serve_emulator"]

ServerKind = Literal["auto", "builtin", "uvicorn"]

logger = logging.getLogger("vortext_async.emulator")

_READ_SIZE = 65_536


@contextlib.asynccontextmanager
async def serve_emulator(
    emulator: Emulator,
    *,
    host: str = "127.0.0.1",
    port: int = 0,
    server: ServerKind = "auto",
) -> AsyncIterator[str]:
    """Serve ``emulator`` on ``host:port`` (0: a free port); yields its base URL.

    ``server``: ``"builtin"`` (supports ``drop_rate``), ``"uvicorn"``, or
    ``"auto"`` (uvicorn when installed and no drops are configured).  On exit the
    server stops, open connections are closed and pending automatic replies are
    cancelled.
    """
    running = _choose(emulator, server)
    url = await running.start(host, port)
    try:
        yield url
    finally:
        await running.stop()
        await emulator.aclose()


def run_emulator(
    emulator: Emulator | None = None,
    *,
    host: str = "127.0.0.1",
    port: int = 8025,
    server: ServerKind = "auto",
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve an emulator until Ctrl-C or SIGTERM (the ``vortext emulator`` command).

    ``on_ready`` is called with the base URL once the socket listens.
    """

    async def main() -> None:
        app = emulator if emulator is not None else Emulator()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(signal.SIGTERM, stop.set)
        running = _choose(app, server)
        url = await running.start(host, port)
        try:
            if on_ready is not None:
                on_ready(url)
            ended = asyncio.ensure_future(running.wait())
            stopped = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({ended, stopped}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                ended.cancel()
                stopped.cancel()
        finally:
            await running.stop()
            await app.aclose()

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(main())


def _choose(emulator: Emulator, kind: ServerKind) -> _BuiltinServer | _UvicornServer:
    if kind == "auto":
        try:
            import uvicorn  # noqa: F401
        except ImportError:
            kind = "builtin"
        else:
            kind = "builtin" if emulator.drop_rate else "uvicorn"
    if kind == "builtin":
        return _BuiltinServer(emulator)
    if kind == "uvicorn":
        if emulator.drop_rate:
            raise ValueError("drop_rate needs server='builtin': uvicorn cannot drop connections")
        return _UvicornServer(emulator)
    raise ValueError(f"server must be 'auto', 'builtin' or 'uvicorn', got {kind!r}")


def _url(host: str, port: int) -> str:
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class _UvicornServer:
    def __init__(self, app: Emulator) -> None:
        self._app = app
        self._server: Any = None
        self._task: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> str:
        import uvicorn

        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, port))
        sock.listen(1024)  # connections wait in the backlog until uvicorn accepts
        config = uvicorn.Config(self._app, lifespan="off", log_level="warning", access_log=False)
        self._server = uvicorn.Server(config)
        self._task = asyncio.create_task(self._server.serve(sockets=[sock]))
        while not self._server.started:
            if self._task.done():
                self._task.result()
                raise RuntimeError("uvicorn stopped before it started")
            await asyncio.sleep(0.005)
        return _url(host, sock.getsockname()[1])

    async def wait(self) -> None:
        assert self._task is not None
        await asyncio.shield(self._task)

    async def stop(self) -> None:
        if self._task is None:
            return
        self._server.should_exit = True
        with contextlib.suppress(asyncio.CancelledError):
            await self._task


class _BuiltinServer:
    """HTTP/1.1 with keep-alive over asyncio streams, parsed by h11."""

    def __init__(self, app: Emulator) -> None:
        self._app = app
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closed = asyncio.Event()
        self._stopping = False

    async def start(self, host: str, port: int) -> str:
        self._server = await asyncio.start_server(self._connection, host, port)
        bound = self._server.sockets[0].getsockname()
        return _url(host, bound[1])

    async def wait(self) -> None:
        await self._closed.wait()

    async def stop(self) -> None:
        if self._server is None:
            return
        self._stopping = True
        self._server.close()
        for task in list(self._connections):
            task.cancel()
        await asyncio.gather(*self._connections, return_exceptions=True)
        await self._server.wait_closed()
        self._closed.set()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._connections.add(task)
        try:
            await self._serve(reader, writer)
        except asyncio.CancelledError:
            if not self._stopping:
                raise
            # Cancelled by stop(): end quietly (asyncio on 3.11 logs a cancelled
            # connection task as an error).
        finally:
            self._connections.discard(task)

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        conn = h11.Connection(h11.SERVER)
        aborted = False
        try:
            while True:
                event = await _next_event(conn, reader)
                if not isinstance(event, h11.Request):
                    break  # closed by the client (or nothing more to read)
                aborted = await self._exchange(conn, event, reader, writer)
                if aborted or conn.our_state is not h11.DONE or conn.their_state is not h11.DONE:
                    break
                conn.start_next_cycle()
        except h11.RemoteProtocolError as exc:
            with contextlib.suppress(h11.LocalProtocolError, ConnectionError):
                writer.write(
                    conn.send(
                        h11.Response(
                            status_code=exc.error_status_hint,
                            headers=[("content-length", "0"), ("connection", "close")],
                        )
                    )
                )
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            if not aborted:
                writer.close()
                with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                    await writer.wait_closed()

    async def _exchange(
        self,
        conn: h11.Connection,
        request: h11.Request,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
    ) -> bool:
        """Run the app for one request; True when it dropped the connection."""
        target = request.target
        raw_path, _, query = target.partition(b"?")
        peer = writer.get_extra_info("peername")
        local = writer.get_extra_info("sockname")
        scope: _Scope = {
            "type": "http",
            "asgi": {"version": "3.0", "spec_version": "2.3"},
            "http_version": request.http_version.decode(),
            "method": request.method.decode(),
            "scheme": "http",
            "path": unquote(raw_path.decode("latin-1")),
            "raw_path": raw_path,
            "query_string": query,
            "root_path": "",
            "headers": [(name, value) for name, value in request.headers],
            "client": tuple(peer[:2]) if peer else None,
            "server": tuple(local[:2]) if local else None,
            "extensions": {DROP_CONNECTION_EXTENSION: {}},
        }
        state = {"body_done": False, "started": False, "aborted": False}

        async def receive() -> _Message:
            if state["body_done"]:
                return {"type": "http.disconnect"}
            event = await _next_event(conn, reader)
            if isinstance(event, h11.Data):
                return {"type": "http.request", "body": bytes(event.data), "more_body": True}
            if isinstance(event, h11.EndOfMessage):
                state["body_done"] = True
                return {"type": "http.request", "body": b"", "more_body": False}
            state["body_done"] = True
            return {"type": "http.disconnect"}

        async def send(message: _Message) -> None:
            kind = message["type"]
            if kind == DROP_CONNECTION_EXTENSION:
                _reset(writer)
                state["aborted"] = True
                return
            if kind == "http.response.start":
                state["started"] = True
                headers = [(bytes(n), bytes(v)) for n, v in message.get("headers", ())]
                data = conn.send(h11.Response(status_code=message["status"], headers=headers))
            elif kind == "http.response.body":
                data = conn.send(h11.Data(data=message.get("body", b""))) or b""
                if not message.get("more_body", False):
                    data += conn.send(h11.EndOfMessage()) or b""
            else:
                raise RuntimeError(f"unexpected ASGI message {kind!r}")
            if data:
                writer.write(data)
                await writer.drain()

        try:
            await self._app(scope, receive, send)
        except Exception:
            logger.exception("emulator failed on %s %s", scope["method"], scope["path"])
            if state["started"]:
                _reset(writer)
                return True
            body = b'{"status":500,"error":"Internal Server Error"}'
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
        return state["aborted"]


async def _next_event(conn: h11.Connection, reader: asyncio.StreamReader) -> Any:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(_READ_SIZE))
            continue
        return event


def _reset(writer: asyncio.StreamWriter) -> None:
    """Drop the connection with a TCP reset, no answer."""
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()
