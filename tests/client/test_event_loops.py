"""A client used from a second event loop says so, before sending (issue 17, item 11).

A client created at module level and used from two ``asyncio.run`` calls holds
connections (and limiter timers) of the first loop, closed by then.  The second call
gets a ``WrongEventLoopError`` (a ``VortextError``, a certain "not sent"), and the
server sees nothing of it.
"""

from __future__ import annotations

import asyncio

import pytest

from tests.support.faults import EdgeServer
from vortext_async import (
    Outcome,
    RateLimit,
    SentSms,
    Sms,
    VortextClient,
    VortextError,
    WrongEventLoopError,
)

PHONE = "+33611272727"


@pytest.mark.parametrize("transport", [None, "aiohttp"])
def test_a_client_used_from_a_second_asyncio_run_refuses_before_sending(
    transport: str | None,
) -> None:
    with EdgeServer() as server:
        client = VortextClient(  # as at module level: outside any loop
            "acme",
            "secret",
            base_url=server.url_for("ok"),
            transport=transport,
            rate_limit=RateLimit(per_minute=600),
        )

        async def send(text: str) -> SentSms:
            return await client.send_sms(PHONE, text)

        first = asyncio.run(send("first run"))
        assert first.message_id == "m-1"

        with pytest.raises(WrongEventLoopError, match="another event loop") as caught:
            asyncio.run(send("second run"))
        assert isinstance(caught.value, VortextError)
        assert isinstance(caught.value, RuntimeError)
        assert caught.value.certainly_not_sent
        with pytest.raises(WrongEventLoopError):
            asyncio.run(client.status())

        async def bulk() -> list[Outcome]:
            async with client.send_bulk([Sms(PHONE, "bulk run")]) as job:
                return [result.outcome async for result in job]

        assert asyncio.run(bulk()) == [Outcome.FAILED]  # certainly not sent

        asyncio.run(client.aclose())  # closing from a later loop is allowed
        assert client.closed
        assert [r.body for r in server.sends()] == [server.sends()[0].body]
        assert b"first run" in server.sends()[0].body
