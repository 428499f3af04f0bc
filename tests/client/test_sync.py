"""The blocking client (vortext_async.sync) against an emulator served on loopback.

Every test's calls are blocking calls from plain threads: the test's own (pytest's
main thread), many threads sharing one client, a Celery-like worker loop.
"""

from __future__ import annotations

import asyncio
import inspect
import queue
import signal
import threading
from collections.abc import Iterator

import pytest

from tests.support.served import ThreadGateClock, served_emulator
from vortext_async import (
    AuthenticationError,
    ClientClosedError,
    InvalidRequestError,
    NotFoundError,
    Outcome,
    RateLimit,
    SendResult,
    SentSms,
    Sms,
    SyncInEventLoopError,
    VortextError,
)
from vortext_async import VortextClient as AsyncVortextClient
from vortext_async.emulator import Emulator
from vortext_async.sync import VortextClient

# Sends in these tests must not wait on the client's default caps.
FAST = RateLimit(per_minute=100_000)


@pytest.fixture
def emulator() -> Emulator:
    return Emulator(users={"demo": "demo"})


@pytest.fixture
def url(emulator: Emulator) -> Iterator[str]:
    with served_emulator(emulator) as base_url:
        yield base_url


@pytest.fixture
def client(url: str, http_library: str) -> Iterator[VortextClient]:
    with VortextClient(
        "demo", "demo", base_url=url, rate_limit=FAST, http_library=http_library
    ) as client:
        yield client


def test_the_three_calls_block_and_return_records(client: VortextClient, emulator: Emulator):
    status = client.status()
    sent = client.send_sms("+33611272727", "Please call me", metadata={"myCustomerId": "123"})
    detail = client.get_sms(sent.message_id)

    assert status.status is not None
    assert isinstance(sent, SentSms)
    assert detail.metadata == {"myCustomerId": "123"}
    assert emulator.received_count("+33611272727", "Please call me", {"myCustomerId": "123"}) == 1
    assert client.send(Sms("+33611272727", "again")).message_id != sent.message_id


def test_many_threads_share_one_client(client: VortextClient, emulator: Emulator):
    ids: list[str] = []
    lock = threading.Lock()

    def worker(n: int) -> None:
        for i in range(5):
            sent = client.send_sms("+33611272727", f"thread {n} message {i}")
            with lock:
                ids.append(sent.message_id)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert len(set(ids)) == 40
    assert all(
        emulator.received_count("+33611272727", f"thread {n} message {i}") == 1
        for n in range(8)
        for i in range(5)
    )


def test_a_celery_like_worker_sends_task_after_task(url: str, emulator: Emulator):
    """A worker process's loop: one module-level client, tasks handled one by one."""
    tasks: queue.Queue[tuple[str, str] | None] = queue.Queue()
    outcomes: list[object] = []

    def worker() -> None:
        with VortextClient("demo", "demo", base_url=url, rate_limit=FAST) as client:
            while (task := tasks.get()) is not None:
                phone, text = task
                try:
                    outcomes.append(client.send_sms(phone, text))
                except VortextError as error:
                    outcomes.append(error)

    for n in range(10):
        tasks.put(("+33611272727", f"task {n}"))
    tasks.put(("not a number", "bad input"))
    tasks.put(None)
    thread = threading.Thread(target=worker)
    thread.start()
    thread.join()

    assert [type(outcome) for outcome in outcomes] == [SentSms] * 10 + [InvalidRequestError]
    error = outcomes[-1]
    assert isinstance(error, InvalidRequestError)
    assert error.field == "phone_number"
    assert sum(emulator.received_count("+33611272727", f"task {n}") for n in range(10)) == 10


def test_errors_are_raised_in_the_callers_thread_with_their_class(url: str):
    with (
        VortextClient("demo", "wrong", base_url=url, rate_limit=FAST) as client,
        pytest.raises(AuthenticationError) as refused,
    ):
        client.send_sms("+33611272727", "hello")
    assert refused.value.status_code == 401
    assert refused.value.certainly_not_sent

    with (
        VortextClient("demo", "demo", base_url=url, rate_limit=FAST) as client,
        pytest.raises(NotFoundError) as missing,
    ):
        client.get_sms("no-such-message")
    assert missing.value.status_code == 404


