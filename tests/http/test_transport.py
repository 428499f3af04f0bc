"""The aiohttp-backed transport (the fast send path), against real loopback servers.

Every failure test runs over the default httpcore transport and over the aiohttp
one and expects the same ``VortextError`` class with the same sent / not-sent /
uncertain meaning: the transport is a speed choice, never a change of meaning.
"""

from __future__ import annotations

import asyncio
import gzip
import socket
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from vortext_async import (
    ConnectError,
    ProtocolError,
    RateLimitedError,
    RequestTimeoutError,
    RetryPolicy,
    UncertainSendError,
    VortextClient,
    aiohttp_transport,
)
from vortext_async.emulator import Emulator, serve_emulator

NO_RETRY = RetryPolicy.no_retries()
#: "aiohttp": the transport object handed in; "fast": ``transport="aiohttp"``.
TRANSPORTS = ["default", "aiohttp", "fast"]

Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


def _client(transport: str, http_library: str, base_url: str, **options: Any) -> VortextClient:
    if transport == "aiohttp":
        options["transport"] = aiohttp_transport(http_library)
    elif transport == "fast":
        options["transport"] = "aiohttp"
    return VortextClient("acme", "s3cr3t", base_url=base_url, http_library=http_library, **options)


@asynccontextmanager
async def _raw_server(handler: Handler) -> AsyncIterator[str]:
    """A loopback TCP server running ``handler`` per connection; yields its URL."""
    connections: set[asyncio.Task[None]] = set()

    async def track(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        connections.add(task)
        try:
            await handler(reader, writer)
        finally:
            writer.close()
            connections.discard(task)

    server = await asyncio.start_server(track, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.close()
        for task in list(connections):
            task.cancel()
        await server.wait_closed()


async def _read_request(reader: asyncio.StreamReader) -> bytes:
    """Read one HTTP/1.1 request with a Content-Length body; return the body."""
    head = await reader.readuntil(b"\r\n\r\n")
    length = 0
    for line in head.split(b"\r\n"):
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return await reader.readexactly(length)


def _answering(head: bytes, body: bytes) -> Handler:
    """A handler answering every request on its connection with ``head`` (status line
    and headers) and ``body``."""

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                await _read_request(reader)
            except asyncio.IncompleteReadError:
                return  # the client closed the connection
            writer.write(head + b"Content-Length: %d\r\n\r\n" % len(body) + body)
            await writer.drain()

    return handle


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_the_calls_work_over_a_real_server(transport: str, http_library: str) -> None:
    emulator = Emulator(users={"acme": "s3cr3t"}, seed=7)
    async with (
        serve_emulator(emulator, server="uvicorn") as url,
        _client(transport, http_library, url) as client,
    ):
        await client.status()
        sent = await asyncio.gather(
            *(client.send_sms("+33611272727", f"code {n}", metadata={"n": n}) for n in range(20))
        )
        detail = await client.get_sms(sent[3].message_id)
    assert len({s.message_id for s in sent}) == 20
    assert (detail.message, detail.metadata) == ("code 3", {"n": 3})
    assert emulator.received_count("+33611272727", "code 19", {"n": 19}) == 1


async def test_the_transport_carries_the_library_of_the_client(httplib: ModuleType) -> None:
    """Built for one library: its base class and its answers are that library's."""
    transport = aiohttp_transport(httplib)
    assert isinstance(transport, httplib.AsyncBaseTransport)
    async with (
        _raw_server(_gzip_answer) as url,
        httplib.AsyncClient(transport=transport) as http,
    ):
        response = await http.post(url + "/x", content=b"ping")
    assert isinstance(response, httplib.Response)
    assert response.status_code == 429
    assert response.reason_phrase == "Too Many Requests"
    assert response.headers["retry-after"] == "7"
    assert response.headers.get_list("x-twice") == ["a", "b"]
    assert response.content == b'{"echo": "ping"}'  # gzip decoded by the library


async def _gzip_answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    body = await _read_request(reader)
    payload = gzip.compress(b'{"echo": "%s"}' % body)
    writer.write(
        b"HTTP/1.1 429 Too Many Requests\r\nContent-Type: application/json\r\n"
        b"Content-Encoding: gzip\r\nRetry-After: 7\r\nX-Twice: a\r\nX-Twice: b\r\n"
        b"Content-Length: %d\r\n\r\n%s" % (len(payload), payload)
    )
    await writer.drain()


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_compressed_answer_is_read_on_every_transport(
    transport: str, http_library: str
) -> None:
    payload = gzip.compress(b'{"messageId": "m-gz"}')
    gzipped = _answering(
        b"HTTP/1.1 201 Created\r\nContent-Type: application/json\r\nContent-Encoding: gzip\r\n",
        payload,
    )

    async with (
        _raw_server(gzipped) as url,
        _client(transport, http_library, url, retry=NO_RETRY) as client,
    ):
        sent = await client.send_sms("+33611272727", "hi")
    assert sent.message_id == "m-gz"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_is_a_connect_error(transport: str, http_library: str) -> None:
    with socket.socket() as probe:  # a port nobody listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    async with _client(
        transport, http_library, f"http://127.0.0.1:{port}", retry=NO_RETRY
    ) as client:
        with pytest.raises(ConnectError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert caught.value.certainly_not_sent
    assert not caught.value.request_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_answer_in_time_is_an_uncertain_send(transport: str, http_library: str) -> None:
    received = asyncio.Event()

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        received.set()
        await asyncio.Event().wait()  # never answers

    async with (
        _raw_server(silent) as url,
        _client(transport, http_library, url, retry=NO_RETRY, timeout=0.2) as client,
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert received.is_set()
    assert isinstance(caught.value.cause, RequestTimeoutError)
    assert caught.value.cause.request_sent
    assert not caught.value.certainly_not_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_connection_dropped_after_the_request_is_uncertain(
    transport: str, http_library: str
) -> None:
    """The server read the SMS and hung up: it may have accepted it, so no resend."""
    requests = 0

    async def hang_up(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal requests
        await _read_request(reader)
        requests += 1

    async with (
        _raw_server(hang_up) as url,
        _client(transport, http_library, url) as client,  # retries on: must not resend
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, ProtocolError)
    assert caught.value.cause.request_sent
    assert requests == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_garbled_answer_is_uncertain(transport: str, http_library: str) -> None:
    async def garble(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _read_request(reader)
        writer.write(b"this is not HTTP\r\n\r\n")
        await writer.drain()

    async with (
        _raw_server(garble) as url,
        _client(transport, http_library, url, retry=NO_RETRY) as client,
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, ProtocolError)
    assert not caught.value.certainly_not_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refusal_reads_the_same_over_every_transport(
    transport: str, http_library: str
) -> None:
    too_many = _answering(
        b"HTTP/1.1 429 Too Many Requests\r\nRetry-After: 7\r\nX-Request-Id: abc\r\n"
        b"Warning: 199 one\r\nWarning: 199 two\r\nContent-Type: application/json\r\n",
        b'{"error":"slow down"}',
    )

    async with (
        _raw_server(too_many) as url,
        _client(transport, http_library, url, retry=NO_RETRY) as client,
    ):
        with pytest.raises(RateLimitedError) as caught:
            await client.send_sms("+33611272727", "hi")
        assert client.limiter.state().paused_until is not None  # every sender waits
    error = caught.value
    assert (error.status_code, error.retry_after, error.body) == (
        429,
        7.0,
        b'{"error":"slow down"}',
    )
    assert error.headers["x-request-id"] == "abc"
    assert error.headers["warning"] == "199 one, 199 two"
    assert error.certainly_not_sent


async def test_a_pool_of_one_queues_sends_instead_of_failing(
    httplib: ModuleType, http_library: str
) -> None:
    """``limits`` reach aiohttp's connector: one connection, sends wait their turn."""
    open_connections = 0
    most = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections, most
        open_connections += 1
        most = max(most, open_connections)
        try:
            while True:
                await _read_request(reader)
                writer.write(
                    b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                    b'Content-Length: 17\r\n\r\n{"messageId":"m"}'
                )
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            open_connections -= 1

    transport = aiohttp_transport(httplib, limits=httplib.Limits(max_connections=1))
    async with (
        _raw_server(answer) as url,
        VortextClient(
            "acme", "s3cr3t", base_url=url, http_library=http_library, transport=transport
        ) as client,
    ):
        sent = await asyncio.gather(*(client.send_sms("+33611272727", "hi") for _ in range(10)))
    assert [s.message_id for s in sent] == ["m"] * 10
    assert most == 1


def test_an_unknown_library_is_a_configuration_error() -> None:
    from vortext_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="requests"):
        aiohttp_transport("requests")


async def test_limits_reach_the_fast_transport(http_library: str, httplib: ModuleType) -> None:
    """``transport="aiohttp", limits=...``: the pool size is the one asked for."""
    open_connections = most = 0

    async def answer(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal open_connections, most
        open_connections += 1
        most = max(most, open_connections)
        try:
            while True:
                await _read_request(reader)
                writer.write(b'HTTP/1.1 200 OK\r\nContent-Length: 17\r\n\r\n{"messageId":"m"}')
                await writer.drain()
        except asyncio.IncompleteReadError:
            pass
        finally:
            open_connections -= 1

    async with (
        _raw_server(answer) as url,
        VortextClient(
            "acme",
            "s3cr3t",
            base_url=url,
            http_library=http_library,
            transport="aiohttp",
            limits=httplib.Limits(max_connections=2),
        ) as client,
    ):
        await asyncio.gather(*(client.send_sms("+33611272727", "hi") for _ in range(10)))
    assert most == 2


def test_an_unknown_transport_name_is_a_configuration_error() -> None:
    from vortext_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="'curl'"):
        VortextClient("acme", "s3cr3t", transport="curl")
