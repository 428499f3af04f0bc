"""The pieces together: client, limiter, emulator and PUSH receiver.

- the client sending at the caps against a server that counts each request late is
  never refused, and the same job with tokens returned W after hand-off is;
- a 429 pauses every sender sharing a limiter, so one refusal is not a herd;
- a reply posted by the emulator reaches a PushReceiver with the metadata sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

from vortext_async import (
    Permit,
    PushResponse,
    RateLimit,
    RateLimiter,
    RetryEvent,
    RetryPolicy,
    VortextClient,
)
from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.testing import VirtualClock, emulator_client
from vortext_async.webhooks import PushReceiver

WINDOWS = ((4, 0.5), (6, 1.0))
SENDS = 18


class _TokensBackAfterHandOff:
    """The unsafe rule, kept as a regression check: tokens come back W after the
    request was handed over, not after its answer (a sliding log)."""

    def __init__(self, limiter: RateLimiter) -> None:
        self._limiter = limiter

    @contextlib.asynccontextmanager
    async def acquire(self, **options: Any) -> AsyncIterator[Permit]:
        async with self._limiter.acquire(**options) as permit:
            permit.settle()  # W starts now, at hand-off
            yield permit

    def __getattr__(self, name: str) -> Any:
        return getattr(self._limiter, name)


async def _send_at_the_caps(rate_limit: Any, http_library: str) -> Emulator:
    emulator = Emulator(users={"acme": "pw"}, windows=WINDOWS, count_delay=0.03, seed=3)
    async with (
        serve_emulator(emulator, server="uvicorn") as url,
        VortextClient(
            "acme",
            "pw",
            base_url=url,
            rate_limit=rate_limit,
            retry=RetryPolicy.no_retries(),
            http_library=http_library,  # type: ignore[arg-type]
        ) as client,
    ):
        results = await asyncio.gather(
            *(client.send_sms("+33611272727", f"n{i}") for i in range(SENDS)),
            return_exceptions=True,
        )
    emulator.results = results  # type: ignore[attr-defined]
    return emulator


async def test_sending_at_the_caps_to_a_late_counting_server_is_never_refused(
    http_library: str,
) -> None:
    emulator = await _send_at_the_caps(RateLimit(windows=WINDOWS), http_library)
    stats = emulator.stats
    assert stats.refused == 0
    assert stats.violations == 0
    assert stats.accepted == SENDS
    assert all(not isinstance(result, BaseException) for result in emulator.results)  # type: ignore[attr-defined]


async def test_tokens_back_after_hand_off_are_refused_by_the_same_server(
    http_library: str,
) -> None:
    limiter = _TokensBackAfterHandOff(RateLimiter(RateLimit(windows=WINDOWS)))
    emulator = await _send_at_the_caps(limiter, http_library)
    assert emulator.stats.refused > 0


async def test_a_429_pauses_every_sender_sharing_the_limiter(http_library: str) -> None:
    clock = VirtualClock()
    # The account is shared with senders we do not control: no client-side caps,
    # the server refuses the 4th send within 10 s.
    emulator = Emulator(users={"demo": "demo"}, windows=[(3, 10.0)], clock=clock, seed=1)
    shared = RateLimiter(RateLimit(), clock=clock)
    options: dict[str, Any] = {"rate_limit": shared, "clock": clock, "http_library": http_library}
    others: list[asyncio.Task[Any]] = []
    second: VortextClient

    def on_retry(event: RetryEvent) -> None:
        # Right after the refusal, while the first waits to retry, the other client
        # (no retries: a 429 would fail it) sends too.
        others.append(asyncio.create_task(second.send_sms("+33611272727", "from the other client")))

    async with (
        emulator_client(
            emulator, retry=RetryPolicy(jitter=0), on_retry=on_retry, **options
        ) as first,
        emulator_client(emulator, retry=RetryPolicy.no_retries(), **options) as second,
    ):
        for i in range(3):
            await first.send_sms("+33611272727", f"early {i}")
        refused_at = clock.now_ns()
        # The 4th is refused (Retry-After: 10), waits and goes through on its retry.
        await first.send_sms("+33611272727", "refused, then retried")
        await asyncio.gather(*others)
    assert len(others) == 1
    stats = emulator.stats
    assert stats.refused == 1  # one refusal, not a herd
    late = [sms for sms in emulator.messages() if not sms.message.startswith("early")]
    assert {sms.message for sms in late} == {"refused, then retried", "from the other client"}
    assert all(sms.counted_ns >= refused_at + 10 * 10**9 for sms in late)


async def test_a_reply_reaches_the_push_receiver_with_the_metadata_sent(http_library: str) -> None:
    import uvicorn

    received: list[PushResponse] = []
    got_it = asyncio.Event()

    async def on_reply(push: PushResponse) -> None:
        received.append(push)
        got_it.set()

    receiver = PushReceiver(on_reply)
    config = uvicorn.Config(receiver, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        emulator = Emulator(push_url=f"http://127.0.0.1:{port}/", seed=5)
        async with emulator_client(emulator, http_library=http_library) as client:
            sent = await client.send_sms(
                "+33611272727", "Can we call you?", metadata={"myCustomerId": "123de32"}
            )
            await emulator.reply(sent.message_id, "Yes, after 5 pm")
            await asyncio.wait_for(got_it.wait(), timeout=10)
        await emulator.aclose()
    finally:
        server.should_exit = True
        await serving
    (push,) = received
    assert push.response.content == "Yes, after 5 pm"
    assert push.response.answered_at.tzinfo is not None
    assert push.message.message_id == sent.message_id
    assert push.message.metadata == {"myCustomerId": "123de32"}