def test_send_bulk_yields_results_and_a_summary(client: VortextClient, emulator: Emulator):
    readers: set[int] = set()

    def messages() -> Iterator[Sms]:
        for n in range(30):
            readers.add(threading.get_ident())
            yield Sms("+33611272727", f"bulk {n}", key=f"m{n}")

    job = client.send_bulk(messages(), concurrency=4)
    results = list(job)

    assert sorted(result.sms.key or "" for result in results) == sorted(f"m{n}" for n in range(30))
    assert all(isinstance(r, SendResult) and r.outcome is Outcome.SENT for r in results)
    assert (job.summary.sent, job.summary.total, job.summary.stopped) == (30, 30, False)
    # The input is read in the caller's thread (a Django queryset must be).
    assert readers == {threading.get_ident()}
    assert sum(emulator.received_count("+33611272727", f"bulk {n}") for n in range(30)) == 30


def test_leaving_a_bulk_job_early_stops_it_and_closes_the_input(client: VortextClient):
    closed = threading.Event()

    def messages() -> Iterator[Sms]:
        try:
            n = 0
            while True:
                n += 1
                yield Sms("+33611272727", f"endless {n}")
        finally:
            closed.set()

    with client.send_bulk(messages(), concurrency=2) as job:
        for _ in job:
            break
    assert job.summary.stopped
    assert closed.is_set()
    assert job.summary.total >= 1


def test_bad_bulk_options_are_refused_in_the_callers_thread(client: VortextClient):
    with pytest.raises(InvalidRequestError) as refused:
        client.send_bulk([Sms("+33611272727", "x")], concurrency=0)
    assert refused.value.field == "concurrency"


def test_a_call_from_a_running_event_loop_is_refused_clearly(
    client: VortextClient, emulator: Emulator
):
    async def handler() -> None:
        client.send_sms("+33611272727", "from async code")

    with pytest.raises(SyncInEventLoopError) as refused:
        asyncio.run(handler())

    assert isinstance(refused.value, RuntimeError)
    assert "await the asyncio client" in str(refused.value)
    assert emulator.received_count("+33611272727", "from async code") == 0
    # The client is unharmed: the same call from a thread is fine.
    assert client.send_sms("+33611272727", "from sync code").message_id


def test_a_closed_client_refuses_calls(url: str):
    client = VortextClient("demo", "demo", base_url=url)
    client.close()
    client.close()
    assert client.closed
    with pytest.raises(ClientClosedError):
        client.status()


def test_a_bad_configuration_fails_at_construction_in_the_callers_thread(url: str):
    with pytest.raises(VortextError, match="no password"):
        VortextClient("demo", "", base_url=url)


