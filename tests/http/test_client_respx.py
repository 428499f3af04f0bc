"""The same request shapes through respx, the mock most httpx users already have.

respx patches httpx only (its httpx2 support is not released yet); under httpx2
test_client.py checks the same shapes through httpx2's own MockTransport.  respx
patches httpx's transport, so the client must send through it: ``transport="httpx"``
(the default path sends with aiohttp, which respx never sees).
"""

from __future__ import annotations

import json

import pytest

from tests.support.library import requires_httpx
from vortext_async import NotFoundError, RateLimitedError, RetryPolicy, VortextClient

pytestmark = requires_httpx

BASE = "https://messages.cloud.cegedim.com"


@pytest.fixture
def respx_mock():  # type: ignore[no-untyped-def]
    import respx

    with respx.mock(base_url=BASE, assert_all_called=True) as mock:
        yield mock


async def test_send_and_fetch_against_respx_routes(respx_mock) -> None:  # type: ignore[no-untyped-def]
    import httpx

    send = respx_mock.post("/sms").mock(return_value=httpx.Response(201, json={"messageId": "m-7"}))
    detail = respx_mock.get("/sms/m-7").mock(
        return_value=httpx.Response(
            200,
            json={
                "messageId": "m-7",
                "phoneNumber": "+33611272727",
                "message": "hi",
                "metadata": {"myCustomerId": "123de32"},
            },
        )
    )
    async with VortextClient(
        "u", "p", http_library="httpx", transport="httpx", base_url=BASE
    ) as client:
        sent = await client.send_sms("+33611272727", "hi", metadata={"myCustomerId": "123de32"})
        got = await client.get_sms(sent.message_id)
    assert got.metadata == {"myCustomerId": "123de32"}
    assert json.loads(send.calls.last.request.content)["metadata"] == {"myCustomerId": "123de32"}
    assert detail.call_count == 1


async def test_a_429_from_respx_is_rate_limited_with_its_retry_after(respx_mock) -> None:  # type: ignore[no-untyped-def]
    import httpx

    respx_mock.post("/sms").mock(return_value=httpx.Response(429, headers={"Retry-After": "3"}))
    async with VortextClient(
        "u",
        "p",
        http_library="httpx",
        transport="httpx",
        base_url=BASE,
        retry=RetryPolicy.no_retries(),
    ) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert caught.value.retry_after == 3.0


async def test_an_unknown_message_id_is_not_found(respx_mock) -> None:  # type: ignore[no-untyped-def]
    import httpx

    respx_mock.get("/sms/nope").mock(return_value=httpx.Response(404, json={"error": "unknown"}))
    async with VortextClient(
        "u", "p", http_library="httpx", transport="httpx", base_url=BASE
    ) as client:
        with pytest.raises(NotFoundError) as caught:
            await client.get_sms("nope")
    assert caught.value.json() == {"error": "unknown"}
