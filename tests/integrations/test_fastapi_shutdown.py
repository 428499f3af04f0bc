"""Shutdown answers every caller: sends waiting for a token get 503 as shutdown starts.

The example app (``examples/fastapi_app/app.py``) runs under a real ``uvicorn``
process and is stopped with ``SIGTERM`` while many callers wait for the few tokens
its caps allow.  The emulator, whose answers a :class:`GateClock` holds, is the
judge of what went out; uvicorn's stderr is the app's log.
"""

from __future__ import annotations

import asyncio
import logging
import signal
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI

from tests.support.uvicorn_server import (
    GateClock,
    env_for,
    load_example,
    notify,
    outcomes,
    serve_app,
    spawn_gunicorn,
    spawn_uvicorn,
    stored_refs,
    wait_until,
)
from vortext_async import VortextClient
from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.fastapi import STATE_ATTRIBUTE, vortext_shutdown

CALLERS = 200
TOKENS = 3  # what the caps let through in the test's lifetime


async def queued_at_limiter(probe: httpx.AsyncClient) -> int:
    state = (await probe.get("/health")).json()
    queued: int = state["queued"]
    return queued


@pytest.mark.parametrize("runner", ["uvicorn", "uvicorn-standard", "gunicorn"])
async def test_sigterm_answers_callers_waiting_for_a_token_at_once(
    tmp_path: Path, runner: str
) -> None:
    """200 callers, 3 tokens: 197 get 503 + Retry-After while the 3 sends are still out.

    Under the ``uvicorn`` CLI (which is ``uvicorn.run``), on asyncio and h11 and on
    uvloop and httptools (``uvicorn[standard]``), and under gunicorn with uvicorn
    workers, whose arbiter passes the ``SIGTERM`` on to its worker.
    """
    options = ["--timeout-graceful-shutdown", "60"]
    if runner == "gunicorn":
        pytest.importorskip("gunicorn", reason="gunicorn is in the test dependency group")
    if runner == "uvicorn-standard":
        for module in ("uvloop", "httptools"):
            pytest.importorskip(module, reason="uvloop and httptools: uvicorn[standard]")
        options += ["--loop", "uvloop", "--http", "httptools"]
    elif runner == "uvicorn":
        options += ["--loop", "asyncio", "--http", "h11"]  # not what "auto" finds
    gate = GateClock()
    gate.open()
    emulator = Emulator(latency=1.0, clock=gate)  # holds its answers while the gate is shut
    log = tmp_path / "app.log"
    async with serve_emulator(emulator, server="uvicorn") as emulator_url, gate.opened_at_exit():
        env = env_for(
            emulator_url,
            NOTIFY_WINDOWS=f"{TOKENS}:3600",
            NOTIFY_MAX_WAIT="1e9",  # each caller would wait for its window, hours away
            NOTIFY_SHUTDOWN_GRACE="60",
        )
        # the server's own grace, long: the answers must not wait for it
        if runner == "gunicorn":
            process, url = await spawn_gunicorn(env, log, "--graceful-timeout", "60")
        else:
            process, url = await spawn_uvicorn(env, log, *options)
        calls: list[asyncio.Task[httpx.Response]] = []
        try:
            gate.close()
            limits = httpx.Limits(max_connections=CALLERS, max_keepalive_connections=CALLERS)
            async with (
                httpx.AsyncClient(base_url=url, timeout=120, limits=limits) as http,
                httpx.AsyncClient(base_url=url, timeout=30) as probe,
            ):
                calls += [asyncio.create_task(notify(http, f"c{i}")) for i in range(CALLERS)]
                await wait_until(lambda: gate.sleeping == TOKENS, what="3 sends at the emulator")
                for _ in range(2000):  # readiness polling of the subprocess, a hang guard
                    if await queued_at_limiter(probe) == CALLERS - TOKENS:
                        break
                    await asyncio.sleep(0.01)
                assert await queued_at_limiter(probe) == CALLERS - TOKENS
                assert not any(call.done() for call in calls)

                process.send_signal(signal.SIGTERM)
                await wait_until(
                    lambda: sum(call.done() for call in calls) == CALLERS - TOKENS,
                    what="every caller waiting for a token answered",
                    guard=15,  # well inside the server's 60 s: old code answered only then
                )
                # answered while the sends that went out are still held at the
                # emulator: the server is in its graceful wait, long before its timeout
                assert gate.sleeping == TOKENS
                assert process.returncode is None
                early = {i: call.result() for i, call in enumerate(calls) if call.done()}

                gate.open()  # the emulator answers the 3 sends in flight
                answers = await asyncio.gather(*calls)
                await asyncio.wait_for(process.wait(), 30)  # a hang guard only
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
            for call in calls:
                call.cancel()
            await asyncio.gather(*calls, return_exceptions=True)

    text = log.read_text()
    assert process.returncode in (0, -signal.SIGTERM), text
    assert "Traceback" not in text, text
    assert "CancelledError" not in text, text
    assert "timeout graceful shutdown exceeded" not in text, text
    assert "Application shutdown complete" in text, text

    assert len(early) == CALLERS - TOKENS
    for response in early.values():
        assert response.status_code == 503, response.text
        assert int(response.headers["retry-after"]) >= 1
    sent = {
        f"c{i}": response.json()["messageId"]
        for i, response in enumerate(answers)
        if i not in early
    }
    assert [answers[i].status_code for i in range(CALLERS) if i not in early] == [200] * TOKENS

    # what went out is exactly the 3 answered 200, each once, each logged once as sent
    assert stored_refs(emulator) == {ref: [message_id] for ref, message_id in sent.items()}
    assert emulator.stats.requests == TOKENS
    logged = outcomes(text.splitlines())
    for ref, message_id in sent.items():
        assert logged[ref] == [("sent", "request", message_id)]
    for i in early:
        assert logged[f"c{i}"] == [("failed", "request", None)]  # never went out
    assert len(logged) == CALLERS


