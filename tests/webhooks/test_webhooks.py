"""The PUSH receiver: parse_push, every status of PushReceiver, dedupe, and a real server."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable
from typing import Any

import fastapi
import httpx
import pytest
import uvicorn

from vortext_async import _errors
from vortext_async.webhooks import (
    InvalidPushError,
    PushReceiver,
    PushResponse,
    new_path_token,
    parse_push,
)

JSON = {"Content-Type": "application/json"}
TOKEN = "s3cret-token-0123456789abcdef"


class FakeClock:
    """Time moves only when the test says so."""

    def __init__(self) -> None:
        self.now = 1_000_000_000_000

    def now_ns(self) -> int:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)

    def advance(self, seconds: float) -> None:
        self.now += round(seconds * 1e9)


def push_body(
    *,
    content: str = "Yes, call me at 5",
    answered_at: str = "2020-02-12T13:00:00.000+0000",
    message_id: str = "msg-1",
    **extra: Any,
) -> dict[str, Any]:
    return {
        "response": {"content": content, "answeredAt": answered_at},
        "message": {
            "messageId": message_id,
            "phoneNumber": "+3361127272727",
            "message": "Please call me",
            "metadata": {"myCustomerId": "123de32", "caller": "MyApp 2.2"},
        },
        **extra,
    }


def encode(body: Any) -> bytes:
    return json.dumps(body).encode()


class Recorder:
    """An async handler that records every push it is given."""

    def __init__(self) -> None:
        self.pushes: list[PushResponse] = []

    async def __call__(self, push: PushResponse) -> None:
        self.pushes.append(push)


def client_for(
    app: Any, *, peer: tuple[str, int] = ("127.0.0.1", 40000), root_path: str = ""
) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=peer, root_path=root_path)
    return httpx.AsyncClient(transport=transport, base_url="http://receiver")


async def post(receiver: PushReceiver, body: Any, path: str = "/", **kwargs: Any) -> httpx.Response:
    async with client_for(receiver, **kwargs) as client:
        content = body if isinstance(body, bytes) else encode(body)
        return await client.post(path, content=content, headers=JSON)


# -- parse_push ---------------------------------------------------------------------


def test_parse_push_reads_the_documented_body_and_keeps_unknown_fields() -> None:
    body = push_body(deliveryId="d-9")
    body["response"]["channel"] = "sms"
    body["message"]["status"] = "SENT"
    push = parse_push(encode(body))
    assert push.response.content == "Yes, call me at 5"
    assert push.response.answered_at == dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)
    assert push.message.message_id == "msg-1"
    assert push.message.phone_number == "+3361127272727"
    assert push.message.metadata == {"myCustomerId": "123de32", "caller": "MyApp 2.2"}
    assert push.extra == {"deliveryId": "d-9"}
    assert push.response.extra == {"channel": "sms"}
    assert push.message.extra == {"status": "SENT"}
    assert parse_push(json.dumps(body)) == push  # str works as bytes do


@pytest.mark.parametrize(
    "answered_at",
    ["2020-02-12T15:00:00.000+0200", "2020-02-12T13:00:00Z", "2020-02-12T15:00:00+02:00"],
)
def test_parse_push_accepts_every_date_form(answered_at: str) -> None:
    push = parse_push(encode(push_body(answered_at=answered_at)))
    assert push.response.answered_at == dt.datetime(2020, 2, 12, 13, tzinfo=dt.UTC)
    assert push.response.answered_at.utcoffset() is not None


def _without(path: tuple[str, ...]) -> bytes:
    body = push_body()
    target = body
    for key in path[:-1]:
        target = target[key]
    del target[path[-1]]
    return encode(body)


def _with(path: tuple[str, ...], value: Any) -> bytes:
    body = push_body()
    target = body
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value
    return encode(body)


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"", "the body is not JSON (Expecting value"),
        (b"{'response': 1}", "the body is not JSON"),
        (b"\xff\xfe\xfa", "the body is not JSON"),
        (b"[" * 100_000, "the body is not JSON"),
        (b"[1, 2]", "the body is a JSON array, not an object"),
        (b'"hi"', "the body is a JSON string, not an object"),
        (b"null", "the body is a JSON null, not an object"),
        (_without(("response",)), "required field missing @ $.response"),
        (_without(("response", "content")), "required field missing @ $.response.content"),
        (
            _without(("response", "answeredAt")),
            "required field missing @ $.response.answeredAt",
        ),
        (_with(("response", "content"), 3), "expected a string, got int 3 @ $.response.content"),
        (
            _with(("response", "answeredAt"), "yesterday"),
            "'yesterday' is not a date of the form 2016-06-01T12:27:19.000+0200"
            " @ $.response.answeredAt",
        ),
        (
            _with(("response", "answeredAt"), "2020-02-12T13:00:00"),
            "'2020-02-12T13:00:00' is not a date",
        ),
        (_with(("message", "metadata"), [1]), "got list [1] @ $.message.metadata"),
        (_with(("message",), "msg-1"), "@ $.message"),
    ],
)
def test_parse_push_names_what_is_wrong(body: bytes, reason: str) -> None:
    with pytest.raises(InvalidPushError) as caught:
        parse_push(body)
    assert reason in caught.value.reason
    assert reason in str(caught.value)
    assert isinstance(caught.value, _errors.VortextError)
    assert isinstance(caught.value, ValueError)
    # The error never quotes the reply someone wrote.
    assert "call me at 5" not in str(caught.value)


def test_a_long_reason_is_shortened_but_keeps_the_field() -> None:
    with pytest.raises(InvalidPushError) as caught:
        parse_push(_with(("message", "metadata"), list(range(10_000))))
    assert len(caught.value.reason) < 400
    assert caught.value.reason.endswith("@ $.message.metadata")


# -- success, handlers --------------------------------------------------------------


async def test_a_valid_push_reaches_an_async_handler_and_is_answered_200() -> None:
    recorder = Recorder()
    response = await post(PushReceiver(recorder), push_body())
    assert response.status_code == 200
    assert response.json() == {"status": "handled"}
    assert recorder.pushes == [parse_push(encode(push_body()))]


async def test_the_answer_waits_until_the_handler_finished() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    finished: list[str] = []

    async def handler(push: PushResponse) -> None:
        entered.set()
        await release.wait()
        finished.append(push.message.message_id)

    async with client_for(PushReceiver(handler)) as client:
        request = asyncio.create_task(client.post("/", content=encode(push_body()), headers=JSON))
        await entered.wait()
        await asyncio.sleep(0)
        assert not request.done()
        release.set()
        response = await request
    assert response.status_code == 200
    assert finished == ["msg-1"]


async def test_a_sync_handler_runs_off_the_event_loop() -> None:
    entered, release = threading.Event(), threading.Event()
    threads: list[int] = []

    def handler(push: PushResponse) -> None:
        threads.append(threading.get_ident())
        entered.set()
        # Were this on the event loop, the loop could not run the line that sets it.
        assert release.wait(timeout=30)

    async with client_for(PushReceiver(handler)) as client:
        request = asyncio.create_task(client.post("/", content=encode(push_body()), headers=JSON))
        assert await asyncio.to_thread(entered.wait, 30)
        assert not request.done()
        release.set()
        response = await request
    assert response.status_code == 200
    assert threads != [threading.get_ident()]


async def test_an_object_with_async_call_is_awaited() -> None:
    recorder = Recorder()
    response = await post(PushReceiver(recorder), push_body())
    assert response.status_code == 200
    assert len(recorder.pushes) == 1


# -- 400, 413, 415, 405, 404, 403 ---------------------------------------------------


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (_without(("response", "answeredAt")), "required field missing @ $.response.answeredAt"),
        (_with(("response", "content"), None), "@ $.response.content"),
    ],
)
async def test_a_bad_body_is_400_with_a_short_reason(body: bytes, reason: str) -> None:
    recorder = Recorder()
    response = await post(PushReceiver(recorder), body)
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_push"
    assert reason in response.json()["reason"]
    assert recorder.pushes == []


async def test_an_invalid_content_length_is_400() -> None:
    async with client_for(PushReceiver(Recorder())) as client:
        response = await client.post("/", content=b"{}", headers={**JSON, "Content-Length": "2, 3"})
    assert response.status_code == 400
    assert response.json()["reason"] == "the Content-Length header is invalid"


class CountingBody:
    """A request body that counts how many bytes the receiver pulled from it."""

    def __init__(self, *, chunk: bytes, chunks: int) -> None:
        self.chunk = chunk
        self.chunks = chunks
        self.pulled = 0

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for _ in range(self.chunks):
            self.pulled += len(self.chunk)
            yield self.chunk


async def test_a_declared_length_over_the_limit_is_413_before_reading_any_of_it() -> None:
    recorder = Recorder()
    body = CountingBody(chunk=b" " * 1024, chunks=1024)
    async with client_for(PushReceiver(recorder, max_body_size=4096)) as client:
        response = await client.post(
            "/", content=body, headers={**JSON, "Content-Length": str(1024 * 1024)}
        )
    assert response.status_code == 413
    assert response.json() == {
        "error": "body_too_large",
        "reason": "the body is larger than 4096 bytes",
    }
    assert response.headers["connection"] == "close"
    assert body.pulled == 0
    assert recorder.pushes == []


async def test_a_chunked_body_growing_past_the_limit_is_413_and_the_rest_is_not_read() -> None:
    recorder = Recorder()
    body = CountingBody(chunk=b" " * 1000, chunks=10_000)  # 10 MB offered
    async with client_for(PushReceiver(recorder, max_body_size=4096)) as client:
        request = client.build_request("POST", "/", content=body, headers=JSON)
        assert "content-length" not in request.headers
        assert request.headers["transfer-encoding"] == "chunked"
        response = await client.send(request)
    assert response.status_code == 413
    # It stopped at the first chunk past 4096 bytes: 5 of the 10,000 chunks.
    assert body.pulled == 5000
    assert recorder.pushes == []


async def test_a_body_of_exactly_the_limit_is_accepted_and_one_byte_more_is_not() -> None:
    recorder = Recorder()
    raw = encode(push_body())
    receiver = PushReceiver(recorder, max_body_size=len(raw) + 10, dedupe_window=0)
    assert (await post(receiver, raw + b" " * 10)).status_code == 200
    assert (await post(receiver, raw + b" " * 11)).status_code == 413
    async with client_for(receiver) as client:
        chunked = CountingBody(chunk=raw + b" " * 11, chunks=1)
        assert (await client.post("/", content=chunked, headers=JSON)).status_code == 413
    assert len(recorder.pushes) == 1


@pytest.mark.parametrize("content_type", [None, "text/plain", "application/x-www-form-urlencoded"])
async def test_a_non_json_content_type_is_415(content_type: str | None) -> None:
    recorder = Recorder()
    headers = {"Content-Type": content_type} if content_type else {}
    async with client_for(PushReceiver(recorder)) as client:
        response = await client.post("/", content=encode(push_body()), headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"
    assert recorder.pushes == []


@pytest.mark.parametrize(
    "content_type", ["application/json; charset=utf-8", "APPLICATION/JSON", "application/x+json"]
)
async def test_json_content_types_are_accepted(content_type: str) -> None:
    recorder = Recorder()
    async with client_for(PushReceiver(recorder)) as client:
        response = await client.post(
            "/", content=encode(push_body()), headers={"Content-Type": content_type}
        )
    assert response.status_code == 200
    assert len(recorder.pushes) == 1


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"])
async def test_other_methods_are_405_with_allow(method: str) -> None:
    async with client_for(PushReceiver(Recorder())) as client:
        response = await client.request(method, "/")
    assert response.status_code == 405
    assert response.headers["allow"] == "POST"
    if method != "HEAD":
        assert response.json()["error"] == "method_not_allowed"
    else:
        assert response.content == b""


@pytest.mark.parametrize(
    ("path", "status"),
    [
        (f"/{TOKEN}", 200),
        (f"/{TOKEN}/", 200),
        ("/", 404),
        (f"/{TOKEN}x", 404),
        (f"/{TOKEN[:-1]}", 404),
        (f"/x/{TOKEN}", 404),
        ("/%C3%A9t%C3%A9", 404),
    ],
)
async def test_the_path_token_must_match(path: str, status: int) -> None:
    recorder = Recorder()
    response = await post(PushReceiver(recorder, path_token=TOKEN), push_body(), path)
    assert response.status_code == status
    assert len(recorder.pushes) == (1 if status == 200 else 0)
    if status == 404:
        assert TOKEN not in response.text


async def test_the_token_is_checked_below_the_mount_point() -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, path_token=TOKEN)
    ok = await post(receiver, push_body(), f"/hooks/{TOKEN}", root_path="/hooks")
    wrong = await post(receiver, push_body(), f"/hooks/{TOKEN}-no", root_path="/hooks")
    assert (ok.status_code, wrong.status_code) == (200, 404)


async def test_without_a_token_only_the_mount_point_is_served() -> None:
    receiver = PushReceiver(Recorder(), dedupe_window=0)
    assert (await post(receiver, push_body(), "/")).status_code == 200
    assert (await post(receiver, push_body(), "/hooks", root_path="/hooks")).status_code == 200
    assert (await post(receiver, push_body(), "/other")).status_code == 404


@pytest.mark.parametrize(
    ("peer", "forwarded", "trusted", "status"),
    [
        ("10.1.2.3", None, (), 200),
        ("::ffff:10.1.2.3", None, (), 200),
        ("192.0.2.7", None, (), 403),
        # X-Forwarded-For is ignored unless the peer is a trusted proxy.
        ("192.0.2.7", "10.1.2.3", (), 403),
        ("10.1.2.3", "192.0.2.7", (), 200),
        ("192.0.2.7", "10.1.2.3", ("192.0.2.0/28",), 200),
        ("192.0.2.7", "198.51.100.1", ("192.0.2.0/28",), 403),
        # A client cannot hide behind a forged first hop: the last untrusted hop counts.
        ("192.0.2.7", "10.1.2.3, 198.51.100.1", ("192.0.2.0/28",), 403),
        ("192.0.2.7", "198.51.100.1, 10.1.2.3", ("192.0.2.0/28",), 200),
        # Two proxies in a row, both trusted.
        ("192.0.2.7", "10.1.2.3:5555, 192.0.2.8", ("192.0.2.0/28",), 200),
        ("192.0.2.7", "not-an-address", ("192.0.2.0/28",), 403),
        ("192.0.2.7", None, ("192.0.2.0/28",), 403),
    ],
)
async def test_allowed_networks_and_trusted_proxies(
    peer: str, forwarded: str | None, trusted: tuple[str, ...], status: int
) -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, allowed_networks=["10.0.0.0/8"], trusted_proxies=trusted)
    headers = {**JSON, "X-Forwarded-For": forwarded} if forwarded else JSON
    async with client_for(receiver, peer=(peer, 1234)) as client:
        response = await client.post("/", content=encode(push_body()), headers=headers)
    assert response.status_code == status
    assert len(recorder.pushes) == (1 if status == 200 else 0)


async def test_a_forbidden_source_learns_nothing_about_the_path() -> None:
    receiver = PushReceiver(Recorder(), path_token=TOKEN, allowed_networks=["10.0.0.0/8"])
    response = await post(receiver, push_body(), "/wrong", peer=("192.0.2.7", 1))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"


# -- 500 and retries ----------------------------------------------------------------


async def test_a_failing_handler_is_500_logged_without_content_and_a_retry_is_handled(
    caplog: pytest.LogCaptureFixture,
) -> None:
    calls: list[PushResponse] = []

    def handler(push: PushResponse) -> None:
        calls.append(push)
        if len(calls) == 1:
            raise RuntimeError("database down")

    receiver = PushReceiver(handler)
    with caplog.at_level(logging.ERROR, logger="vortext_async.webhooks"):
        first = await post(receiver, push_body(answered_at="2020-02-12T15:00:00+02:00"))
    assert first.status_code == 500
    assert first.json()["error"] == "handler_failed"
    [record] = [r for r in caplog.records if r.name == "vortext_async.webhooks"]
    assert record.levelno == logging.ERROR
    text = record.getMessage()
    assert "'msg-1'" in text
    assert "2020-02-12T15:00:00.000+0200" in text
    assert "call me" not in text
    assert record.exc_info is not None
    assert "database down" in str(record.exc_info[1])

    retry = await post(receiver, push_body(answered_at="2020-02-12T15:00:00+02:00"))
    assert retry.status_code == 200
    assert retry.json() == {"status": "handled"}
    assert len(calls) == 2


# -- duplicates ---------------------------------------------------------------------


async def test_an_identical_push_is_acknowledged_but_handled_once() -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, clock=FakeClock())
    first = await post(receiver, push_body())
    again = await post(receiver, push_body(answered_at="2020-02-12T14:00:00+01:00"))
    assert (first.status_code, first.json()) == (200, {"status": "handled"})
    assert (again.status_code, again.json()) == (200, {"status": "duplicate"})
    assert len(recorder.pushes) == 1


@pytest.mark.parametrize(
    "change",
    [
        {"content": "No"},
        {"message_id": "msg-2"},
        {"answered_at": "2020-02-12T13:00:00.001+0000"},
    ],
)
async def test_a_push_differing_in_any_identifying_field_is_handled(change: dict[str, str]) -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, clock=FakeClock())
    await post(receiver, push_body())
    response = await post(receiver, push_body(**change))
    assert response.json() == {"status": "handled"}
    assert len(recorder.pushes) == 2


async def test_duplicates_are_remembered_for_the_window_only() -> None:
    recorder = Recorder()
    clock = FakeClock()
    receiver = PushReceiver(recorder, dedupe_window=300, clock=clock)
    await post(receiver, push_body())
    clock.advance(299.999)
    assert (await post(receiver, push_body())).json() == {"status": "duplicate"}
    clock.advance(0.001)
    assert (await post(receiver, push_body())).json() == {"status": "handled"}
    assert len(recorder.pushes) == 2


async def test_the_seen_set_is_bounded_and_forgets_the_oldest_first() -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, dedupe_max_entries=2, clock=FakeClock())
    for message_id in ("a", "b", "c"):
        await post(receiver, push_body(message_id=message_id))
    assert (await post(receiver, push_body(message_id="c"))).json()["status"] == "duplicate"
    assert (await post(receiver, push_body(message_id="b"))).json()["status"] == "duplicate"
    assert (await post(receiver, push_body(message_id="a"))).json()["status"] == "handled"
    assert [p.message.message_id for p in recorder.pushes] == ["a", "b", "c", "a"]


async def test_dedupe_window_zero_hands_every_push_over() -> None:
    recorder = Recorder()
    receiver = PushReceiver(recorder, dedupe_window=0)
    for _ in range(3):
        assert (await post(receiver, push_body())).json() == {"status": "handled"}
    assert len(recorder.pushes) == 3


async def test_a_duplicate_arriving_during_handling_waits_and_is_not_handled_again() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[PushResponse] = []

    async def handler(push: PushResponse) -> None:
        calls.append(push)
        entered.set()
        await release.wait()

    async with client_for(PushReceiver(handler, clock=FakeClock())) as client:
        send: Callable[[], Any] = lambda: client.post(  # noqa: E731
            "/", content=encode(push_body()), headers=JSON
        )
        first = asyncio.create_task(send())
        await entered.wait()
        second = asyncio.create_task(send())
        for _ in range(10):
            await asyncio.sleep(0)
        assert not second.done()
        release.set()
        answers = sorted([(await first).json()["status"], (await second).json()["status"]])
    assert answers == ["duplicate", "handled"]
    assert len(calls) == 1


async def test_a_duplicate_waiting_on_a_failed_push_handles_it_itself() -> None:
    entered, release = asyncio.Event(), asyncio.Event()
    calls: list[PushResponse] = []

    async def handler(push: PushResponse) -> None:
        calls.append(push)
        if len(calls) == 1:
            entered.set()
            await release.wait()
            raise RuntimeError("first attempt fails")

    async with client_for(PushReceiver(handler, clock=FakeClock())) as client:
        first = asyncio.create_task(client.post("/", content=encode(push_body()), headers=JSON))
        await entered.wait()
        second = asyncio.create_task(client.post("/", content=encode(push_body()), headers=JSON))
        release.set()
        assert (await first).status_code == 500
        assert (await second).json() == {"status": "handled"}
    assert len(calls) == 2


# -- ASGI protocol ------------------------------------------------------------------


async def _drive(receiver: PushReceiver, scope: dict[str, Any], messages: list[Any]) -> list[Any]:
    inbox: asyncio.Queue[Any] = asyncio.Queue()
    for message in messages:
        inbox.put_nowait(message)
    sent: list[Any] = []

    async def send(message: Any) -> None:
        sent.append(message)

    await receiver(scope, inbox.get, send)
    return sent


async def test_lifespan_is_acknowledged_so_it_can_be_served_alone() -> None:
    sent = await _drive(
        PushReceiver(Recorder()),
        {"type": "lifespan", "asgi": {"version": "3.0"}},
        [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}],
    )
    assert sent == [{"type": "lifespan.startup.complete"}, {"type": "lifespan.shutdown.complete"}]


async def test_a_websocket_is_closed() -> None:
    sent = await _drive(
        PushReceiver(Recorder()),
        {"type": "websocket", "path": "/"},
        [{"type": "websocket.connect"}],
    )
    assert sent == [{"type": "websocket.close", "code": 1008}]


async def test_a_client_that_disconnects_mid_body_gets_nothing_and_nothing_is_handled() -> None:
    recorder = Recorder()
    scope = {
        "type": "http",
        "method": "POST",
        "path": "/",
        "headers": [(b"content-type", b"application/json")],
        "client": ("127.0.0.1", 1),
    }
    sent = await _drive(
        PushReceiver(recorder),
        scope,
        [
            {"type": "http.request", "body": encode(push_body())[:10], "more_body": True},
            {"type": "http.disconnect"},
        ],
    )
    assert sent == []
    assert recorder.pushes == []


# -- configuration ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"path_token": "short"}, "path_token must be at least 16 URL-safe characters"),
        ({"path_token": "a" * 20 + "/x"}, "path_token must be at least 16 URL-safe characters"),
        ({"allowed_networks": []}, "allowed_networks is empty"),
        ({"allowed_networks": "10.0.0.0/8"}, "must be a list of networks"),
        ({"allowed_networks": ["10.0.0.1/8"]}, "allowed_networks: '10.0.0.1/8' is not a network"),
        ({"trusted_proxies": ["proxy.local"]}, "trusted_proxies: 'proxy.local' is not a network"),
        ({"max_body_size": 0}, "max_body_size must be positive"),
        ({"dedupe_window": -1}, "dedupe_window must be a finite number"),
        ({"dedupe_window": float("inf")}, "dedupe_window must be a finite number"),
        ({"dedupe_max_entries": 0}, "dedupe_max_entries must be positive"),
    ],
)
def test_bad_settings_are_configuration_errors(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(_errors.ConfigurationError, match=message) as caught:
        PushReceiver(Recorder(), **kwargs)
    assert "a" * 20 not in str(caught.value)


def test_the_token_never_shows_in_the_repr() -> None:
    token = new_path_token()
    assert len(token) >= 40
    assert token != new_path_token()
    receiver = PushReceiver(Recorder(), path_token=token)
    assert token not in repr(receiver)
    assert "path_token='***'" in repr(receiver)


# -- a real FastAPI app on a real uvicorn server ------------------------------------


async def test_a_fastapi_app_served_by_uvicorn_receives_real_posts() -> None:
    recorder = Recorder()
    app = fastapi.FastAPI()
    app.mount(
        "/vortext/push",
        PushReceiver(recorder, path_token=TOKEN, allowed_networks=["127.0.0.0/8"]),
    )

    @app.get("/health")
    async def health() -> dict[str, str]:
        return {"status": "ok"}

    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="on")
    server = uvicorn.Server(config)
    serving = asyncio.create_task(server.serve())
    try:
        while not server.started:
            assert not serving.done(), "uvicorn did not start"
            await asyncio.sleep(0.01)
        port = server.servers[0].sockets[0].getsockname()[1]
        url = f"http://127.0.0.1:{port}/vortext/push/{TOKEN}"
        async with httpx.AsyncClient(trust_env=False) as client:
            handled = await client.post(url, content=encode(push_body()), headers=JSON)
            duplicate = await client.post(url, content=encode(push_body()), headers=JSON)
            bad = await client.post(url, content=b"{", headers=JSON)
            wrong_token = await client.post(url + "x", content=encode(push_body()), headers=JSON)
            get = await client.get(url)
            health_answer = await client.get(f"http://127.0.0.1:{port}/health")
    finally:
        server.should_exit = True
        await serving

    assert (handled.status_code, handled.json()) == (200, {"status": "handled"})
    assert (duplicate.status_code, duplicate.json()) == (200, {"status": "duplicate"})
    assert bad.status_code == 400
    assert wrong_token.status_code == 404
    assert (get.status_code, get.headers["allow"]) == (405, "POST")
    assert health_answer.json() == {"status": "ok"}
    [push] = recorder.pushes
    assert push.message.metadata == {"myCustomerId": "123de32", "caller": "MyApp 2.2"}
    assert push.response.content == "Yes, call me at 5"


@pytest.mark.parametrize(
    "answered_at", ["0001-01-01T00:00:00.000+0100", "9999-12-31T23:59:59.999-0100"]
)
async def test_dates_at_the_ends_of_the_calendar_are_handled_and_deduplicated(
    answered_at: str,
) -> None:
    # Converting these to UTC would overflow; the receiver must not answer 500.
    recorder = Recorder()
    receiver = PushReceiver(recorder, clock=FakeClock())
    first = await post(receiver, push_body(answered_at=answered_at))
    again = await post(receiver, push_body(answered_at=answered_at))
    assert (first.json(), again.json()) == ({"status": "handled"}, {"status": "duplicate"})
    assert len(recorder.pushes) == 1
