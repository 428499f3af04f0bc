"""The emulator, checked from the outside with raw httpx: every rule of the wire format,
the caps, the faults, the store and the PUSH replies.

In-process through ``httpx.ASGITransport`` (time is a VirtualClock: no real sleeping),
and over real loopback sockets where the socket matters (both servers, dropped
connections, PUSH replies to a real receiver).
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import re
import signal
import socket
import sys
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import httpx
import pytest

from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.testing import (  # the plugin's fixtures, used below
    VirtualClock,
    emulator_client,
    vortext_client,  # noqa: F401
    vortext_emulator,  # noqa: F401
)

DATE = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}[+-]\d{4}")
PHONE = "+33611272727"
SEND = {"phoneNumber": PHONE, "message": "Please call me"}
NS = 1_000_000_000


def in_process(emulator: Emulator, auth: Any = ("demo", "demo")) -> httpx.AsyncClient:
    return httpx.AsyncClient(
        transport=httpx.ASGITransport(app=emulator), base_url="http://emulator.invalid", auth=auth
    )


async def send(client: httpx.AsyncClient, **fields: Any) -> httpx.Response:
    return await client.post("/sms", json={**SEND, **fields})


# -- auth ----------------------------------------------------------------------


def basic(raw: str) -> str:
    return "Basic " + base64.b64encode(raw.encode()).decode()


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        basic("demo:wrong"),
        basic("nobody:demo"),
        basic("demo"),  # no colon
        "Basic %%%not-base64",
        "Bearer demo",
    ],
)
async def test_requests_without_the_right_basic_credentials_are_401(
    authorization: str | None,
) -> None:
    emulator = Emulator()
    headers = {} if authorization is None else {"Authorization": authorization}
    async with in_process(emulator, auth=None) as client:
        for method, path in (("GET", "/status"), ("POST", "/sms"), ("GET", "/sms/x")):
            response = await client.request(method, path, headers=headers, json=SEND)
            assert response.status_code == 401
            assert response.headers["www-authenticate"].startswith("Basic realm=")
            assert "credentials" in response.json()["message"]
    assert emulator.stats.unauthorized == 3
    assert emulator.stats.accepted == 0


async def test_each_configured_user_is_its_own_account_with_its_own_caps() -> None:
    emulator = Emulator(users={"a": "pa:ss", "b": "secret"}, windows=[(1, 60)])
    async with (
        in_process(emulator, auth=("a", "pa:ss")) as a,
        in_process(emulator, auth=("b", "secret")) as b,
    ):
        assert (await send(a)).status_code == 201
        assert (await send(b)).status_code == 201
        assert (await send(a)).status_code == 429
    assert [sms.account for sms in emulator.messages()] == ["a", "b"]


# -- the three calls and the wire format ---------------------------------------


async def test_status_send_and_detail_round_trip_with_documented_dates() -> None:
    emulator = Emulator()
    metadata = {"myCustomerId": "123de32", "caller": "MyApp 2.2", "n": [1, {"x": None}]}
    async with in_process(emulator) as client:
        status = await client.get("/status")
        assert status.status_code == 200
        assert status.headers["content-type"] == "application/json"
        assert status.json()["status"] == "UP"

        sent = await send(client, metadata=metadata)
        assert sent.status_code in (200, 201)
        message_id = sent.json()["messageId"]
        assert isinstance(message_id, str)
        assert message_id

        detail = await client.get(f"/sms/{message_id}")
    assert detail.status_code == 200
    body = detail.json()
    assert body["messageId"] == message_id
    assert body["phoneNumber"] == PHONE
    assert body["message"] == "Please call me"
    assert body["metadata"] == metadata
    assert body["status"] == "SENT"
    assert DATE.fullmatch(body["createdAt"]), body["createdAt"]
    assert body["createdAt"].endswith("+0000")


async def test_the_documented_example_number_and_null_metadata_are_accepted() -> None:
    async with in_process(Emulator()) as client:
        response = await send(client, phoneNumber="+3361127272727", metadata=None)
        assert response.status_code == 201
        detail = await client.get(f"/sms/{response.json()['messageId']}")
    assert detail.json()["metadata"] is None


@pytest.mark.parametrize(
    ("body", "named"),
    [
        ({"phoneNumber": "0611272727", "message": "hi"}, "phoneNumber"),
        ({"phoneNumber": "+33 6 11 27 27 27", "message": "hi"}, "phoneNumber"),
        ({"phoneNumber": "+1234", "message": "hi"}, "phoneNumber"),
        ({"phoneNumber": "+" + "1" * 20, "message": "hi"}, "phoneNumber"),
        ({"phoneNumber": 33611272727, "message": "hi"}, "phoneNumber"),
        ({"message": "hi"}, "phoneNumber"),
        ({"phoneNumber": PHONE, "message": ""}, "message"),
        ({"phoneNumber": PHONE, "message": "   "}, "message"),
        ({"phoneNumber": PHONE}, "message"),
        ({"phoneNumber": PHONE, "message": "hi", "metadata": ["a"]}, "metadata"),
        ({"phoneNumber": PHONE, "message": "hi", "metadata": "a=b"}, "metadata"),
        ({"phoneNumber": PHONE, "message": "hi", "metadata": 3}, "metadata"),
        (["not", "an", "object"], "object"),
    ],
)
async def test_bad_sends_are_400_with_a_json_reason_naming_the_field(body: Any, named: str) -> None:
    emulator = Emulator()
    async with in_process(emulator) as client:
        response = await client.post("/sms", json=body)
    assert response.status_code == 400
    assert named in response.json()["message"]
    assert emulator.stats.bad_requests == 1
    assert emulator.messages() == []


async def test_a_body_that_is_not_json_is_400() -> None:
    async with in_process(Emulator()) as client:
        response = await client.post(
            "/sms", content=b"{phoneNumber: +33", headers={"Content-Type": "application/json"}
        )
    assert response.status_code == 400
    assert "not JSON" in response.json()["message"]


async def test_content_type_methods_paths_and_size_are_checked() -> None:
    emulator = Emulator(max_body=1024)
    async with in_process(emulator) as client:
        text = await client.post(
            "/sms", content=json.dumps(SEND), headers={"Content-Type": "text/plain"}
        )
        assert text.status_code == 415
        with_charset = await client.post(
            "/sms",
            content=json.dumps(SEND),
            headers={"Content-Type": "application/json; charset=utf-8"},
        )
        assert with_charset.status_code == 201

        get_sms = await client.get("/sms")
        assert (get_sms.status_code, get_sms.headers["allow"]) == (405, "POST")
        post_status = await client.post("/status", json={})
        assert (post_status.status_code, post_status.headers["allow"]) == (405, "GET")

        assert (await client.get("/nope")).status_code == 404
        unknown = await client.get("/sms/does-not-exist")
        assert unknown.status_code == 404
        assert "does-not-exist" in unknown.json()["message"]

        big = await send(client, message="x" * 2000)
        assert big.status_code == 413
    assert emulator.stats.accepted == 1


# -- caps ----------------------------------------------------------------------


async def test_caps_are_rolling_windows_answered_429_with_retry_after() -> None:
    clock = VirtualClock()
    emulator = Emulator(windows=[(2, 1.0)], clock=clock)
    async with in_process(emulator) as client:
        assert (await send(client)).status_code == 201  # t = 0.0
        clock.advance(0.9)
        assert (await send(client)).status_code == 201  # t = 0.9
        clock.advance(0.1)
        # t = 1.0: the send of t = 0.0 has just left the window (t - 1, t].
        assert (await send(client)).status_code == 201
        clock.advance(0.5)
        # t = 1.5: 0.9 and 1.0 are in (0.5, 1.5]: refused (a fixed-window server
        # counting calendar seconds would accept it, a rolling one must not).
        refused = await send(client)
        assert refused.status_code == 429
        assert refused.headers["retry-after"] == "1"  # fits at 1.9: ceil(0.4)
        assert "cap" in refused.json()["message"]
        clock.advance(0.4)
        assert (await send(client)).status_code == 201  # t = 1.9
    stats = emulator.stats
    assert (stats.accepted, stats.refused, stats.violations) == (4, 1, 1)
    assert stats.window_violations == (1,)


async def test_retry_after_is_the_whole_seconds_until_the_send_fits_in_every_window() -> None:
    clock = VirtualClock()
    emulator = Emulator(windows=[(3, 1.0), (4, 10.0)], clock=clock)
    async with in_process(emulator) as client:
        for _ in range(3):
            assert (await send(client)).status_code == 201
        short = await send(client)  # t = 0: the 1 s window is full
        assert (short.status_code, short.headers["retry-after"]) == (429, "1")
        clock.advance(2.0)
        assert (await send(client)).status_code == 201  # the 4th of 10 s
        clock.advance(1.0)
        long = await send(client)  # t = 3: the 10 s window is full until t = 10
        assert (long.status_code, long.headers["retry-after"]) == (429, "7")
        clock.advance(7.0)
        assert (await send(client)).status_code == 201
    assert emulator.stats.window_violations == (1, 1)
    assert emulator.stats.refused == 2


async def test_refused_sends_are_not_stored_and_do_not_use_the_window() -> None:
    clock = VirtualClock()
    emulator = Emulator(windows=[(1, 1.0)], clock=clock)
    async with in_process(emulator) as client:
        assert (await send(client, message="first")).status_code == 201
        for _ in range(5):
            clock.advance(0.1)
            assert (await send(client, message="refused")).status_code == 429
        clock.advance(0.5)  # t = 1.0: only "first" was ever counted
        assert (await send(client, message="after")).status_code == 201
    assert [sms.message for sms in emulator.messages()] == ["first", "after"]
    assert emulator.received_count(PHONE, "refused") == 0


async def test_observe_only_mode_accepts_everything_and_counts_violations() -> None:
    clock = VirtualClock()
    emulator = Emulator(windows=[(2, 1.0), (3, 60.0)], enforce=False, clock=clock)
    async with in_process(emulator) as client:
        statuses = [(await send(client)).status_code for _ in range(5)]
    assert statuses == [201] * 5
    stats = emulator.stats
    assert (stats.accepted, stats.refused, stats.violations) == (5, 0, 3)
    assert stats.window_violations == (3, 2)


async def test_concurrent_sends_never_exceed_a_window() -> None:
    clock = VirtualClock()
    emulator = Emulator(windows=[(10, 1.0)], count_delay=0.03, seed=7, clock=clock)
    async with in_process(emulator) as client:
        responses = await asyncio.gather(*(send(client, message=f"m{i}") for i in range(30)))
    assert sorted(r.status_code for r in responses) == [201] * 10 + [429] * 20
    assert (emulator.stats.accepted, emulator.stats.violations) == (10, 20)


async def test_count_delay_counts_each_send_at_a_random_instant_after_arrival() -> None:
    outcomes = []
    for seed in range(16):
        clock = VirtualClock()
        emulator = Emulator(windows=[(1, 1.0)], count_delay=0.03, seed=seed, clock=clock)
        async with in_process(emulator) as client:
            assert (await send(client, message="a")).status_code == 201  # arrives at 0
            delay_a = emulator.messages()[0].counted_ns
            assert 0 <= delay_a <= 0.03 * NS
            assert clock.now_ns() == delay_a  # answered once counted
            clock.advance((NS - clock.now_ns()) / NS)  # b arrives exactly 1 s after a
            assert clock.now_ns() == NS
            b = await send(client, message="b")
            delay_b = clock.now_ns() - NS
        assert 0 <= delay_b <= 0.03 * NS
        # b fits only if a has left (cb - 1 s, cb], i.e. a was counted no later than b.
        assert (b.status_code == 201) == (delay_a <= delay_b)
        outcomes.append(b.status_code)
    assert set(outcomes) == {201, 429}  # a sender pacing by arrival time gets refused


# -- faults --------------------------------------------------------------------


async def test_fixed_and_ranged_latency_delay_every_answer() -> None:
    clock = VirtualClock()
    emulator = Emulator(latency=2.5, clock=clock)
    async with in_process(emulator) as client:
        start = clock.now_ns()
        assert (await client.get("/status")).status_code == 200
        assert clock.now_ns() - start == 2_500_000_000
        emulator.latency = (1.0, 2.0)
        waits = []
        for _ in range(5):
            start = clock.now_ns()
            await send(client)
            waits.append(clock.now_ns() - start)
    assert all(NS <= wait <= 2 * NS for wait in waits)
    assert len(set(waits)) > 1


async def test_an_injected_503_is_answered_before_processing() -> None:
    emulator = Emulator(error_rate=1.0, error_statuses=(503,))
    async with in_process(emulator) as client:
        response = await send(client)
    assert response.status_code == 503
    assert response.json()["status"] == 503
    assert emulator.received_count(PHONE, SEND["message"]) == 0
    assert (emulator.stats.errors, emulator.stats.accepted) == (1, 0)


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_other_injected_5xx_come_after_the_sms_was_taken(status: int) -> None:
    emulator = Emulator(error_rate=1.0, error_statuses=(status,))
    async with in_process(emulator) as client:
        response = await send(client)
    assert response.status_code == status
    assert emulator.received_count(PHONE, SEND["message"]) == 1
    assert (emulator.stats.errors, emulator.stats.accepted) == (1, 1)


async def test_error_rate_is_a_share_of_requests() -> None:
    emulator = Emulator(error_rate=0.25, seed=3)
    async with in_process(emulator) as client:
        statuses = [(await client.get("/status")).status_code for _ in range(200)]
    failed = sum(status >= 500 for status in statuses)
    assert failed == emulator.stats.errors
    assert 25 <= failed <= 75
    assert set(statuses) - {200} <= {500, 502, 503, 504}


async def test_drops_are_only_drawn_where_a_server_can_drop() -> None:
    emulator = Emulator(drop_rate=1.0)
    async with in_process(emulator) as client:
        assert (await send(client)).status_code == 201
    assert emulator.stats.drops == 0
    with pytest.raises(ValueError, match="drop_rate"):
        async with serve_emulator(emulator, server="uvicorn"):
            pass


async def test_a_dropped_connection_over_a_real_socket_after_the_sms_was_taken() -> None:
    emulator = Emulator(drop_rate=1.0)
    async with (
        serve_emulator(emulator) as url,
        httpx.AsyncClient(base_url=url, auth=("demo", "demo")) as client,
    ):
        with pytest.raises(httpx.TransportError) as caught:
            await send(client)
        assert isinstance(caught.value, httpx.ReadError | httpx.RemoteProtocolError)
        assert emulator.stats.drops == 1
        assert emulator.received_count(PHONE, SEND["message"]) == 1  # processed, then dropped
        emulator.drop_rate = 0.0
        assert (await send(client)).status_code == 201


# -- real sockets --------------------------------------------------------------


@pytest.mark.parametrize("server", ["builtin", "uvicorn"])
async def test_served_on_loopback_by_either_server(server: Any) -> None:
    emulator = Emulator(windows=[(2, 60.0)])
    async with serve_emulator(emulator, server=server) as url:
        assert re.fullmatch(r"http://127\.0\.0\.1:\d+", url)
        async with httpx.AsyncClient(base_url=url, auth=("demo", "demo")) as client:
            assert (await client.get("/status")).status_code == 200
            first = await send(client, metadata={"k": "v"})
            assert first.status_code == 201
            detail = await client.get(f"/sms/{first.json()['messageId']}")
            assert detail.json()["metadata"] == {"k": "v"}
            assert (await send(client)).status_code == 201
            assert (await send(client)).headers["retry-after"]
        async with httpx.AsyncClient(base_url=url) as anonymous:
            assert (await anonymous.get("/status")).status_code == 401
    assert emulator.stats.requests == 6


async def test_the_builtin_server_answers_400_to_garbage_and_413_without_reading_on() -> None:
    emulator = Emulator(max_body=1000)
    async with serve_emulator(emulator, server="builtin") as url:
        host, port = url.removeprefix("http://").split(":")
        reader, writer = await asyncio.open_connection(host, int(port))
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")
        await writer.drain()
        assert (await reader.read()).startswith(b"HTTP/1.1 400")
        writer.close()
        async with httpx.AsyncClient(base_url=url, auth=("demo", "demo")) as client:
            response = await client.post("/sms", json={**SEND, "message": "x" * 100_000})
            assert response.status_code == 413


RUN_EMULATOR = """
import sys
from vortext_async.emulator import Emulator, run_emulator
run_emulator(Emulator(users={"u": "p"}), port=0, server=sys.argv[1],
             on_ready=lambda url: print(url, flush=True))