async def test_vortext_shutdown_drains_for_servers_without_signals(
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The explicit call: waiting callers answered 503 at once, sends in flight finish."""
    caplog.set_level(logging.INFO, logger="notify")
    example = load_example()
    gate = GateClock()
    emulator = Emulator(latency=1.0, clock=gate)
    async with serve_emulator(emulator, server="uvicorn") as emulator_url:
        env = env_for(emulator_url, NOTIFY_WINDOWS="2:3600", NOTIFY_MAX_WAIT="1e9")
        app = example.create_app(env)
        async with (
            serve_app(app) as (url, _),
            httpx.AsyncClient(base_url=url, timeout=60) as http,
            gate.opened_at_exit(),
        ):
            client: VortextClient = getattr(app.state, STATE_ATTRIBUTE)
            calls = [asyncio.create_task(notify(http, f"r{i}")) for i in range(20)]
            await wait_until(
                lambda: gate.sleeping == 2 and client.limiter.state().queued == 18,
                what="2 sends at the emulator, 18 waiting for a token",
            )
            drain = asyncio.create_task(vortext_shutdown(app))
            await wait_until(lambda: sum(c.done() for c in calls) == 18, what="18 answered")
            assert gate.sleeping == 2  # the two sends in flight are still held
            assert not drain.done()  # and the drain waits for them
            assert client.closed
            gate.open()
            await drain
            answers = await asyncio.gather(*calls)
            await vortext_shutdown(app)  # again: the same, finished drain

    statuses = sorted(answer.status_code for answer in answers)
    assert statuses == [200] * 2 + [503] * 18
    for answer in answers:
        if answer.status_code == 503:
            assert int(answer.headers["retry-after"]) >= 1
    assert emulator.stats.requests == 2
    logged = outcomes([record.getMessage() for record in caplog.records])
    assert sorted(items[0][0] for items in logged.values()) == ["failed"] * 18 + ["sent"] * 2


async def test_vortext_shutdown_needs_the_lifespan() -> None:
    with pytest.raises(RuntimeError, match="vortext_lifespan"):
        await vortext_shutdown(FastAPI())
