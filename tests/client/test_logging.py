"""The library's logs: silent unless asked, readable on demand, folded, structured, masked.

The "silent" and ``VORTEXT_LOG`` checks run a script in a subprocess (a fresh
interpreter whose logging nobody configured) and read its standard error.
"""

from __future__ import annotations

import asyncio
import logging
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from tests.support.clock import RecordingClock
from vortext_async import RetryPolicy, ServerError, Sms, VortextClient
from vortext_async._logging import FoldedLog, mask_phone
from vortext_async.emulator import Emulator
from vortext_async.testing import VirtualClock, emulator_client

ROOT = Path(__file__).resolve().parents[2]

# Two sends at once to an emulator that takes one a minute: the second is answered
# 429 and retried after its Retry-After, all in virtual time.
SCRIPT = textwrap.dedent(
    """
    import asyncio
    from vortext_async.emulator import Emulator
    from vortext_async.testing import VirtualClock, emulator_client

    async def main():
        clock = VirtualClock()
        emulator = Emulator(users={"demo": "demo"}, windows=[(1, 60.0)], clock=clock)
        retries = []
        async with emulator_client(emulator, clock=clock, on_retry=retries.append) as client:
            await asyncio.gather(*(client.send_sms("+33611272727", "hi") for _ in range(2)))
        print("retries", len(retries), "refused", emulator.stats.refused)

    asyncio.run(main())
    """
)


def _run(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("VORTEXT_")}
    return subprocess.run(
        [sys.executable, "-c", SCRIPT],
        cwd=ROOT,
        env={**environ, **env},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


def test_a_send_retried_after_a_429_prints_nothing_when_logging_is_not_configured() -> None:
    done = _run({})
    assert done.stdout.split() == ["retries", "1", "refused", "1"]  # a retry did happen
    assert done.stderr == ""


def test_vortext_log_turns_on_a_readable_stderr_handler() -> None:
    done = _run({"VORTEXT_LOG": "info"})
    lines = done.stderr.splitlines()
    assert any(
        "WARNING vortext_async.client] send attempt 1 failed, trying again in 60.000 s" in line
        for line in lines
    ), lines
    assert not any("DEBUG" in line for line in lines)  # info: no per-retry debug lines
    debug = _run({"VORTEXT_LOG": "debug"}).stderr.splitlines()
    retried = [line for line in debug if "attempt 1" in line]  # the one retry: one line
    assert len(retried) == 1, debug
    assert "WARNING vortext_async.client] send attempt 1 failed, trying again in" in retried[0]


def test_a_stream_of_one_warning_is_folded_into_one_line_per_interval(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING, logger="vortext_async.test")
    clock = RecordingClock()
    folded = FoldedLog(logging.getLogger("vortext_async.test"), clock, interval=10.0)
    for index in range(300):  # 300 refusals over 30 s
        folded.log("send 429", logging.WARNING, f"refused #{index}", {"vortext_attempt": 1})
        folded.log("read 503", logging.WARNING, "a read failed")  # another cause: its own
        clock.advance(0.1)
    folded.flush()
    sends = [r for r in caplog.records if r.vortext_cause == "send 429"]  # type: ignore[attr-defined]
    # The first at once, then one line per 10 s with the count, then the rest at flush.
    assert [r.vortext_count for r in sends] == [1, 100, 100, 99]  # type: ignore[attr-defined]
    assert sum(r.vortext_count for r in sends) == 300  # type: ignore[attr-defined]
    assert sends[0].getMessage() == "refused #0"
    assert sends[1].getMessage().startswith("100 more like this in the last 10 s (send 429)")
    assert sends[-1].getMessage().endswith("the latest: refused #299")
    assert all(r.vortext_attempt == 1 for r in sends)  # type: ignore[attr-defined]
    reads = [r for r in caplog.records if r.vortext_cause == "read 503"]  # type: ignore[attr-defined]
    assert len(reads) == 4


def test_folding_costs_nothing_when_the_level_is_off(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.ERROR, logger="vortext_async.test")
    clock = RecordingClock()
    folded = FoldedLog(logging.getLogger("vortext_async.test"), clock)
    folded.log("x", logging.WARNING, "not shown")
    folded.flush()
    assert caplog.records == []


def test_phone_numbers_are_masked_unless_the_user_opts_in(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv("VORTEXT_LOG_PHONE_NUMBERS", raising=False)
    assert mask_phone("+33611272727") == "********2727"
    assert mask_phone("123") == "***"
    monkeypatch.setenv("VORTEXT_LOG_PHONE_NUMBERS", "1")
    assert mask_phone("+33611272727") == "+33611272727"


async def test_a_send_finished_in_the_background_is_logged_with_the_number_masked(
    httplib: Any, mock_transport: Any, http_library: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="vortext_async")
    arrived, release = asyncio.Event(), asyncio.Event()

    async def slow(request: Any) -> Any:
        arrived.set()
        await release.wait()
        return httplib.Response(201, json={"messageId": "m-late"})

    client = VortextClient(
        "user",
        "pw",
        base_url="https://api.test",
        transport=mock_transport(slow),
        http_library=http_library,  # type: ignore[arg-type]
    )
    caller = asyncio.create_task(client.send(Sms("+33611272727", "hi", key="order-42")))
    await arrived.wait()
    caller.cancel()
    with pytest.raises(asyncio.CancelledError):
        await caller
    release.set()
    await client.aclose()
    [record] = [r for r in caplog.records if r.name == "vortext_async.client"]
    assert record.getMessage() == (
        "send finished after its caller was cancelled: sent to ********2727 (message id m-late)"
    )
    fields = (record.vortext_outcome, record.vortext_message_id, record.vortext_message_key)  # type: ignore[attr-defined]
    assert fields == ("sent", "m-late", "order-42")


async def test_each_retry_is_logged_once_with_the_message_key(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG, logger="vortext_async")
    clock = VirtualClock()
    emulator = Emulator(users={"demo": "demo"}, error_rate=1.0, error_statuses=(503,))
    policy = RetryPolicy(attempts=4, jitter=0)
    async with emulator_client(emulator, clock=clock, retry=policy) as client:
        with pytest.raises(ServerError):
            await client.send(Sms("+33611272727", "hi", key="order-42"))
        with pytest.raises(ServerError):
            await client.send_sms("+33611272727", "hi")  # no key: no key field
    lines = [r for r in caplog.records if "attempt" in r.getMessage()]
    [folded] = [r for r in lines if "more like this" in r.getMessage()]  # at close
    assert folded.vortext_count == 5  # type: ignore[attr-defined]
    retries = [r for r in lines if r is not folded]
    # 3 retries per send, one record each: the first of its cause a warning (folded
    # after), the others at DEBUG; nothing more from the retry module.
    assert [(r.name, r.levelno) for r in retries] == [
        ("vortext_async.client", logging.WARNING),
        *[("vortext_async.client", logging.DEBUG)] * 5,
    ]
    assert [r.vortext_attempt for r in retries] == [1, 2, 3, 1, 2, 3]  # type: ignore[attr-defined]
    keys = [getattr(r, "vortext_message_key", None) for r in retries]
    assert keys == ["order-42"] * 3 + [None] * 3
    assert all(r.vortext_cause == "send ServerError" for r in retries)  # type: ignore[attr-defined]
