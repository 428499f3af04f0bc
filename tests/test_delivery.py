"""Delivery guarantees, proven against a real fault-injecting server on loopback.

One test per row of the fault table: the outcome class a caller sees, how many
requests for that message reached the server and how many it may have acted on
(never 2 for a send unless the caller opted in to at-least-once), the waits taken
(virtual time: the client's clock records them and jumps), and that nothing leaks
(no task left, every connection closed).  Then retries of reads, the opt-in, and a
property over random fault sequences.

The only real time spent waiting is a 0.1 s read timeout where the fault *is* a
server that never answers; no assertion depends on how long anything took.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import email.utils
import logging
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.clock import RecordingClock
from tests.support.faults import Fault, FaultServer, Received, refused_url
from vortext_async import (
    BadRequestError,
    ConnectError,
    InvalidResponseError,
    Outcome,
    ProtocolError,
    RateLimit,
    RateLimitedError,
    RequestTimeoutError,
    RetryEvent,
    RetryPolicy,
    SendResult,
    SentSms,
    ServerError,
    ServiceStatus,
    Sms,
    SmsDetail,
    UncertainSendError,
    VortextClient,
    VortextError,
)
from vortext_async.testing import VirtualClock

PHONE = "+33611272727"
POLICY = RetryPolicy(jitter=0)  # waits 0.25, 0.5, 1, 2 (5 attempts)
HELD_READ_TIMEOUT = 0.1  # seconds: the client gives up on a server that never answers


class Harness:
    """A client bound to a fault server, with its clock and its retry events."""

    def __init__(
        self, url: str, http_library: str, *, clock: RecordingClock | None = None, **options: Any
    ) -> None:
        self.clock = clock if clock is not None else RecordingClock()
        self.events: list[RetryEvent] = []
        read = options.pop("read_timeout", 5.0)
        options.setdefault("retry", POLICY)
        # No caps and no learning: the oracle models the retries, not a learned pace
        # (after a 429 with an hour's Retry-After, learning rightly paces one per hour).
        options.setdefault("rate_limit", RateLimit())
        self.client = VortextClient(
            "user",
            "pw-never-shown",
            base_url=url,
            timeout=httpx.Timeout(5.0, read=read),
            clock=self.clock,
            on_retry=self.events.append,
            http_library=http_library,  # type: ignore[arg-type]
            **options,
        )

    @property
    def retry_waits(self) -> list[float]:
        return [event.wait for event in self.events]

    async def send(self, message: str = "hello") -> SentSms | VortextError:
        """The outcome of one send: its ``SentSms`` or the error it raised."""
        try:
            return await self.client.send_sms(PHONE, message)
        except VortextError as error:
            return error


@pytest.fixture
async def server() -> AsyncIterator[FaultServer]:
    async with FaultServer() as running:
        yield running


@pytest.fixture
async def harness(server: FaultServer, http_library: str) -> AsyncIterator[Any]:
    """``harness(**client_options)``: a client bound to ``server`` (closed at the end)."""
    made: list[Harness] = []

    def make(**options: Any) -> Harness:
        made.append(Harness(server.url, http_library, **options))
        return made[-1]

    yield make
    for h in made:
        await h.client.aclose()


async def closed_without_leaks(h: Harness, server: FaultServer | None = None) -> None:
    """Close the client; then no connection is open and no task is left behind."""
    await h.client.aclose()
    if server is not None:
        await server.wait_all_closed()
        assert server.open_connections == 0
    await asyncio.sleep(0)  # let done-callbacks run
    current = asyncio.current_task()
    handlers = server.handler_tasks if server is not None else frozenset()
    left = [t for t in asyncio.all_tasks() if t is not current and t not in handlers]
    assert left == []


def counts(server: FaultServer, message: str = "hello") -> tuple[int, int]:
    """(requests that arrived, requests the server may have acted on) for ``message``."""
    received = server.received_for(message)
    return len(received), sum(1 for r in received if r.processed)


# -- the fault server itself (raw httpx, no vortext client) ------------------------------


async def test_fault_server_answers_in_script_order_and_records(server: FaultServer) -> None:
    server.script(Fault.answer(503, "busy", {"Retry-After": "2"}), Fault.answer(201, b"{}"))
    async with httpx.AsyncClient(base_url=server.url) as raw:
        first = await raw.post("/sms", json={"message": "a"})
        second = await raw.post("/sms", json={"message": "a"})
        third = await raw.post("/sms", json={"message": "b"})
        status = await raw.get("/status")
    assert (first.status_code, first.text, first.headers["retry-after"]) == (503, "busy", "2")
    assert (second.status_code, second.content) == (201, b"{}")
    assert third.json() == {"messageId": "m-1"}
    assert status.json() == {"status": "OK"}
    assert [(r.method, r.path, r.message, r.processed) for r in server.requests] == [
        ("POST", "/sms", "a", False),
        ("POST", "/sms", "a", True),
        ("POST", "/sms", "b", True),
        ("GET", "/status", None, True),
    ]
    assert server.connections_opened == 1  # keep-alive: one connection for all
    await server.wait_all_closed()


@pytest.mark.parametrize(
    ("fault", "raised"),
    [
        (Fault.close_unread(), httpx.RemoteProtocolError),
        (Fault.reset_unread(), httpx.ReadError),
        (Fault.reset(), httpx.ReadError),
    ],
    ids=["close unread", "reset unread", "reset after read"],
)
async def test_fault_server_drops_connections(
    server: FaultServer, fault: Fault, raised: type[Exception]
) -> None:
    server.script(fault)
    async with httpx.AsyncClient(base_url=server.url) as raw:
        with pytest.raises(raised):
            await raw.post("/sms", json={"message": "a"})
        after = await raw.post("/sms", json={"message": "b"})  # a new connection works
    assert after.status_code == 200
    assert server.connections_opened == 2
    assert [r.processed for r in server.requests] == [fault.processes, True]
    await server.wait_all_closed()


async def test_fault_server_holds_an_answer_until_the_client_gives_up(
    server: FaultServer,
) -> None:
    server.script(Fault.hold())
    async with httpx.AsyncClient(base_url=server.url, timeout=HELD_READ_TIMEOUT) as raw:
        with pytest.raises(httpx.ReadTimeout):
            await raw.post("/sms", json={"message": "a"})
    await server.wait_all_closed()  # the server saw the client close and let go
    assert [r.processed for r in server.requests] == [True]


async def test_nothing_listens_at_the_refused_url() -> None:
    with refused_url() as url:
        async with httpx.AsyncClient() as raw:
            with pytest.raises(httpx.ConnectError):
                await raw.get(url)


# -- the fault table: sends ----------------------------------------------------------------


async def test_row_connection_refused_is_retried_then_not_sent(http_library: str) -> None:
    with refused_url() as url:
        h = Harness(url, http_library)
        outcome = await h.send()
        await closed_without_leaks(h)
    assert isinstance(outcome, ConnectError)
    assert outcome.certainly_not_sent
    assert outcome.attempts == 5
    assert h.retry_waits == h.clock.waits == [0.25, 0.5, 1.0, 2.0]


async def test_row_connection_refused_then_up_is_sent(http_library: str) -> None:
    # The server comes up while the client waits to retry: the retry gets through.
    with refused_url() as url:
        port = int(url.rsplit(":", 1)[1])
    server = FaultServer()

    class StartingClock(RecordingClock):
        async def sleep(self, seconds: float) -> None:
            await server.start(port=port)
            await super().sleep(seconds)

    h = Harness(url, http_library, clock=StartingClock())
    try:
        outcome = await h.send()
        await closed_without_leaks(h, server)
    finally:
        await server.aclose()
    assert isinstance(outcome, SentSms)
    assert counts(server) == (1, 1)
    assert h.clock.waits == [0.25]


@pytest.mark.parametrize(
    ("fault", "cause", "processed"),
    [
        (Fault.close_unread(), ProtocolError, 0),
        (Fault.reset_unread(), ProtocolError, 0),
        (Fault.reset(), ProtocolError, 1),
    ],
    ids=["closed before read", "reset before read", "reset after read"],
)
async def test_row_a_connection_dropped_after_the_request_went_out_is_uncertain(
    server: FaultServer, harness: Any, fault: Fault, cause: type[Exception], processed: int
) -> None:
    # The client cannot tell whether the server read it: uncertain, never resent.
    server.script(fault)
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, UncertainSendError)
    assert isinstance(outcome.cause, cause)
    assert outcome.sms == Sms(PHONE, "hello")  # so the caller can reconcile
    assert outcome.attempts == 1
    assert counts(server) == (1, processed)
    assert h.clock.waits == []


async def test_row_an_answer_delayed_past_the_read_timeout_is_uncertain(
    server: FaultServer, harness: Any
) -> None:
    server.script(Fault.hold())
    h = harness(read_timeout=HELD_READ_TIMEOUT)
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, UncertainSendError)
    assert isinstance(outcome.cause, RequestTimeoutError)
    assert counts(server) == (1, 1)
    assert h.clock.waits == []


@pytest.mark.parametrize("status", [500, 502, 504])
async def test_row_a_5xx_that_may_have_been_processed_is_uncertain(
    server: FaultServer, harness: Any, status: int
) -> None:
    server.script(Fault.answer(status, '{"error": "oops"}'))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, UncertainSendError)
    assert isinstance(outcome.cause, ServerError)
    assert outcome.cause.status_code == status
    assert outcome.cause.body == b'{"error": "oops"}'
    assert counts(server) == (1, 1)
    assert h.clock.waits == []


async def test_row_503_is_not_processed_so_it_is_retried(
    server: FaultServer, harness: Any, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    server.script(Fault.answer(503), Fault.answer(503))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    retries = [r.getMessage() for r in caplog.records if "trying again in" in r.getMessage()]
    retries = [line for line in retries if "more like this" not in line]  # the fold's count
    assert len(retries) == 2  # one line per retry
    assert "send attempt 1 failed" in retries[0]
    assert "503" in retries[0]
    token = base64.b64encode(b"user:pw-never-shown").decode()
    assert not any("pw-never-shown" in line or token in line for line in caplog.messages)
    assert isinstance(outcome, SentSms)
    assert outcome.message_id == server.received_for("hello")[-1].message_id
    assert counts(server) == (3, 1)
    assert h.retry_waits == h.clock.waits == [0.25, 0.5]


async def test_row_503_until_retries_run_out_is_not_sent(server: FaultServer, harness: Any) -> None:
    server.script(*[Fault.answer(503)] * 5)
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, ServerError)
    assert outcome.certainly_not_sent
    assert outcome.attempts == 5
    assert "after 5 attempts" in str(outcome)
    assert counts(server) == (5, 0)
    assert h.clock.waits == [0.25, 0.5, 1.0, 2.0]


async def test_row_429_retry_after_seconds_is_waited_then_sent(
    server: FaultServer, harness: Any
) -> None:
    server.script(Fault.answer(429, headers={"Retry-After": "1"}))
    h = harness()
    outcome = await h.send()
    assert h.client.limiter.state().paused_until is None  # the pause is over
    await closed_without_leaks(h, server)
    assert isinstance(outcome, SentSms)
    assert counts(server) == (2, 1)
    assert h.retry_waits == h.clock.waits == [1.0]


async def test_row_429_retry_after_http_date_is_waited_then_sent(
    server: FaultServer, harness: Any
) -> None:
    # An HTTP date has whole seconds and is read against the wall clock: about 30 s.
    when = dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30)
    date = email.utils.format_datetime(when, usegmt=True)
    server.script(Fault.answer(429, headers={"Retry-After": date}))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, SentSms)
    assert counts(server) == (2, 1)
    (wait,) = h.retry_waits
    assert 20 < wait <= 30
    assert h.clock.waits == [wait]


async def test_row_429_retry_after_over_the_cap_raises_at_once(
    server: FaultServer, harness: Any
) -> None:
    server.script(Fault.answer(429, "slow down", {"Retry-After": "3600"}))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, RateLimitedError)
    assert outcome.certainly_not_sent
    assert outcome.retry_after == 3600
    assert outcome.attempts == 1
    assert counts(server) == (1, 0)
    assert h.clock.waits == []


async def test_row_429_until_retries_run_out_is_not_sent(server: FaultServer, harness: Any) -> None:
    server.script(*[Fault.answer(429, headers={"Retry-After": "2"})] * 3)
    h = harness(retry=RetryPolicy(attempts=3, jitter=0))
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, RateLimitedError)
    assert outcome.attempts == 3
    assert counts(server) == (3, 0)
    assert h.retry_waits == [2.0, 2.0]


@pytest.mark.parametrize(
    "body",
    [b"<html>gateway</html>", b'{"status": "ok"}', b'{"messageId": ""}', b"[]"],
    ids=["not JSON", "no messageId", "empty messageId", "not an object"],
)
async def test_row_a_200_without_a_usable_message_id_is_uncertain(
    server: FaultServer, harness: Any, body: bytes
) -> None:
    server.script(Fault.answer(200, body))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, UncertainSendError)
    assert isinstance(outcome.cause, InvalidResponseError)
    assert outcome.cause.body == body
    assert counts(server) == (1, 1)
    assert h.clock.waits == []


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 422])
async def test_a_4xx_send_is_not_sent_and_not_retried(
    server: FaultServer, harness: Any, status: int
) -> None:
    server.script(Fault.answer(status, '{"error": "no"}'))
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, VortextError)
    assert not isinstance(outcome, UncertainSendError)
    assert outcome.certainly_not_sent
    assert getattr(outcome, "status_code", None) == status
    assert counts(server) == (1, 0)
    assert h.clock.waits == []


async def test_a_plain_success_is_one_request(server: FaultServer, harness: Any) -> None:
    h = harness()
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert outcome == SentSms(message_id="m-1")
    assert counts(server) == (1, 1)


# -- opting in to at-least-once ---------------------------------------------------------------


@pytest.mark.parametrize(
    "fault",
    [Fault.answer(500), Fault.reset(), Fault.answer(200, b"not json")],
    ids=["500", "reset after read", "not JSON"],
)
async def test_opted_in_uncertain_sends_are_resent_and_may_duplicate(
    server: FaultServer, harness: Any, fault: Fault
) -> None:
    server.script(fault)
    h = harness(retry=RetryPolicy(jitter=0, retry_uncertain_sends=True))
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, SentSms)
    assert counts(server) == (2, 2)  # the documented price: maybe two SMS
    assert [type(e.error) for e in h.events] == [UncertainSendError]
    assert h.clock.waits == [0.25]


async def test_opted_in_held_answer_is_resent(server: FaultServer, harness: Any) -> None:
    server.script(Fault.hold())
    h = harness(
        retry=RetryPolicy(jitter=0, retry_uncertain_sends=True), read_timeout=HELD_READ_TIMEOUT
    )
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, SentSms)
    assert counts(server) == (2, 2)


async def test_opting_in_still_does_not_resend_a_4xx(server: FaultServer, harness: Any) -> None:
    server.script(Fault.answer(400))
    h = harness(retry=RetryPolicy(jitter=0, retry_uncertain_sends=True))
    outcome = await h.send()
    await closed_without_leaks(h, server)
    assert isinstance(outcome, BadRequestError)
    assert counts(server) == (1, 0)


async def test_a_per_call_policy_overrides_the_clients(server: FaultServer, harness: Any) -> None:
    server.script(Fault.answer(503))
    h = harness()
    with pytest.raises(ServerError):
        await h.client.send_sms(PHONE, "hello", retry=RetryPolicy.no_retries())
    await closed_without_leaks(h, server)
    assert counts(server) == (1, 0)


# -- reads are retried on every transient failure -----------------------------------------


@pytest.mark.parametrize(
    "fault",
    [
        Fault.answer(500),
        Fault.answer(502),
        Fault.answer(503),
        Fault.answer(504),
        Fault.answer(408),
        Fault.answer(429),
        Fault.close_unread(),
        Fault.reset_unread(),
        Fault.reset(),
    ],
    ids=["500", "502", "503", "504", "408", "429", "closed", "reset unread", "reset"],
)
async def test_a_status_read_is_retried_on_a_transient_failure(
    server: FaultServer, harness: Any, fault: Fault
) -> None:
    server.script(fault)
    h = harness()
    status = await h.client.status()
    await closed_without_leaks(h, server)
    assert isinstance(status, ServiceStatus)
    assert status.status == "OK"
    assert [r.path for r in server.requests] == ["/status", "/status"]
    assert [e.operation for e in h.events] == ["read"]
    assert h.retry_waits == [0.25]


async def test_a_read_past_the_read_timeout_is_retried(server: FaultServer, harness: Any) -> None:
    server.script(Fault.hold(), Fault.hold())
    h = harness(read_timeout=HELD_READ_TIMEOUT)
    detail = await h.client.get_sms("m-42")
    await closed_without_leaks(h, server)
    assert isinstance(detail, SmsDetail)
    assert detail.message_id == "m-42"
    assert [r.path for r in server.requests] == ["/sms/m-42"] * 3
    assert h.retry_waits == [0.25, 0.5]


async def test_a_read_refused_for_good_is_not_retried(server: FaultServer, harness: Any) -> None:
    server.script(Fault.answer(404, '{"error": "unknown id"}'))
    h = harness()
    with pytest.raises(VortextError) as caught:
        await h.client.get_sms("m-missing")
    await closed_without_leaks(h, server)
    assert getattr(caught.value, "status_code", None) == 404
    assert len(server.requests) == 1


async def test_a_read_gives_up_after_its_attempts(server: FaultServer, harness: Any) -> None:
    server.script(*[Fault.answer(502)] * 3)
    h = harness(retry=RetryPolicy(attempts=3, jitter=0))
    with pytest.raises(ServerError) as caught:
        await h.client.status()
    await closed_without_leaks(h, server)
    assert caught.value.attempts == 3
    assert len(server.requests) == 3
    assert h.clock.waits == [0.25, 0.5]


# -- cancellation ---------------------------------------------------------------------------


async def test_cancelling_a_send_between_retries_sends_nothing_more(
    server: FaultServer, http_library: str
) -> None:
    class StuckClock(RecordingClock):
        def __init__(self) -> None:
            super().__init__()
            self.waiting = asyncio.Event()

        async def sleep(self, seconds: float) -> None:
            self.waits.append(seconds)
            self.waiting.set()
            await asyncio.Future()  # the retry wait never ends: the test cancels

    server.script(Fault.answer(503))
    clock = StuckClock()
    h = Harness(server.url, http_library, clock=clock)
    task = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    await clock.waiting.wait()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await closed_without_leaks(h, server)
    assert counts(server) == (1, 0)
    assert clock.waits == [0.25]


async def test_cancelling_a_send_whose_request_went_out_reports_it_uncertain(
    server: FaultServer, harness: Any
) -> None:
    # The request is written and the server sits on it: the caller is cancelled at
    # once, the send finishes in the background and is reported for what it was.
    server.script(Fault.hold())
    results: list[SendResult] = []
    h = harness(read_timeout=HELD_READ_TIMEOUT, on_background_result=results.append)
    task = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    await server.wait_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await closed_without_leaks(h, server)  # aclose lets the background send finish
    (result,) = results
    assert result.outcome is Outcome.UNCERTAIN
    assert isinstance(result.error, UncertainSendError)
    assert counts(server) == (1, 1)  # and it was not sent again


async def test_cancelling_an_unshielded_send_cuts_its_connection(
    server: FaultServer, harness: Any
) -> None:
    server.script(Fault.hold())
    results: list[SendResult] = []
    h = harness(shield_sends=False, on_background_result=results.append)
    task = asyncio.create_task(h.client.send_sms(PHONE, "hello"))
    await server.wait_requests(1)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    await server.wait_all_closed()  # the cut connection, before the client is closed
    await closed_without_leaks(h, server)
    assert results == []
    assert counts(server) == (1, 1)


async def test_virtual_clock_makes_retry_waits_instant_against_a_real_server(
    server: FaultServer, http_library: str
) -> None:
    # The test switch users get: VirtualClock jumps over waits when every task is idle.
    server.script(Fault.answer(429, headers={"Retry-After": "30"}), Fault.answer(503))
    clock = VirtualClock()
    client = VortextClient(
        "user",
        "pw",
        base_url=server.url,
        clock=clock,
        http_library=http_library,  # type: ignore[arg-type]
    )
    async with client:
        sent = await client.send_sms(PHONE, "hello")
    assert isinstance(sent, SentSms)
    assert counts(server) == (3, 1)
    assert 30.5 <= clock.time() <= 30.5 + RetryPolicy().jitter  # 30, then 0.5 + jitter


# -- property: random faults, one outcome each, nothing processed is resent -----------------

FAULTS: list[Fault] = [
    Fault.ok(),
    Fault.ok(),
    Fault.answer(500),
    Fault.answer(502),
    Fault.answer(503),
    Fault.answer(504),
    Fault.answer(429, headers={"Retry-After": "1"}),
    Fault.answer(429, headers={"Retry-After": "3600"}),
    Fault.answer(400),
    Fault.close_unread(),
    Fault.reset_unread(),
    Fault.reset(),
    Fault.answer(200, b"not json"),
    Fault.answer(200, b"{}"),
]
RETRIED = {503, 429}


def expected_outcomes(
    faults: list[Fault], messages: int, attempts: int
) -> list[tuple[str, list[Fault]]]:
    """The oracle: per message, ``sent``/``not sent``/``uncertain`` and the faults it met.

    A send is retried only after a fault the server did not process and that is a
    certain refusal (503, 429 within the cap); anything it may have processed ends it.
    A 429 over the cap fails its send at once but still pauses the limiter for its
    whole ``Retry-After`` (3600 s): the next send's first attempt waits that out, past
    its 60 s deadline, so that send gets no retry.
    """
    script = list(faults)
    result = []
    paused_past_deadline = False
    for _ in range(messages):
        allowed = 1 if paused_past_deadline else attempts
        paused_past_deadline = False
        met: list[Fault] = []
        while True:
            fault = script.pop(0) if script else Fault.ok()
            met.append(fault)
            if fault.kind == "ok":
                outcome = "sent"
            elif fault.kind == "answer" and fault.status in RETRIED:
                over_cap = dict(fault.headers).get("Retry-After") == "3600"
                paused_past_deadline = over_cap
                if not over_cap and len(met) < allowed:
                    continue
                outcome = "not sent"
            elif fault.kind == "answer" and 400 <= fault.status < 500:
                outcome = "not sent"
            else:
                outcome = "uncertain"
            break
        result.append((outcome, met))
    return result


def outcome_of(value: SentSms | VortextError) -> str:
    if isinstance(value, SentSms):
        return "sent"
    if isinstance(value, UncertainSendError):
        return "uncertain"
    assert value.certainly_not_sent
    return "not sent"


async def run_messages(
    faults: list[Fault], messages: int, attempts: int, http_library: str
) -> tuple[list[SentSms | VortextError], list[Received]]:
    async with FaultServer() as server:
        server.script(*faults)
        h = Harness(server.url, http_library, retry=RetryPolicy(attempts=attempts, jitter=0))
        outcomes = [await h.send(f"message {i}") for i in range(messages)]
        await closed_without_leaks(h, server)
        return outcomes, server.requests


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    faults=st.lists(st.sampled_from(FAULTS), max_size=12),
    messages=st.integers(1, 5),
    attempts=st.integers(1, 4),
)
def test_random_faults_every_message_has_one_outcome_and_nothing_processed_is_resent(
    http_library: str, faults: list[Fault], messages: int, attempts: int
) -> None:
    outcomes, requests = asyncio.run(run_messages(faults, messages, attempts, http_library))
    expected = expected_outcomes(faults, messages, attempts)
    for i, (outcome, (want, met)) in enumerate(zip(outcomes, expected, strict=True)):
        mine = [r for r in requests if r.message == f"message {i}"]
        # Exactly one outcome, the one the faults call for, after exactly those requests.
        assert outcome_of(outcome) == want, (i, outcome, met)
        assert [r.fault for r in mine] == met
        # Nothing the server may have acted on is ever sent again: a processed request
        # is the message's last, and a message is processed at most once.
        processed = [k for k, r in enumerate(mine) if r.processed]
        assert processed in ([], [len(mine) - 1])
        # Sent: the id the server gave; not sent: the server acted on none of it.
        if isinstance(outcome, SentSms):
            assert outcome.message_id == mine[-1].message_id
        elif want == "not sent":
            assert processed == []
    # Requests arrive message by message, never interleaved or for a finished message.
    order = [r.message for r in requests]
    assert order == sorted(order, key=lambda m: int(str(m).split()[1]))


def test_the_oracle_matches_the_rules_on_a_known_sequence() -> None:
    # A check of the checker: 503, 503, ok -> sent after 3; 500 -> uncertain; 429 over
    # the cap -> not sent at once.
    faults = [
        Fault.answer(503),
        Fault.answer(503),
        Fault.ok(),
        Fault.answer(500),
        Fault.answer(429, headers={"Retry-After": "3600"}),
    ]
    got = expected_outcomes([*faults, Fault.answer(503)], 5, attempts=5)
    assert [(o, len(m)) for o, m in got] == [
        ("sent", 3),
        ("uncertain", 1),
        ("not sent", 1),
        ("not sent", 1),  # waited out the hour-long pause: no time left to retry the 503
        ("sent", 1),
    ]


async def test_a_429_over_the_cap_pauses_the_next_send_past_its_deadline(
    server: FaultServer, harness: Any
) -> None:
    # Found by the property test: the refused send fails at once, but the limiter
    # holds every sender for the server's hour; the next send waits it out in the
    # limiter (virtual time), is refused with a 503 and has no time left to retry.
    server.script(Fault.answer(429, headers={"Retry-After": "3600"}), Fault.answer(503))
    h = harness()
    first = await h.send("first")
    second = await h.send("second")
    await closed_without_leaks(h, server)
    assert isinstance(first, RateLimitedError)
    assert isinstance(second, ServerError)
    assert second.attempts == 1
    assert h.clock.waits == [pytest.approx(3600)]  # the limiter's wait, no retry wait
