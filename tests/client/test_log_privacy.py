"""Phone numbers are masked in the log lines of sends finished in the background."""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

import pytest

from tests.support.faults import Fault, FaultServer, Received
from vortext_async import RetryPolicy, SendResult, VortextClient

NUMBER = "+33611272727"
MASKED = "********2727"


class HeldServer(FaultServer):
    """Answers each request with ``fault`` once the test releases it."""

    def __init__(self, fault: Fault) -> None:
        super().__init__()
        self.fault = fault
        self.arrived = asyncio.Event()
        self.release = asyncio.Event()

    async def respond(self, received: Received) -> Fault:
        self.arrived.set()  # the request is out: the send is in flight
        await self.release.wait()
        return self.fault


async def finish_in_background(
    fault: Fault, caplog: Any, **options: Any
) -> list[logging.LogRecord]:
    """Send, cancel the caller once the request is out, let the send end; the log lines."""
    results: list[SendResult] = []
    caplog.set_level(logging.INFO, logger="vortext_async")
    async with HeldServer(fault) as server:
        client = VortextClient(
            "user",
            "pass",
            base_url=server.url,
            retry=RetryPolicy(attempts=1),
            on_background_result=results.append,
            **options,
        )
        caller = asyncio.create_task(client.send_sms(NUMBER, "hi"))
        await asyncio.wait_for(server.arrived.wait(), 5)  # a guard, not a timing
        caller.cancel()
        with pytest.raises(asyncio.CancelledError):
            await caller
        server.release.set()
        await client.aclose()  # lets the background send finish
    assert len(results) == 1
    assert results[0].sms.phone_number == NUMBER  # the result itself keeps the number
    return [r for r in caplog.records if "caller was cancelled" in r.getMessage()]


async def test_a_send_finished_in_the_background_is_logged_masked(caplog: Any) -> None:
    (record,) = await finish_in_background(Fault.ok(), caplog)
    assert record.levelno == logging.INFO
    assert f"sent to {MASKED}" in record.getMessage()
    assert NUMBER not in record.getMessage()


async def test_a_server_error_quoting_the_number_is_masked_too(caplog: Any) -> None:
    body = json.dumps({"message": f"phoneNumber {NUMBER} is not allowed"})
    (record,) = await finish_in_background(Fault.answer(400, body), caplog)
    assert record.levelno == logging.WARNING
    line = record.getMessage()
    assert f"failed to {MASKED}" in line
    assert f"phoneNumber {MASKED} is not allowed" in line
    assert NUMBER not in line


async def test_the_user_may_opt_in_to_whole_numbers(caplog: Any, monkeypatch: Any) -> None:
    (record,) = await finish_in_background(Fault.ok(), caplog, log_phone_numbers=True)
    assert f"sent to {NUMBER}" in record.getMessage()
    caplog.clear()
    monkeypatch.setenv("VORTEXT_LOG_PHONE_NUMBERS", "1")
    (record,) = await finish_in_background(Fault.ok(), caplog)
    assert f"sent to {NUMBER}" in record.getMessage()
    caplog.clear()
    (record,) = await finish_in_background(Fault.ok(), caplog, log_phone_numbers=False)
    assert NUMBER not in record.getMessage()
