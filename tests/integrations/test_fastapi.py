"""The FastAPI integration, proved on the example app served by uvicorn on loopback.

The example (``examples/fastapi_app/app.py``) is driven over real HTTP by
``httpx.AsyncClient``; the emulator, served by uvicorn on loopback too, is the
judge: what it stored, its cap violations, its duplicates.  In-process for load
and disconnects; a real ``uvicorn`` subprocess for SIGTERM and ``--workers 2``.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import signal
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import BackgroundTasks, FastAPI

from tests.support.uvicorn_server import (
    LEFTOVER_MARK,
    OUTCOME,
    PHONE,
    GateClock,
    env_for,
    load_example,
    notify,
    outcomes,
    serve_app,
    spawn_uvicorn,
    stored_refs,
    wait_until,
)
from vortext_async import (
    ClientClosedError,
    RateLimit,
    RedisRateLimiter,
    VortextClient,
)
from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.fastapi import (
    STATE_ATTRIBUTE,
    CancelOnDisconnect,
    VortextClientDep,
    get_vortext_client,
    install_error_handlers,
    vortext_lifespan,
)


@pytest.fixture
def notify_log(caplog: pytest.LogCaptureFixture) -> list[str]:
    """The example app's log lines (logger ``notify``), as they come."""
    caplog.set_level(logging.INFO, logger="notify")
    lines: list[str] = []

    class Collect(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(record.getMessage())

    handler = Collect()
    logging.getLogger("notify").addHandler(handler)
    yield lines  # type: ignore[misc]
    logging.getLogger("notify").removeHandler(handler)


# -- the integration's own promises -------------------------------------------------


async def test_lifespan_owns_one_client_reachable_by_dependency_and_state() -> None:
    emulator = Emulator()
    seen: list[VortextClient] = []
    app = FastAPI(
        lifespan=vortext_lifespan(username="demo", password="demo", base_url="http://x.invalid")
    )

    @app.get("/which")
    async def which(client: VortextClientDep) -> dict[str, bool]:
        seen.append(client)
        return {"same": client is getattr(app.state, STATE_ATTRIBUTE)}

    assert not hasattr(app.state, STATE_ATTRIBUTE)  # nothing at import/creation time
    async with serve_emulator(emulator, server="uvicorn"):
        async with serve_app(app) as (url, _), httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/which")).json() == {"same": True}
            assert (await http.get("/which")).json() == {"same": True}
        assert seen[0] is seen[1]
        assert seen[0].closed  # closed at shutdown
        with pytest.raises(ClientClosedError):
            await seen[0].send_sms(PHONE, "too late")
    assert emulator.stats.requests == 0


async def test_without_the_lifespan_the_dependency_says_what_to_do() -> None:
    app = FastAPI()

    @app.get("/x")
    async def x(client: VortextClientDep) -> None: ...

    async with serve_app(app) as (url, _), httpx.AsyncClient(base_url=url) as http:
        response = await http.get("/x")
    assert response.status_code == 500
    request: Any = type("R", (), {"app": app})()
    with pytest.raises(RuntimeError, match="vortext_lifespan"):
        get_vortext_client(request)


async def test_redis_url_makes_the_caps_shared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("VORTEXT_REDIS_URL", "redis://:hunter2@127.0.0.1:1/0")
    app = FastAPI(
        lifespan=vortext_lifespan(
            rate_limit=RateLimit(per_minute=60),
            username="acme",
            password="p",
            base_url="http://x.invalid",
        )
    )
    async with app.router.lifespan_context(app):
        client = getattr(app.state, STATE_ATTRIBUTE)
        assert isinstance(client.limiter, RedisRateLimiter)
        assert client.limiter.rate_limit == RateLimit(per_minute=60)
        assert "hunter2" not in repr(client.limiter)


async def test_a_closing_client_answers_503_with_retry_after() -> None:
    app = FastAPI(
        lifespan=vortext_lifespan(username="demo", password="demo", base_url="http://x.invalid")
    )
    install_error_handlers(app)

    @app.post("/notify")
    async def send(client: VortextClientDep) -> None:
        await client.aclose()  # as at shutdown: new sends are refused
        await client.send_sms(PHONE, "refused")

    async with serve_app(app) as (url, _), httpx.AsyncClient(base_url=url) as http:
        response = await http.post("/notify")
    assert response.status_code == 503
    assert int(response.headers["retry-after"]) >= 1


async def test_cancel_on_disconnect_leaves_finished_requests_alone() -> None:
    """Background tasks run after the response: a hang-up then cancels nothing."""
    finished = asyncio.Event()
    release = asyncio.Event()
    app = FastAPI()
    app.add_middleware(CancelOnDisconnect)

    async def after() -> None:
        await release.wait()
        finished.set()

    @app.get("/x")
    async def x(tasks: BackgroundTasks) -> dict[str, int]:
        tasks.add_task(after)
        return {"ok": 1}

    async with serve_app(app) as (url, _):
        async with httpx.AsyncClient(base_url=url) as http:
            assert (await http.get("/x")).json() == {"ok": 1}
        # the connection is closed now; the background task still runs to its end
        release.set()
        await asyncio.wait_for(finished.wait(), 10)


# -- under load: 500 concurrent POST /notify ----------------------------------------


async def test_500_concurrent_notifies_get_an_id_or_a_clear_429(notify_log: list[str]) -> None:
    example = load_example()
    emulator = Emulator(windows=[(20, 1.0)], count_delay=0.02)
    async with serve_emulator(emulator, server="uvicorn") as emulator_url:
        env = env_for(emulator_url, NOTIFY_WINDOWS="20:1", NOTIFY_MAX_WAIT="1.5")
        app = example.create_app(env)
        async with serve_app(app) as (url, _), contextlib.AsyncExitStack() as stack:
            # 20 end-user clients of 25 connections: 500 requests in flight at once
            # (one pool of 500 would spend its time in httpcore's pool bookkeeping)
            limits = httpx.Limits(max_connections=25)
            users = [
                await stack.enter_async_context(
                    httpx.AsyncClient(base_url=url, limits=limits, timeout=30)
                )
                for _ in range(20)
            ]
            responses = await asyncio.gather(*(notify(users[i % 20], f"r{i}") for i in range(500)))

    sent = {}
    for i, response in enumerate(responses):
        if response.status_code == 200:
            sent[f"r{i}"] = response.json()["messageId"]
        else:
            assert response.status_code in (429, 503), response.text
            assert int(response.headers["retry-after"]) >= 1
    stats = emulator.stats
    assert stats.violations == 0
    assert stats.refused == 0
    assert emulator.duplicates() == {}
    # every 200 is an SMS the emulator has, under that id; nothing else went out
    assert dict(stored_refs(emulator).items()) == {
        ref: [message_id] for ref, message_id in sent.items()
    }
    assert 20 <= len(sent) < 500  # the caps were the limit, and they were used
    logged = outcomes(notify_log)
    assert {
        ref for ref, items in logged.items() if items == [("sent", "request", sent.get(ref))]
    } == set(sent)


# -- end users hanging up ------------------------------------------------------------


async def test_callers_hanging_up_mid_send_lose_nothing_and_double_nothing(
    notify_log: list[str],
) -> None:
    """10 sends reach the (slow) emulator, 2 wait for a token; all 12 callers hang up."""
    example = load_example()
    gate = GateClock()
    emulator = Emulator(latency=1.0, clock=gate)  # answers only once the gate opens
    async with serve_emulator(emulator, server="uvicorn") as emulator_url:
        env = env_for(emulator_url, NOTIFY_WINDOWS="10:60", NOTIFY_MAX_WAIT="120")
        app = example.create_app(env)
        async with (
            serve_app(app) as (url, server),
            httpx.AsyncClient(base_url=url) as http,
            gate.opened_at_exit(),
        ):
            client: VortextClient = getattr(app.state, STATE_ATTRIBUTE)
            calls = [asyncio.create_task(notify(http, f"r{i}")) for i in range(12)]
            await wait_until(
                lambda: gate.sleeping == 10 and client.limiter.state().queued == 2,
                what="10 sends at the emulator, 2 waiting for a token",
            )
            for call in calls:
                call.cancel()  # the end user goes away: the connection closes
            await asyncio.gather(*calls, return_exceptions=True)
            await wait_until(lambda: not server.server_state.tasks, what="handlers cancelled")
            assert client.limiter.state().queued == 0  # the waiting two took nothing
            assert not any(OUTCOME.search(line) for line in notify_log)  # nothing settled yet
            gate.open()  # the emulator answers the 10 sends now running in the background
            await wait_until(lambda: len(outcomes(notify_log)) == 10, what="10 outcomes logged")

    stored = stored_refs(emulator)
    logged = outcomes(notify_log)
    assert len(stored) == 10  # which 10 got a token depends on arrival order
    assert set(stored) == set(logged) < {f"r{i}" for i in range(12)}
    for ref, ids in stored.items():
        assert logged[ref] == [("sent", "background", ids[0])]  # once, with its outcome
    assert emulator.duplicates() == {}
    assert emulator.stats.requests == 10  # the 2 that never got a token never went out


# -- SIGTERM under load ---------------------------------------------------------------


async def test_sigterm_under_load_accounts_for_every_send(tmp_path: Path) -> None:
    """Sends stuck at a slow emulator are cut before uvicorn's grace ends: 502, UNCERTAIN.

    The client's own ``shutdown_grace`` is longer than uvicorn's
    ``--timeout-graceful-shutdown``: the server's is the one that counts, and the
    client cuts its sends before uvicorn would cancel their requests (a 500 with a
    ``CancelledError`` traceback).
    """
    gate = GateClock()
    gate.open()
    emulator = Emulator(latency=1.0, clock=gate)
    log = tmp_path / "app.log"
    async with serve_emulator(emulator, server="uvicorn") as emulator_url, gate.opened_at_exit():
        env = env_for(
            emulator_url, NOTIFY_WINDOWS="10:1", NOTIFY_MAX_WAIT="0.5", NOTIFY_SHUTDOWN_GRACE="30"
        )
        process, url = await spawn_uvicorn(env, log, "--timeout-graceful-shutdown", "1")
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                before = await asyncio.gather(*(notify(http, f"a{i}") for i in range(3)))
                assert [r.status_code for r in before] == [200, 200, 200]
                gate.close()  # from now on the emulator holds its answers
                calls = [asyncio.create_task(notify(http, f"b{i}")) for i in range(12)]
                await wait_until(
                    lambda: gate.sleeping + sum(c.done() for c in calls) == 12,
                    what="each send at the emulator or refused",
                )
                in_flight = gate.sleeping
                assert in_flight >= 7
                process.send_signal(signal.SIGTERM)
                await asyncio.wait_for(process.wait(), 30)  # a hang guard only
                assert gate.sleeping == in_flight  # it did not wait for the emulator
                answers = await asyncio.gather(*calls, return_exceptions=True)
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
    text = log.read_text()
    # uvicorn re-raises the SIGTERM it caught once its shutdown is complete
    assert process.returncode in (0, -signal.SIGTERM), text
    assert "Application shutdown complete" in text
    logged = outcomes(text.splitlines())
    stored = stored_refs(emulator)
    assert emulator.duplicates() == {}
    for ref in ("a0", "a1", "a2"):
        assert logged[ref] == [("sent", "request", stored[ref][0])]
    cut = 0
    for i, answer in enumerate(answers):
        ref = f"b{i}"
        assert isinstance(answer, httpx.Response)  # every caller answered
        if answer.status_code == 429:
            assert int(answer.headers["retry-after"]) >= 1
            assert ref not in stored
            assert logged[ref] == [("failed", "request", None)]
        else:  # reached the emulator, cut at shutdown: told so, reported, not lost
            cut += 1
            assert answer.status_code == 502, answer.text
            assert "retry-after" not in answer.headers  # a retry could send it twice
            assert len(stored[ref]) == 1
            assert logged[ref] == [("uncertain", "request", None)]
    assert cut == in_flight
    assert set(stored) == {ref for ref in logged if logged[ref][0][0] != "failed"}
    leftover = re.search(rf"{LEFTOVER_MARK} (\d+) (.*)", text)
    assert leftover is not None, text
    assert leftover.group(2) == "['Server.serve']"  # uvicorn's main task, nothing of ours
    for trouble in ("Task was destroyed", "ResourceWarning", "Unclosed", "never awaited"):
        assert trouble not in text, text
    # uvicorn had nothing left to cancel
    assert "Traceback" not in text, text
    assert "timeout graceful shutdown exceeded" not in text, text


# -- two workers, one account ---------------------------------------------------------


@pytest.fixture(scope="module")
def redis_url() -> Any:
    from tests.support.redis_server import redis_server

    with redis_server() as server:
        yield server.url


@pytest.mark.redis
@pytest.mark.parametrize("shared", [True, False], ids=["redis", "no-redis-control"])
async def test_two_workers_share_the_caps_through_redis(
    tmp_path: Path, redis_url: str, shared: bool
) -> None:
    emulator = Emulator(windows=[(10, 1.0)], count_delay=0.02)
    async with serve_emulator(emulator, server="uvicorn") as emulator_url:
        env = env_for(emulator_url, NOTIFY_WINDOWS="10:1", NOTIFY_MAX_WAIT="10")
        if shared:
            env["VORTEXT_REDIS_URL"] = redis_url
        process, url = await spawn_uvicorn(env, tmp_path / "app.log", "--workers", "2")
        try:
            async with httpx.AsyncClient(base_url=url, timeout=30) as http:
                pids: set[str] = set()
                for _ in range(200):  # both workers up (readiness polling)
                    probes = await asyncio.gather(
                        *(http.get("/health", headers={"Connection": "close"}) for _ in range(8))
                    )
                    pids |= {probe.headers["x-worker-pid"] for probe in probes}
                    if len(pids) == 2:
                        break
                    await asyncio.sleep(0.05)
                assert len(pids) == 2, "the second worker never answered"
                # a connection per request, so the kernel spreads them over both workers
                http.headers["Connection"] = "close"
                # bursts of 20 at once until both workers have sent (the kernel decides)
                responses: list[httpx.Response] = []
                for burst in range(10):  # a loaded machine may give one worker many bursts
                    refs = (f"r{burst}-{i}" for i in range(20))
                    responses += await asyncio.gather(*(notify(http, ref) for ref in refs))
                    both = {r.headers["x-worker-pid"] for r in responses} == pids
                    # The control goes on until the excess shows: a loaded machine may
                    # serve the two workers' bursts in different seconds.
                    if both and (shared or emulator.stats.violations > 0):
                        break
        finally:
            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 30)
    senders = {r.headers["x-worker-pid"] for r in responses if r.status_code == 200}
    assert senders == pids  # both workers sent
    if shared:
        assert [r.status_code for r in responses] == [200] * len(responses)
        assert emulator.stats.violations == 0
        assert emulator.stats.refused == 0
        assert emulator.stats.accepted == len(responses)
    else:  # each worker alone keeps 10/s: together they exceed the account's cap
        assert emulator.stats.violations > 0
    assert emulator.duplicates() == {}
