"""The aiohttp-backed transport (the fast send path), against real loopback servers.

Every failure test runs over the default path (the direct aiohttp transport), over an
aiohttp transport object handed in, and over httpcore (``transport="httpx"``), and
expects the same ``VortextError`` class with the same sent / not-sent /
uncertain meaning: the transport is a speed choice, never a change of meaning.
"""

from __future__ import annotations

import asyncio
import gzip
import importlib
from types import ModuleType
from typing import Any

import pytest

pytest.importorskip("aiohttp")

from tests.support.faults import Fault, FaultServer, refused_url
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
#: "aiohttp": the transport object handed in; "httpx": httpcore, ``transport="httpx"``.
TRANSPORTS = ["default", "aiohttp", "httpx"]


def _client(transport: str, http_library: str, base_url: str, **options: Any) -> VortextClient:
    if transport == "aiohttp":
        options["transport"] = aiohttp_transport(http_library)
    elif transport == "httpx":
        options["transport"] = "httpx"
    return VortextClient("acme", "s3cr3t", base_url=base_url, http_library=http_library, **options)


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
    echo = Fault.answer(
        429,
        gzip.compress(b'{"echo": "ping"}'),
        headers=[
            ("Content-Encoding", "gzip"),
            ("Retry-After", "7"),
            ("X-Twice", "a"),
            ("X-Twice", "b"),
        ],
    )
    async with (
        FaultServer(default=echo) as server,
        httplib.AsyncClient(transport=transport) as http,
    ):
        response = await http.post(server.url + "/x", content=b"ping")
    assert server.requests[0].body == b"ping"
    assert isinstance(response, httplib.Response)
    assert response.status_code == 429
    assert response.reason_phrase == "Too Many Requests"
    assert response.headers["retry-after"] == "7"
    assert response.headers.get_list("x-twice") == ["a", "b"]
    assert response.content == b'{"echo": "ping"}'  # gzip decoded by the library


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_compressed_answer_is_read_on_every_transport(
    transport: str, http_library: str
) -> None:
    payload = gzip.compress(b'{"messageId": "m-gz"}')
    gzipped = Fault.answer(201, payload, headers={"Content-Encoding": "gzip"})

    async with (
        FaultServer(default=gzipped) as server,
        _client(transport, http_library, server.url, retry=NO_RETRY) as client,
    ):
        sent = await client.send_sms("+33611272727", "hi")
    assert sent.message_id == "m-gz"


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refused_connection_is_a_connect_error(transport: str, http_library: str) -> None:
    with refused_url() as url:  # a port nobody listens on
        async with _client(transport, http_library, url, retry=NO_RETRY) as client:
            with pytest.raises(ConnectError) as caught:
                await client.send_sms("+33611272727", "hi")
    assert caught.value.certainly_not_sent
    assert not caught.value.request_sent


def _read_cut(http_library: str) -> Any:
    return importlib.import_module(http_library).Timeout(0.2, connect=30.0, pool=30.0)


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_no_answer_in_time_is_an_uncertain_send(transport: str, http_library: str) -> None:
    async with (
        FaultServer(default=Fault.hold()) as server,  # never answers
        # 0.2 s to answer, but time to connect on a loaded machine: the cut must be the read's
        _client(
            transport, http_library, server.url, retry=NO_RETRY, timeout=_read_cut(http_library)
        ) as client,
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert len(server.requests) == 1
    assert isinstance(caught.value.cause, RequestTimeoutError)
    assert caught.value.cause.request_sent
    assert not caught.value.certainly_not_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_connection_dropped_after_the_request_is_uncertain(
    transport: str, http_library: str
) -> None:
    """The server read the SMS and hung up: it may have accepted it, so no resend."""
    async with (
        FaultServer(default=Fault.close()) as server,  # reads the request, hangs up
        _client(transport, http_library, server.url) as client,  # retries on: must not resend
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, ProtocolError)
    assert caught.value.cause.request_sent
    assert len(server.requests) == 1


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_garbled_answer_is_uncertain(transport: str, http_library: str) -> None:
    garble = Fault.raw(b"this is not HTTP\r\n\r\n")

    async with (
        FaultServer(default=garble) as server,
        _client(transport, http_library, server.url, retry=NO_RETRY) as client,
    ):
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, ProtocolError)
    assert not caught.value.certainly_not_sent


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_a_refusal_reads_the_same_over_every_transport(
    transport: str, http_library: str
) -> None:
    too_many = Fault.answer(
        429,
        b'{"error":"slow down"}',
        headers=[
            ("Retry-After", "7"),
            ("X-Request-Id", "abc"),
            ("Warning", "199 one"),
            ("Warning", "199 two"),
        ],
    )

    async with (
        FaultServer(default=too_many) as server,
        _client(transport, http_library, server.url, retry=NO_RETRY) as client,
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
    transport = aiohttp_transport(httplib, limits=httplib.Limits(max_connections=1))
    async with (
        FaultServer(default=Fault.answer(200, b'{"messageId":"m"}')) as server,
        VortextClient(
            "acme", "s3cr3t", base_url=server.url, http_library=http_library, transport=transport
        ) as client,
    ):
        sent = await asyncio.gather(*(client.send_sms("+33611272727", "hi") for _ in range(10)))
    assert [s.message_id for s in sent] == ["m"] * 10
    assert server.most_open_connections == 1


def test_an_unknown_library_is_a_configuration_error() -> None:
    from vortext_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="requests"):
        aiohttp_transport("requests")


async def test_limits_reach_the_fast_transport(http_library: str, httplib: ModuleType) -> None:
    """``transport="aiohttp", limits=...``: the pool size is the one asked for."""
    async with (
        FaultServer(default=Fault.answer(200, b'{"messageId":"m"}')) as server,
        VortextClient(
            "acme",
            "s3cr3t",
            base_url=server.url,
            http_library=http_library,
            transport="aiohttp",
            limits=httplib.Limits(max_connections=2),
        ) as client,
    ):
        await asyncio.gather(*(client.send_sms("+33611272727", "hi") for _ in range(10)))
    assert server.most_open_connections == 2


def test_an_unknown_transport_name_is_a_configuration_error() -> None:
    from vortext_async import ConfigurationError

    with pytest.raises(ConfigurationError, match="'curl'"):
        VortextClient("acme", "s3cr3t", transport="curl")
