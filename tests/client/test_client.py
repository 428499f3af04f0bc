"""The core client: configuration, request shapes, answers, errors, redaction.

Shapes are checked through the active library's own MockTransport (so the same tests
run under httpx and httpx2), with respx for httpx users, and the same calls run
against the emulator served on a real loopback socket in test_client_live.py.
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import logging
from collections.abc import Callable
from types import ModuleType
from typing import Any

import pytest

from vortext_async import (
    DATACENTER_BASE_URL,
    INTERNET_BASE_URL,
    AuthenticationError,
    BadRequestError,
    ClientClosedError,
    ConfigurationError,
    InvalidRequestError,
    InvalidResponseError,
    NotFoundError,
    Outcome,
    RateLimit,
    RateLimitedError,
    RetryPolicy,
    SendResult,
    SentSms,
    ServerError,
    ServiceStatus,
    UncertainSendError,
    UnexpectedStatusError,
    VortextClient,
    VortextError,
)

USER, PASSWORD = "acme", "s3cr3t-Pa55"
TOKEN = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
NO_RETRY = RetryPolicy.no_retries()

Handler = Callable[[Any], Any]


@pytest.fixture
def make_client(
    mock_transport: Callable[[Handler], Any], http_library: str
) -> Callable[..., VortextClient]:
    def make(handler: Handler, **options: Any) -> VortextClient:
        options.setdefault("retry", NO_RETRY)
        return VortextClient(
            USER,
            PASSWORD,
            base_url="https://api.test",
            transport=mock_transport(handler),
            http_library=http_library,  # type: ignore[arg-type]
            **options,
        )

    return make


def answer(httplib: ModuleType, status: int = 200, body: Any = None, **kw: Any) -> Handler:
    """A handler that records requests and answers ``status`` with JSON ``body``."""
    seen: list[Any] = []

    def handle(request: Any) -> Any:
        request.read()
        seen.append(request)
        if isinstance(body, (bytes, str)):
            return httplib.Response(status, content=body, **kw)
        return httplib.Response(status, json=body, **kw)

    handle.seen = seen  # type: ignore[attr-defined]
    return handle


# -- configuration -------------------------------------------------------------------


def test_documented_base_urls_are_named_constants() -> None:
    assert INTERNET_BASE_URL == "https://messages.cloud.cegedim.com"
    assert DATACENTER_BASE_URL == "https://vortext.cloud.cegedim.com"


async def test_default_base_url_is_the_internet_one(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("VORTEXT_BASE_URL", raising=False)
    async with VortextClient(USER, PASSWORD) as client:
        assert client.base_url == INTERNET_BASE_URL


async def test_credentials_and_base_url_come_from_the_environment(
    monkeypatch: pytest.MonkeyPatch, httplib: ModuleType, http_library: Any
) -> None:
    monkeypatch.setenv("VORTEXT_USERNAME", USER)
    monkeypatch.setenv("VORTEXT_PASSWORD", PASSWORD)
    monkeypatch.setenv("VORTEXT_BASE_URL", DATACENTER_BASE_URL + "/")
    handler = answer(httplib, body={"status": "UP"})
    transport = httplib.MockTransport(handler)
    async with VortextClient(
        transport=transport, retry=NO_RETRY, http_library=http_library
    ) as client:
        assert client.base_url == DATACENTER_BASE_URL
        await client.status()
    assert handler.seen[0].headers["authorization"] == f"Basic {TOKEN}"
    assert str(handler.seen[0].url) == DATACENTER_BASE_URL + "/status"


@pytest.mark.parametrize(
    ("user", "password", "missing"), [(None, "pw", "username"), ("u", None, "password")]
)
def test_a_missing_credential_fails_at_construction(
    monkeypatch: pytest.MonkeyPatch, user: str | None, password: str | None, missing: str
) -> None:
    monkeypatch.delenv("VORTEXT_USERNAME", raising=False)
    monkeypatch.delenv("VORTEXT_PASSWORD", raising=False)
    with pytest.raises(ConfigurationError, match=f"no {missing}.*VORTEXT_{missing.upper()}"):
        VortextClient(user, password)


@pytest.mark.parametrize(
    "url",
    ["ftp://x", "messages.cloud.cegedim.com", "https://u:p@host", "https://h/?a=1", "https://h/#f"],
)
def test_a_bad_base_url_is_refused(url: str) -> None:
    with pytest.raises(ConfigurationError, match="base_url"):
        VortextClient(USER, PASSWORD, base_url=url)


# -- request shapes ----------------------------------------------------------------


async def test_send_posts_the_documented_json_with_every_header(
    httplib: ModuleType, make_client: Any, http_library: str
) -> None:
    handler = answer(httplib, body={"messageId": "m-1", "queued": True})
    async with make_client(handler) as client:
        sent = await client.send_sms(
            "+3361127272727",
            "Please call me",
            metadata={"myCustomerId": "123de32", "caller": "MyApp 2.2"},
        )
    assert sent == SentSms("m-1", extra={"queued": True})
    assert sent.extra == {"queued": True}
    (request,) = handler.seen
    assert request.method == "POST"
    assert str(request.url) == "https://api.test/sms"
    assert json.loads(request.content) == {
        "phoneNumber": "+3361127272727",
        "message": "Please call me",
        "metadata": {"myCustomerId": "123de32", "caller": "MyApp 2.2"},
    }
    assert request.headers["authorization"] == f"Basic {TOKEN}"
    assert request.headers["content-type"] == "application/json"
    assert request.headers["accept"] == "application/json"
    user_agent = request.headers["user-agent"]
    assert user_agent.startswith("vortext-async/")
    assert f"({http_library}/" in user_agent
    assert "Python/" in user_agent


async def test_get_sms_fetches_the_detail_with_its_metadata(
    httplib: ModuleType, make_client: Any
) -> None:
    detail = {
        "messageId": "a/b c",
        "phoneNumber": "+33611272727",
        "message": "Please call me",
        "metadata": {"myCustomerId": "123de32"},
        "sentAt": "2016-06-01T12:27:19.000+0200",
    }
    handler = answer(httplib, body=detail)
    async with make_client(handler) as client:
        got = await client.get_sms("a/b c")
    assert got.metadata == {"myCustomerId": "123de32"}
    assert got.extra == {"sentAt": "2016-06-01T12:27:19.000+0200"}
    (request,) = handler.seen
    assert request.method == "GET"
    assert request.url.raw_path == b"/sms/a%2Fb%20c"
    assert "content-type" not in request.headers
    assert request.headers["authorization"] == f"Basic {TOKEN}"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        ({"status": "UP", "version": "2"}, ServiceStatus(status="UP", extra={"version": "2"})),
        ("", ServiceStatus()),
        ('"OK"', ServiceStatus(status="OK")),
    ],
)
async def test_status(
    httplib: ModuleType, make_client: Any, body: Any, expected: ServiceStatus
) -> None:
    async with make_client(answer(httplib, body=body)) as client:
        assert await client.status() == expected


# -- errors by class -----------------------------------------------------------------


@pytest.mark.parametrize(
    ("status", "error_class"),
    [
        (400, BadRequestError),
        (422, BadRequestError),
        (401, AuthenticationError),
        (403, AuthenticationError),
        (404, NotFoundError),
        (429, RateLimitedError),
        (500, ServerError),
        (503, ServerError),
        (418, UnexpectedStatusError),
        (302, UnexpectedStatusError),
    ],
)
async def test_each_status_raises_its_class_with_status_headers_and_body(
    httplib: ModuleType, make_client: Any, status: int, error_class: type[VortextError]
) -> None:
    body = b'{"error": "nope", "code": 17}'
    handler = answer(httplib, status, body, headers={"X-Request-Id": "r-1", "Retry-After": "7"})
    async with make_client(handler) as client:
        with pytest.raises(error_class) as caught:
            await client.get_sms("m-1")
    error = caught.value
    assert error.status_code == status  # type: ignore[attr-defined]
    assert error.headers["x-request-id"] == "r-1"  # type: ignore[attr-defined]
    assert error.body == body  # type: ignore[attr-defined]
    assert error.json() == {"error": "nope", "code": 17}  # type: ignore[attr-defined]
    assert str(status) in str(error)
    assert "nope" in str(error)


async def test_rate_limited_error_carries_retry_after(
    httplib: ModuleType, make_client: Any
) -> None:
    handler = answer(httplib, 429, b"slow down", headers={"Retry-After": "12"})
    async with make_client(handler) as client:
        with pytest.raises(RateLimitedError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert caught.value.retry_after == 12.0
    assert caught.value.certainly_not_sent


async def test_a_refused_send_is_certainly_not_sent(httplib: ModuleType, make_client: Any) -> None:
    async with make_client(answer(httplib, 400, {"reason": "bad number"})) as client:
        with pytest.raises(BadRequestError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert caught.value.certainly_not_sent


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_a_server_error_to_a_send_is_uncertain(
    httplib: ModuleType, make_client: Any, status: int
) -> None:
    async with make_client(answer(httplib, status, b"oops")) as client:
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, ServerError)
    assert caught.value.cause.status_code == status
    assert caught.value.sms.phone_number == "+33611272727"  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"<html>hi</html>", "not JSON"),
        (b'{"id": "x"}', "messageId"),
        (b'{"messageId": ""}', "empty messageId"),
        (b'{"messageId": 7}', "messageId"),
    ],
)
async def test_a_send_answer_without_a_message_id_is_an_uncertain_send(
    httplib: ModuleType, make_client: Any, body: bytes, reason: str
) -> None:
    async with make_client(answer(httplib, 200, body)) as client:
        with pytest.raises(UncertainSendError) as caught:
            await client.send_sms("+33611272727", "hi")
    assert isinstance(caught.value.cause, InvalidResponseError)
    assert reason in str(caught.value.cause)
    assert caught.value.cause.body == body


async def test_a_read_answer_of_the_wrong_shape_names_the_field(
    httplib: ModuleType, make_client: Any
) -> None:
    async with make_client(answer(httplib, 200, {"messageId": "m", "phoneNumber": 33})) as client:
        with pytest.raises(InvalidResponseError) as caught:
            await client.get_sms("m")
    assert "$.phoneNumber" in str(caught.value)
    assert "$.message" not in str(caught.value)  # missing is fine: the shape is assumed


# -- input checks --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"phone_number": "0611272727"}, "phone_number"),
        ({"phone_number": "+33 6 11 27 27 27"}, "phone_number"),
        ({"phone_number": 33611272727}, "phone_number"),
        ({"message": ""}, "message"),
        ({"message": "   "}, "message"),
        ({"metadata": ["a"]}, "metadata"),
        ({"metadata": {1: "a"}}, "metadata"),
        ({"metadata": {"a": object()}}, "metadata.a"),
        ({"metadata": {"a": float("nan")}}, "metadata.a"),
    ],
)
async def test_bad_input_is_refused_before_anything_is_sent(
    httplib: ModuleType, make_client: Any, kwargs: dict[str, Any], field: str
) -> None:
    handler = answer(httplib, body={"messageId": "m"})
    call = {"phone_number": "+33611272727", "message": "hi", **kwargs}
    async with make_client(handler) as client:
        with pytest.raises(InvalidRequestError) as caught:
            await client.send_sms(call.pop("phone_number"), call.pop("message"), **call)
    assert isinstance(caught.value, ValueError)
    assert caught.value.field == field
    assert field in str(caught.value)
    assert handler.seen == []


async def test_numbers_the_server_may_accept_pass_unless_strict(
    httplib: ModuleType, make_client: Any
) -> None:
    handler = answer(httplib, body={"messageId": "m"})
    async with make_client(handler) as client:
        # The API's own example: longer than a valid French E.164 number.
        await client.send_sms("+3361127272727", "hi")
    async with make_client(handler, strict_phone_numbers=True) as client:
        await client.send_sms("+33611272727", "hi")
        with pytest.raises(InvalidRequestError, match=r"E\.164"):
            await client.send_sms("+3361127272727123", "hi")
    assert len(handler.seen) == 2


# -- the underlying client -----------------------------------------------------------


async def test_a_handed_in_client_is_used_and_left_open(
    httplib: ModuleType, http_library: str
) -> None:
    handler = answer(httplib, body={"messageId": "m-2"})
    http_client = httplib.AsyncClient(transport=httplib.MockTransport(handler))
    client = VortextClient(USER, PASSWORD, http_client=http_client, base_url="https://api.test")
    assert client.http_client is http_client
    assert client.http_library == http_library
    assert (await client.send_sms("+33611272727", "hi")).message_id == "m-2"
    await client.aclose()
    assert not http_client.is_closed
    await http_client.aclose()


async def test_an_owned_client_is_closed(httplib: ModuleType, make_client: Any) -> None:
    client = make_client(answer(httplib, body={}))
    await client.aclose()
    assert client.http_client.is_closed


def test_the_library_can_be_forced(http_library: str) -> None:
    client = VortextClient(USER, PASSWORD, http_library=http_library)  # type: ignore[arg-type]
    assert client.http_library == http_library
    assert f"({http_library}/" in client.user_agent


def test_something_else_as_http_client_is_refused() -> None:
    with pytest.raises(ConfigurationError, match=r"httpx\.AsyncClient or an httpx2\.AsyncClient"):
        VortextClient(USER, PASSWORD, http_client=object())


# -- secrets -------------------------------------------------------------------------


async def test_credentials_never_appear_in_reprs_errors_or_logs(
    httplib: ModuleType, make_client: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    statuses = itertools.cycle([503, 401, 500])

    def handler(request: Any) -> Any:
        return httplib.Response(next(statuses), content=b"no")

    client = make_client(handler, retry=RetryPolicy(attempts=2, initial_wait=0, jitter=0))
    texts = [repr(client), str(vars(client).get("limiter"))]
    for call in (lambda: client.send_sms("+33611272727", "hi"), lambda: client.status()):
        with pytest.raises(VortextError) as caught:
            await call()
        texts += [str(caught.value), repr(caught.value), str(caught.value.__cause__)]
    await client.aclose()
    texts += [record.getMessage() for record in caplog.records]
    everything = "\n".join(texts)
    assert PASSWORD not in everything
    assert TOKEN not in everything
    assert USER not in repr(client)


# -- shutdown and cancellation ------------------------------------------------------


async def test_closing_stops_sends_waiting_for_their_turn_as_not_sent(
    httplib: ModuleType, make_client: Any
) -> None:
    handler = answer(httplib, body={"messageId": "m"})
    client = make_client(handler, rate_limit=RateLimit(windows=[(1, 3600.0)]))
    await client.send_sms("+33611272727", "takes the only token")
    waiting = asyncio.create_task(client.send_sms("+33611272727", "waits an hour"))
    await asyncio.sleep(0)  # let it queue
    await client.aclose(grace=3600)  # the grace is for sends in flight, not queued ones
    with pytest.raises(ClientClosedError, match="not sent") as caught:
        await waiting
    assert caught.value.certainly_not_sent
    assert len(handler.seen) == 1
    with pytest.raises(ClientClosedError):
        await client.send_sms("+33611272727", "after close")


async def test_closing_cuts_a_send_in_flight_after_the_grace_as_uncertain(
    httplib: ModuleType, make_client: Any
) -> None:
    arrived = asyncio.Event()

    async def never_answers(request: Any) -> Any:
        arrived.set()
        await asyncio.Event().wait()

    client = make_client(never_answers)
    sending = asyncio.create_task(client.send_sms("+33611272727", "hi"))
    await arrived.wait()
    await client.aclose(grace=0)
    with pytest.raises(UncertainSendError, match="closed before the server answered"):
        await sending


async def test_a_cancelled_caller_does_not_abandon_a_send_in_flight(
    httplib: ModuleType, make_client: Any
) -> None:
    arrived, release = asyncio.Event(), asyncio.Event()
    results: list[SendResult] = []

    async def slow(request: Any) -> Any:
        arrived.set()
        await release.wait()
        return httplib.Response(201, json={"messageId": "m-late"})

    client = make_client(slow, on_background_result=results.append)
    caller = asyncio.create_task(client.send_sms("+33611272727", "hi"))
    await arrived.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller  # the caller sees its cancellation at once
    release.set()
    await client.aclose()  # waits for the background send
    (result,) = results
    assert result.outcome is Outcome.SENT
    assert result.message_id == "m-late"


@pytest.mark.parametrize(
    ("status", "outcome"), [(201, Outcome.SENT), (500, Outcome.UNCERTAIN), (400, Outcome.FAILED)]
)
async def test_a_caller_cancelled_at_any_step_leaves_no_send_unaccounted(
    httplib: ModuleType, make_client: Any, status: int, outcome: Outcome
) -> None:
    # Cancel the caller after 0, 1, 2... event-loop turns: before the send goes out,
    # while it is out, after the answer arrived but before the caller woke up.
    loop = asyncio.get_running_loop()
    loop_errors: list[dict[str, Any]] = []
    loop.set_exception_handler(lambda _loop, context: loop_errors.append(context))
    handler = answer(httplib, status=status, body={"messageId": "m"})
    background: list[SendResult] = []
    client = make_client(handler, on_background_result=background.append)
    returned = 0
    try:
        for turns in range(12):
            caller = asyncio.create_task(client.send_sms("+33611272727", f"turns={turns}"))
            for _ in range(turns):
                await asyncio.sleep(0)
            caller.cancel()
            try:
                await caller
                returned += 1
            except asyncio.CancelledError:
                pass
            except VortextError:
                returned += 1
        await client.aclose()
    finally:
        loop.set_exception_handler(None)
    assert loop_errors == []
    # Every SMS the server saw reached its caller or was reported in the background.
    assert returned + len(background) == len(handler.seen)
    assert [result.outcome for result in background] == [outcome] * len(background)
    assert 0 < len(handler.seen) < 12  # some were cancelled before going out


async def test_without_shielding_cancellation_cuts_the_request(
    httplib: ModuleType, make_client: Any
) -> None:
    arrived = asyncio.Event()
    results: list[SendResult] = []

    async def never_answers(request: Any) -> Any:
        arrived.set()
        await asyncio.Event().wait()

    client = make_client(never_answers, shield_sends=False, on_background_result=results.append)
    caller = asyncio.create_task(client.send_sms("+33611272727", "hi"))
    await arrived.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    await client.aclose(grace=0)
    assert results == []
    assert client.limiter.state().in_flight == 0