print("stopped", flush=True)
"""


@pytest.mark.parametrize("server", ["builtin", "uvicorn"])
async def test_run_emulator_serves_until_sigterm(server: str) -> None:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-c", RUN_EMULATOR, server, stdout=asyncio.subprocess.PIPE
    )
    assert process.stdout is not None
    try:
        url = (await process.stdout.readline()).decode().strip()
        async with httpx.AsyncClient(base_url=url, auth=("u", "p")) as client:
            assert (await client.get("/status")).status_code == 200
            assert (await send(client)).status_code == 201
        process.send_signal(signal.SIGTERM)
        assert (await process.stdout.read()).decode().strip() == "stopped"
        assert await process.wait() == 0
    finally:
        if process.returncode is None:
            process.kill()
            await process.wait()


# -- store ---------------------------------------------------------------------


async def test_the_store_is_bounded_and_keeps_the_latest() -> None:
    emulator = Emulator(max_stored=3)
    async with in_process(emulator) as client:
        ids = [(await send(client, message=f"m{i}")).json()["messageId"] for i in range(5)]
        assert (await client.get(f"/sms/{ids[0]}")).status_code == 404
        assert (await client.get(f"/sms/{ids[4]}")).status_code == 200
    assert [sms.message for sms in emulator.messages()] == ["m2", "m3", "m4"]
    assert (emulator.stats.stored, emulator.stats.evicted) == (3, 2)
    assert emulator.received_count(PHONE, "m0") == 0  # the counts are bounded too
    assert emulator.received_count(PHONE, "m4") == 1


async def test_identical_sends_are_counted_per_phone_message_and_metadata() -> None:
    emulator = Emulator()
    async with in_process(emulator) as client:
        await send(client, metadata={"a": 1, "b": 2})
        await send(client, metadata={"b": 2, "a": 1})
        await send(client, metadata={"a": 1})
        await send(client)
    assert emulator.received_count(PHONE, SEND["message"], {"a": 1, "b": 2}) == 2
    assert emulator.received_count(PHONE, SEND["message"], {"a": 1}) == 1
    assert emulator.received_count(PHONE, SEND["message"]) == 1
    assert list(emulator.duplicates().values()) == [2]
    emulator.reset()
    assert emulator.messages() == []
    assert emulator.stats.requests == 0


# -- PUSH replies ----------------------------------------------------------------


class Receiver:
    """A real PUSH receiver on loopback: records every POST it gets."""

    def __init__(self) -> None:
        self.posts: list[tuple[dict[str, str], Any]] = []

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            return
        body = b""
        while True:
            message = await receive()
            body += message.get("body", b"")
            if not message.get("more_body"):
                break
        headers = {k.decode(): v.decode() for k, v in scope["headers"]}
        self.posts.append((headers, json.loads(body)))
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": b""})


@contextlib.asynccontextmanager
async def serving(app: Any) -> AsyncIterator[str]:
    import uvicorn

    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    server = uvicorn.Server(uvicorn.Config(app, lifespan="off", log_level="warning"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}/push"
    finally:
        server.should_exit = True
        await task


async def test_a_reply_on_demand_reaches_a_real_receiver_with_the_metadata_sent() -> None:
    receiver = Receiver()
    async with serving(receiver) as push_url:
        emulator = Emulator(push_url=push_url)
        metadata = {"myCustomerId": "123de32"}
        async with in_process(emulator) as client:
            message_id = (await send(client, metadata=metadata)).json()["messageId"]
        answered = datetime(2016, 6, 1, 12, 27, 19, tzinfo=timezone(timedelta(hours=2)))
        assert await emulator.reply(message_id, "YES", answered_at=answered) == 200
        await emulator.aclose()
    [(headers, body)] = receiver.posts
    assert headers["content-type"] == "application/json"
    assert "authorization" not in headers
    assert body["response"] == {"content": "YES", "answeredAt": "2016-06-01T12:27:19.000+0200"}
    assert body["message"]["messageId"] == message_id
    assert body["message"]["metadata"] == metadata
    assert body["message"]["phoneNumber"] == PHONE
    assert emulator.stats.pushes_sent == 1


async def test_automatic_replies_follow_reply_rate() -> None:
    receiver = Receiver()
    async with serving(receiver) as push_url:
        emulator = Emulator(push_url=push_url, reply_rate=1.0, reply_content="STOP")
        async with in_process(emulator) as client:
            for i in range(3):
                await send(client, message=f"m{i}", metadata={"i": i})
            await emulator.drain()
            emulator.reply_rate = 0.0
            await send(client, message="no reply")
            await emulator.drain()
        await emulator.aclose()
    replied = sorted(body["message"]["metadata"]["i"] for _, body in receiver.posts)
    assert replied == [0, 1, 2]
    assert {body["response"]["content"] for _, body in receiver.posts} == {"STOP"}
    assert all(DATE.fullmatch(body["response"]["answeredAt"]) for _, body in receiver.posts)
    assert emulator.stats.pushes_sent == 3


async def test_reply_errors_are_clear() -> None:
    emulator = Emulator()
    async with in_process(emulator) as client:
        message_id = (await send(client)).json()["messageId"]
    with pytest.raises(LookupError, match="nope"):
        await emulator.reply("nope", "hi")
    with pytest.raises(RuntimeError, match="push_url"):
        await emulator.reply(message_id, "hi")
    free = socket.socket()
    free.bind(("127.0.0.1", 0))
    emulator.push_url = f"http://127.0.0.1:{free.getsockname()[1]}/push"  # nobody listens
    free.close()
    with pytest.raises(httpx.ConnectError):
        await emulator.reply(message_id, "hi")
    await emulator.aclose()
    assert emulator.stats.pushes_failed == 1


# -- settings, lifespan, fixtures -----------------------------------------------


@pytest.mark.parametrize(
    "options",
    [
        {"windows": [(0, 1.0)]},
        {"windows": [(1, 0)]},
        {"windows": [(1.5, 1.0)]},
        {"windows": [5]},
        {"error_rate": 1.5},
        {"drop_rate": -0.1},
        {"latency": (2.0, 1.0)},
        {"error_statuses": (404,)},
        {"users": {}},
        {"max_stored": 0},
    ],
)
def test_bad_settings_are_rejected(options: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        Emulator(**options)


async def test_asgi_lifespan_is_answered() -> None:
    messages = asyncio.Queue[dict[str, Any]]()
    for kind in ("lifespan.startup", "lifespan.shutdown"):
        messages.put_nowait({"type": kind})
    sent: list[str] = []

    async def send_(message: Any) -> None:
        sent.append(message["type"])

    await Emulator()({"type": "lifespan"}, messages.get, send_)
    assert sent == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_repr_names_no_password() -> None:
    assert "s3cret" not in repr(Emulator(users={"acme": "s3cret"}))


async def test_the_client_fixture_sends_to_the_emulator_fixture(
    vortext_client: Any,  # noqa: F811
    vortext_emulator: Emulator,  # noqa: F811
) -> None:
    sent = await vortext_client.send_sms(PHONE, "Your code is 1234", metadata={"k": "v"})
    assert vortext_emulator.received_count(PHONE, "Your code is 1234", {"k": "v"}) == 1
    detail = await vortext_client.get_sms(sent.message_id)
    assert detail.metadata == {"k": "v"}
    assert detail.message_id == sent.message_id


async def test_emulator_client_uses_the_client_s_own_checks_against_the_emulator() -> None:
    emulator = Emulator(users={"u": "p"}, windows=[(1, 60.0)])
    async with emulator_client(
        emulator, username="u", password="p", http_library="httpx"
    ) as client:
        assert (await client.status()).status == "UP"
        await client.send_sms(PHONE, "one")
    assert emulator.stats.accepted == 1
    assert datetime.now(UTC) >= emulator.messages()[0].created_at


def test_the_emulator_shares_no_code_with_the_client() -> None:
    """An independent reading of the wire format: stdlib, h11, httpx, uvicorn only."""
    import ast
    from pathlib import Path

    import vortext_async._emulator as package

    allowed = set(sys.stdlib_module_names) | {"h11", "httpx", "uvicorn"}
    sources = [*Path(package.__file__).parent.glob("*.py")]
    sources.append(Path(package.__file__).parent.parent / "emulator.py")
    for source in sources:
        for node in ast.walk(ast.parse(source.read_text())):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:  # relative: within the emulator package only
                    if source.name == "emulator.py":
                        assert node.module == "_emulator", f"emulator.py imports {node.module}"
                    else:
                        assert node.level == 1, f"{source.name} imports from outside"
                    continue
                names = [node.module or ""]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{source.name} imports {name}"
