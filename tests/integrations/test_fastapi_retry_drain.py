"""The shutdown drain also answers callers whose send sleeps before a retry.

A send refused with 503 "not processed" waits (here 60 s, the gateway's
``Retry-After``) before its next attempt: it is neither waiting for a token nor in
flight.  The drain must still answer its caller at once, 503 with ``Retry-After``,
instead of leaving it asleep until the server gives up and cancels it (a 500).
The client's virtual clock never moves, so only the drain can end that wait.
"""

from __future__ import annotations

import asyncio

import httpx
from fastapi import FastAPI

from tests.support.faults import Fault, FaultServer
from tests.support.uvicorn_server import serve_app
from vortext_async import RetryEvent
from vortext_async.fastapi import (
    VortextClientDep,
    install_error_handlers,
    vortext_lifespan,
    vortext_shutdown,
)
from vortext_async.testing import VirtualClock

GUARD = 10.0  # seconds: a hang guard only (old code never answered: time is frozen)


async def test_vortext_shutdown_answers_a_caller_whose_send_waits_to_retry(
    http_library: str,
) -> None:
    retries: list[RetryEvent] = []
    retrying = asyncio.Event()

    def on_retry(event: RetryEvent) -> None:
        retries.append(event)
        retrying.set()

    async with FaultServer() as gateway:
        gateway.script(Fault.answer(503, headers={"Retry-After": "60"}))
        app = FastAPI(
            lifespan=vortext_lifespan(
                username="user",
                password="pw",
                base_url=gateway.url,
                clock=VirtualClock(autojump=False),
                on_retry=on_retry,
                http_library=http_library,
                drain_on_signals=False,
            )
        )
        install_error_handlers(app)

        @app.post("/notify")
        async def notify(client: VortextClientDep) -> dict[str, str]:
            sent = await client.send_sms("+33611272727", "hello")
            return {"messageId": sent.message_id}

        async with (
            serve_app(app) as (url, _),
            httpx.AsyncClient(base_url=url, timeout=3 * GUARD) as http,
        ):
            call = asyncio.create_task(http.post("/notify"))
            await asyncio.wait_for(retrying.wait(), GUARD)
            assert [event.wait for event in retries] == [60.0]
            await vortext_shutdown(app)
            response = await asyncio.wait_for(call, GUARD)

    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) >= 1
    assert len(gateway.requests) == 1
