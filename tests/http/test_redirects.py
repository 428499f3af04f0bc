"""A 3xx answer to a send is uncertain, never followed, never resent (issue 17, item 5).

A server that took the SMS and then redirected would get it twice if the client
retried, followed the redirect, or a bulk rerun resent it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support.faults import EdgeServer
from tests.support.transports import TRANSPORTS, open_client
from vortext_async import (
    Outcome,
    RetryPolicy,
    Sms,
    UncertainSendError,
    UnexpectedStatusError,
    VortextClient,
)

PHONE = "+33611272727"


@pytest.mark.parametrize("status", [301, 302, 303, 307, 308])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_redirected_send_is_uncertain_and_made_once(kind: str, status: int) -> None:
    with EdgeServer() as server:
        async with open_client(
            kind, server.url_for(f"redirect-{status}"), retry=RetryPolicy(attempts=5)
        ) as client:
            with pytest.raises(UncertainSendError) as caught:
                await client.send_sms(PHONE, "moved")
    cause = caught.value.cause
    assert isinstance(cause, UnexpectedStatusError)
    assert cause.status_code == status
    assert not caught.value.certainly_not_sent
    assert caught.value.attempts == 1
    # One request, to /redirect-nnn/sms; the Location (/ok/sms) never asked.
    assert [(r.method, r.path) for r in server.requests] == [("POST", f"/redirect-{status}/sms")]


@pytest.mark.parametrize("status", [303, 307, 308])
async def test_a_bulk_rerun_does_not_resend_a_redirected_send(status: int, tmp_path: Path) -> None:
    journal = tmp_path / "job.sqlite"
    messages = [Sms(PHONE, "moved", key="only")]
    with EdgeServer() as server:
        for run in (1, 2):
            async with (
                VortextClient(
                    "acme", "secret", base_url=server.url_for(f"redirect-{status}")
                ) as client,
                client.send_bulk(messages, journal=journal, retry_failed=True) as job,
            ):
                results = [result async for result in job]
            assert [r.outcome for r in results] == [Outcome.UNCERTAIN]
            assert results[0].resumed is (run == 2)
        assert len(server.sends()) == 1
