"""Calls a type checker must refuse: ``mypy --strict`` reports each marked line.

Never run (``tests/typed/test_typed_surface.py`` type-checks it).  ``# E: code`` marks
a line where mypy must report an error with that code; ``# E[httpx2]: code`` one
that mypy can refuse only where httpx2 is installed (without it, httpx2's half of
the HTTP types is ``Any``).
"""

from __future__ import annotations

import httpx

from vortext_async import (
    RateLimit,
    RetryPolicy,
    Sms,
    VortextClient,
    aiohttp_transport,
    send_bulk,
)
from vortext_async.emulator import Emulator
from vortext_async.fastapi import vortext_lifespan
from vortext_async.sync import VortextClient as SyncClient
from vortext_async.testing import emulator_client
from vortext_async.webhooks import PushReceiver

MESSAGES = [Sms("+33611272727", "hi")]


async def asyncio_client() -> None:
    VortextClient(transport=42)  # E[httpx2]: arg-type
    VortextClient(transport="requests")  # E[httpx2]: arg-type
    VortextClient(timeout="10")  # E[httpx2]: arg-type
    VortextClient(limits=10)  # E[httpx2]: arg-type
    VortextClient(http_client=object())  # E[httpx2]: arg-type
    VortextClient(http_library="requests")  # E: arg-type
    VortextClient(transport="httpcore")  # E[httpx2]: arg-type
    VortextClient(proxy=3128)  # E[httpx2]: arg-type
    VortextClient(verify=1.0)  # E: arg-type
    VortextClient(cert=("c.pem",))  # E: arg-type
    VortextClient(trust_env="yes")  # E: arg-type
    VortextClient(rate_limit=60)  # E: arg-type
    VortextClient(max_wiat=1.0)  # E: call-arg
    client = VortextClient(timeout=httpx.Timeout(5.0))
    client.send_bulk(MESSAGES, concurency=64)  # E: call-arg
    client.send_bulk(MESSAGES, journal=3)  # E: arg-type
    send_bulk(client, MESSAGES, concurency=64)  # E: call-arg
    await client.send_sms(123, "x")  # E: arg-type
    await client.send_sms("+33611272727", "x", metadata=["a"])  # E: arg-type
    RateLimit(per_minute="10")  # E: arg-type
    RetryPolicy(attempts="5")  # E: arg-type
    Sms(33611272727, "hi")  # E: arg-type
    aiohttp_transport("requests")  # E: arg-type
    aiohttp_transport(limits=10)  # E[httpx2]: arg-type


def blocking_client() -> None:
    SyncClient(transport=42)  # E[httpx2]: arg-type
    SyncClient(timeout="10")  # E[httpx2]: arg-type
    SyncClient(concurrency=3)  # E: call-arg
    client = SyncClient()
    client.send_bulk(MESSAGES, concurency=64)  # E: call-arg
    client.send_sms(123, "x")  # E: arg-type


def integrations(emulator: Emulator) -> None:
    vortext_lifespan(max_wiat=1.0)  # E: call-arg
    vortext_lifespan(rate_limit=60)  # E: arg-type
    emulator_client(emulator, retry=3)  # E: arg-type
    emulator_client(emulator, concurrency=3)  # E: call-arg
    PushReceiver(42)  # E: arg-type
    PushReceiver(print, max_body_size="1MB")  # E: arg-type
