"""Answers are read as a stream, within a limit on their decoded size (issue 17, item 3).

Over ``max_response_bytes`` a send is uncertain (the server answered: it may have
accepted) and a read is an ``InvalidResponseError``; errors keep an excerpt, never
the body.  The memory proofs run one send in a child process against a real server
on loopback and read the child's peak RSS.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.faults import EdgeServer
from tests.support.transports import TRANSPORTS, open_client
from vortext_async import (
    DEFAULT_MAX_RESPONSE_BYTES,
    ConfigurationError,
    InvalidResponseError,
    RetryPolicy,
    ServerError,
    UncertainSendError,
    VortextClient,
)

PHONE = "+33611272727"
MiB = 1024 * 1024
EXCERPT = 2048  # bytes of a body an error keeps at most
HERE = Path(__file__).parent


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_2xx_answer_over_the_limit_makes_a_send_uncertain(kind: str) -> None:
    assert MiB == DEFAULT_MAX_RESPONSE_BYTES
    with EdgeServer() as server:
        async with open_client(kind, server.url_for(f"huge-{2 * MiB}")) as client:
            with pytest.raises(UncertainSendError) as caught:
                await client.send_sms(PHONE, "huge")
    cause = caught.value.cause
    assert isinstance(cause, InvalidResponseError)
    assert f"larger than the limit of {MiB} bytes" in str(cause)
    assert len(cause.body) <= EXCERPT
    assert len(str(caught.value)) < 2 * EXCERPT
    assert len(server.sends()) == 1  # never resent


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_gzip_bomb_is_cut_at_the_limit_of_its_decoded_size(kind: str) -> None:
    with EdgeServer() as server:
        async with open_client(
            kind, server.url_for("bomb-300"), max_response_bytes=64 * 1024
        ) as client:
            with pytest.raises(UncertainSendError) as caught:
                await client.send_sms(PHONE, "bomb")
            with pytest.raises(InvalidResponseError, match="larger than the limit of 65536"):
                await client.status()
    assert "larger than the limit of 65536 bytes" in str(caught.value.cause)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_a_read_over_the_limit_is_an_invalid_response(kind: str) -> None:
    with EdgeServer() as server:
        async with open_client(
            kind, server.url_for("huge-5000"), max_response_bytes=4096
        ) as client:
            with pytest.raises(InvalidResponseError, match="larger than the limit of 4096") as got:
                await client.get_sms("m-1", retry=RetryPolicy.no_retries())
    assert len(got.value.body) <= EXCERPT
    assert got.value.attempts == 1


@pytest.mark.parametrize("encoding", ["gzip", "deflate", "rawdeflate"])
@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_compressed_answers_within_the_limit_are_decoded(kind: str, encoding: str) -> None:
    with EdgeServer() as server:
        async with open_client(kind, server.url_for(encoding)) as client:
            sent = await client.send_sms(PHONE, "small")
            status = await client.status()
    assert sent.message_id == "m-1"
    assert status.status == "OK"


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_an_answer_in_an_encoding_we_do_not_decode_cannot_be_trusted(kind: str) -> None:
    with EdgeServer() as server:
        async with open_client(kind, server.url_for("br")) as client:
            with pytest.raises(UncertainSendError) as caught:
                await client.send_sms(PHONE, "brotli")
            with pytest.raises(InvalidResponseError, match="'br' is not one we decode"):
                await client.status()
    assert "'br' is not one we decode" in str(caught.value.cause)


@pytest.mark.parametrize("kind", TRANSPORTS)
async def test_an_error_keeps_an_excerpt_of_a_huge_body(kind: str) -> None:
    with EdgeServer() as server:
        async with open_client(kind, server.url_for(f"fail-{4 * MiB}")) as client:
            with pytest.raises(UncertainSendError) as caught:
                await client.send_sms(PHONE, "error")
    cause = caught.value.cause
    assert isinstance(cause, ServerError)
    assert cause.status_code == 500
    assert cause.body == b"e" * EXCERPT


@pytest.mark.parametrize("bad", [0, -1, 1.5, None, True])
def test_max_response_bytes_must_be_a_positive_integer(bad: object) -> None:
    with pytest.raises(ConfigurationError, match="max_response_bytes"):
        VortextClient("acme", "secret", max_response_bytes=bad)  # type: ignore[arg-type]


# -- memory, in a child process -----------------------------------------------------------


def _peak_growth(server: EdgeServer, edge: str, transport: str) -> dict[str, object]:
    """Run one send to ``edge`` in a child; its outcome and peak RSS growth in bytes."""
    done = subprocess.run(
        [
            sys.executable,
            str(HERE.parent / "support" / "rss_child.py"),
            server.url_for("ok"),
            server.url_for(edge),
            transport,
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


@pytest.mark.parametrize("transport", ["httpcore", "aiohttp"])
@pytest.mark.parametrize("edge", ["huge-50000000", "bomb-300"])
def test_peak_memory_grows_less_than_40_mb_for_a_huge_answer_or_a_gzip_bomb(
    edge: str, transport: str
) -> None:
    with EdgeServer() as server:
        result = _peak_growth(server, edge, transport)
    assert result["outcome"] == "UncertainSendError"
    assert "larger than the limit" in str(result["cause"])
    growth = result["peak_growth"]
    assert isinstance(growth, int)
    assert growth < 40 * 1000 * 1000, f"peak RSS grew by {growth / 1e6:.1f} MB"
