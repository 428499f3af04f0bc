"""Calls a type checker must accept: ``mypy --strict`` reports nothing here.

Never run (``tests/typed/test_typed_surface.py`` type-checks it): the everyday uses
of each public signature whose types are checked by ``wrong_calls.py``.
"""

from __future__ import annotations

import os
import ssl
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from fastapi import FastAPI

from vortext_async import (
    BulkProgress,
    ClientOptions,
    HTTPStatusError,
    JSONValue,
    RateLimit,
    RetryPolicy,
    SendResult,
    Sms,
    SmsDetail,
    VortextClient,
    aiohttp_transport,
    send_bulk,
)
from vortext_async.emulator import Emulator
from vortext_async.fastapi import CancelOnDisconnect, vortext_lifespan
from vortext_async.sync import VortextClient as SyncClient
from vortext_async.testing import emulator_client
from vortext_async.webhooks import PushReceiver, PushResponse


def on_progress(progress: BulkProgress) -> None:
    print(progress)


async def on_reply(push: PushResponse) -> None:
    print(push.response.content)


async def asyncio_client(emulator: Emulator) -> list[SendResult]:
    messages = [Sms("+33611272727", "hi", metadata={"customer": 1}, key="k1")]
    results: list[SendResult] = []
    async with VortextClient(
        "user",
        "password",
        timeout=10,
        rate_limit=RateLimit(per_minute=600),
        transport="aiohttp",
        limits=httpx.Limits(max_connections=64),
    ) as client:
        sent = await client.send_sms("+33611272727", "x", metadata={"n": 1, "tags": ["a"]})
        print(sent.message_id, client.http_client.timeout)
        async for result in client.send_bulk(
            messages, concurrency=8, journal=Path("job.db"), on_progress=on_progress
        ):
            results.append(result)
        job = send_bulk(client, messages, journal="job.db", grace=1.0, max_wait=None)
        results.extend([result async for result in job])
    async with httpx.AsyncClient(base_url="http://127.0.0.1:8000") as http_client:
        VortextClient(http_client=http_client, timeout=httpx.Timeout(5.0, connect=1.0))
    VortextClient(transport=httpx.ASGITransport(app=emulator), http_library="httpx")
    fast = aiohttp_transport("httpx", limits=httpx.Limits(max_connections=10))
    VortextClient(transport=fast, http_library="httpx")
    VortextClient(transport="httpx", proxy="http://proxy:3128", verify="ca.pem", cert="c.pem")
    VortextClient(proxy=httpx.URL("http://proxy:3128"), verify=ssl.create_default_context())
    VortextClient(transport="auto", verify=False, cert=("c.pem", "k.pem"), trust_env=False)
    aiohttp_transport(proxy="http://proxy:3128", verify=Path("ca.pem"), cert="c.pem")
    options: ClientOptions = {"max_wait": 2.0, "retry": RetryPolicy(attempts=3)}
    async with emulator_client(emulator, **options) as client:
        await client.status()
    return results


def blocking_client() -> int:
    with SyncClient(timeout=5.0, rate_limit=RateLimit(per_minute=60)) as client:
        client.send_sms("+33611272727", "x")
        with client.send_bulk([Sms("+33611272727", "y")], concurrency=4, journal=os.devnull) as job:
            return sum(1 for _ in job)


def integrations() -> None:
    vortext_lifespan(rate_limit=RateLimit(per_minute=60), max_wait=1.0, shutdown_grace=5.0)
    vortext_lifespan(redis_url="redis://localhost", username="acme")
    PushReceiver(on_reply, path_token="t" * 32)


@asynccontextmanager
async def stateful(app: FastAPI) -> AsyncIterator[dict[str, int]]:
    yield {"answer": 42}


@asynccontextmanager
async def stateless(app: FastAPI) -> AsyncIterator[None]:
    yield


def asgi_apps_fit_their_frameworks(emulator: Emulator) -> None:
    """The ASGI callables and lifespans type-check where users hand them over."""
    app = FastAPI(lifespan=vortext_lifespan(rate_limit=RateLimit(per_minute=60)))
    FastAPI(lifespan=vortext_lifespan(lifespan=stateful))
    FastAPI(lifespan=vortext_lifespan(lifespan=stateless))
    app.add_middleware(CancelOnDisconnect)
    app.mount("/push", PushReceiver(on_reply))
    app.mount("/emulator", emulator)
    httpx.AsyncClient(transport=httpx.ASGITransport(app=emulator))


async def json_in_and_out(client: VortextClient, emulator: Emulator) -> None:
    """Metadata of plain dicts is accepted; what comes back is JSON to narrow."""
    labels: dict[str, str] = {"campaign": "spring"}
    nested: dict[str, list[dict[str, int | None]]] = {"rows": [{"n": 1, "m": None}]}
    await client.send_sms("+33611272727", "x", metadata=labels)
    Sms("+33611272727", "x", metadata=nested)
    detail: SmsDetail = await client.get_sms("m-1")
    if detail.metadata is not None:
        campaign: JSONValue = detail.metadata["campaign"]
        if isinstance(campaign, str):
            print(campaign.upper())
    emulator.received_count("+33611272727", "x", metadata=labels)
    try:
        await client.status()
    except HTTPStatusError as error:
        body = error.json()
        if isinstance(body, Mapping):
            print(body.get("message"))