def _interrupt_main_when(event: threading.Event) -> threading.Thread:
    def interrupt() -> None:
        event.wait(10)
        signal.pthread_kill(threading.main_thread().ident or 0, signal.SIGINT)

    thread = threading.Thread(target=interrupt, daemon=True)
    thread.start()
    return thread


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_while_waiting_for_the_rate_limit_says_nothing_was_sent(
    url: str, emulator: Emulator
):
    with VortextClient("demo", "demo", base_url=url, rate_limit=RateLimit(per_minute=1)) as client:
        client.send_sms("+33611272727", "first")  # takes the minute's only token
        queued = threading.Event()

        def watch() -> None:
            while client.limiter.state().queued == 0:
                threading.Event().wait(0.005)
            queued.set()

        threading.Thread(target=watch, daemon=True).start()
        _interrupt_main_when(queued)
        with pytest.raises(KeyboardInterrupt) as interrupted:
            client.send_sms("+33611272727", "second")

        assert any("was NOT sent" in note for note in interrupted.value.__notes__)
        assert client.limiter.state().queued == 0
    assert emulator.received_count("+33611272727", "second") == 0


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_while_waiting_to_retry_a_refused_send_says_nothing_was_sent():
    # The account takes 1 per 30 s: the second send is refused (429, Retry-After about
    # 30 s, certainly not sent) and its retry waits; Ctrl-C comes during that wait.
    emulator = Emulator(users={"demo": "demo"}, windows=[(1, 30.0)])
    with (
        served_emulator(emulator) as url,
        VortextClient("demo", "demo", base_url=url, rate_limit=RateLimit()) as client,
    ):
        client.send_sms("+33611272727", "first")
        refused = threading.Event()

        def watch() -> None:  # the client read the 429: it paused its limiter
            while client.limiter.state().paused_until is None:
                threading.Event().wait(0.005)
            refused.set()

        threading.Thread(target=watch, daemon=True).start()
        _interrupt_main_when(refused)
        with pytest.raises(KeyboardInterrupt) as interrupted:
            client.send_sms("+33611272727", "second")
        notes = interrupted.value.__notes__
        assert any("was NOT sent" in note for note in notes), notes
    assert emulator.stats.refused == 1
    assert emulator.received_count("+33611272727", "second") == 0


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_after_the_request_left_says_it_may_be_sent_and_reports_it():
    gate = ThreadGateClock()
    emulator = Emulator(users={"demo": "demo"}, latency=1.0, clock=gate)
    reported: queue.Queue[SendResult] = queue.Queue()
    with served_emulator(emulator) as url:
        client = VortextClient(
            "demo", "demo", base_url=url, rate_limit=FAST, on_background_result=reported.put
        )
        _interrupt_main_when(gate.entered)
        with pytest.raises(KeyboardInterrupt) as interrupted:
            client.send_sms("+33611272727", "in flight")
        assert any("MAY HAVE BEEN SENT" in note for note in interrupted.value.__notes__)

        gate.open()
        result = reported.get(timeout=10)
        client.close()
    assert result.outcome is Outcome.SENT
    assert result.sms.message == "in flight"


def test_the_constructor_takes_the_asyncio_clients_arguments():
    """The one signature written out by hand must stay the asyncio client's."""
    sync = inspect.signature(VortextClient.__init__).parameters
    asyncio_ = inspect.signature(AsyncVortextClient.__init__).parameters
    assert [(p.name, p.kind, p.default) for p in sync.values()] == [
        (p.name, p.kind, p.default) for p in asyncio_.values()
    ]
    differing = {
        name
        for name, parameter in sync.items()
        if parameter.annotation != asyncio_[name].annotation
    }
    # HttpLibrary is private to the HTTP layer: the sync module spells it out.
    assert differing <= {"http_library"}


def test_the_calls_have_the_asyncio_clients_parameters():
    for name in ("status", "get_sms", "send_sms", "send", "send_bulk"):
        sync = inspect.signature(getattr(VortextClient, name))
        asyncio_ = inspect.signature(getattr(AsyncVortextClient, name))
        assert list(sync.parameters) == list(asyncio_.parameters), name


@pytest.mark.skipif(
    threading.current_thread() is not threading.main_thread(), reason="needs the main thread"
)
def test_ctrl_c_during_a_bulk_job_stops_it_and_says_how_it_ended():
    gate = ThreadGateClock()
    emulator = Emulator(users={"demo": "demo"}, latency=1.0, clock=gate)
    with served_emulator(emulator) as url:
        client = VortextClient("demo", "demo", base_url=url, rate_limit=FAST)
        messages = [Sms("+33611272727", f"bulk {n}", key=f"b{n}") for n in range(5)]
        job = client.send_bulk(messages, concurrency=1, grace=0)
        _interrupt_main_when(gate.entered)
        with pytest.raises(KeyboardInterrupt) as interrupted:
            list(job)
        gate.open()
        client.close()

    assert any("the bulk job was stopped" in note for note in interrupted.value.__notes__)
    summary = job.summary
    assert summary.stopped
    # The one in flight was cut (UNCERTAIN); nothing else was read, nothing was sent.
    assert (summary.sent, summary.uncertain) == (0, 1)


def test_a_blocking_bulk_job_is_made_by_send_bulk_only() -> None:
    from vortext_async.sync import BulkJob

    with pytest.raises(TypeError, match=r"send_bulk\(\)"):
        BulkJob()
