"""Secrets never show: not in the frames of a failed send, not in a base URL's error text.

Error reporters (Sentry, for one) record the ``repr`` of every local variable of every
frame of a traceback, chained exceptions included.  A send is made to fail deep in
the transport, on every path, and every frame that is not this test's is searched for
the password and for the Basic token.
"""

from __future__ import annotations

import base64
import importlib
import itertools
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import pytest

from tests.support.faults import Fault, FaultServer, refused_url
from vortext_async import ConfigurationError, RetryPolicy, VortextClient, VortextError

PASSWORD = "hunter2-Pa55word"
TOKEN = base64.b64encode(f"user:{PASSWORD}".encode()).decode()
SECRETS = (PASSWORD, TOKEN)


def _shown(value: object) -> Iterator[str]:
    """``repr(value)``, then the ``repr`` of what it holds, one level down."""
    try:
        yield repr(value)
    except Exception as error:  # a half-built object; its repr cannot show anything
        yield f"<repr raised {type(error).__name__}>"
    inside: Iterator[object]
    if isinstance(value, dict):
        inside = itertools.chain(value.keys(), value.values())
    elif isinstance(value, list | tuple | set | frozenset):
        inside = iter(value)
    elif hasattr(value, "__dict__") and not isinstance(value, type | ModuleType):
        inside = iter(vars(value).values())
    else:
        slots = [name for cls in type(value).__mro__ for name in getattr(cls, "__slots__", ())]
        inside = (getattr(value, name, None) for name in slots if isinstance(name, str))
    for item in inside:
        try:
            yield repr(item)
        except Exception as error:  # a half-built object; its repr cannot show anything
            yield f"<repr raised {type(error).__name__}>"


def leaks(
    error: BaseException, *, least_frames: int = 6, secrets: tuple[str, ...] = SECRETS
) -> list[str]:
    """Where a secret shows in the frames of ``error`` and of every exception it chains."""
    found: list[str] = []
    seen: set[int] = set()
    pending: list[BaseException | None] = [error]
    frames = 0
    while pending:
        current = pending.pop()
        if current is None or id(current) in seen:
            continue
        seen.add(id(current))
        pending += [current.__cause__, current.__context__, getattr(current, "cause", None)]
        traceback = current.__traceback__
        while traceback is not None:
            frame = traceback.tb_frame
            traceback = traceback.tb_next
            if "/tests/" in frame.f_code.co_filename:
                continue  # the test's own locals (the server saw the header, of course)
            frames += 1
            for name, value in frame.f_locals.items():
                if any(secret in text for text in _shown(value) for secret in secrets):
                    found.append(f"{frame.f_code.co_filename}:{frame.f_code.co_name}: {name}")
    assert frames >= least_frames, "the failure did not go deep enough to prove anything"
    return found


PATHS = ["default", "aiohttp", "own http_client"]


def make_client(path: str, base_url: str, http_library: str) -> tuple[VortextClient, Any]:
    options: dict[str, Any] = {"retry": RetryPolicy(attempts=1), "http_library": http_library}
    own = None
    if path == "aiohttp":
        options["transport"] = "aiohttp"
    elif path == "own http_client":
        own = importlib.import_module(http_library).AsyncClient()
        options = {"retry": RetryPolicy(attempts=1), "http_client": own}
    return VortextClient("user", PASSWORD, base_url=base_url, **options), own


async def failure(path: str, base_url: str, http_library: str, call: str) -> VortextError:
    client, own = make_client(path, base_url, http_library)
    request = client.send_sms("+33611272727", "hi") if call == "send" else client.get_sms("m-1")
    try:
        async with client:
            with pytest.raises(VortextError) as caught:
                await request
    finally:
        if own is not None:
            await own.aclose()
    return caught.value


@pytest.mark.parametrize("path", PATHS)
@pytest.mark.parametrize("call", ["send", "read"])
async def test_no_frame_of_a_dropped_exchange_shows_the_credentials(
    path: str, call: str, http_library: str
) -> None:
    async with FaultServer(default=Fault.close()) as server:
        error = await failure(path, server.url, http_library, call)
    assert leaks(error) == []


@pytest.mark.parametrize("path", PATHS)
async def test_no_frame_of_a_refused_connection_shows_the_credentials(
    path: str, http_library: str
) -> None:
    with refused_url() as url:
        error = await failure(path, url, http_library, "send")
    assert leaks(error) == []


@pytest.mark.parametrize("path", PATHS)
async def test_the_credentials_still_go_out(path: str, http_library: str) -> None:
    async with FaultServer() as server:
        client, own = make_client(path, server.url, http_library)
        async with client:
            await client.send_sms("+33611272727", "hi")
            await client.get_sms("m-1")
        if own is not None:
            await own.aclose()
    assert [r.headers["authorization"] for r in server.requests] == [f"Basic {TOKEN}"] * 2


@pytest.mark.parametrize(
    "base_url",
    [
        "user:hunter2-Pa55word@messages.example",
        "user:hunter2-Pa55word@messages.example/path",
        "https://user:hunter2-Pa55word@messages.example",
        "ftp://user:hunter2-Pa55word@messages.example",
        "//user:hunter2-Pa55word@messages.example",
        "user:hunter2/Pa55word@messages.example",
        "https://messages.example/?token=hunter2-Pa55word",
        "https://messages.example/?key=hunter2-Pa55word#x",
    ],
)
def test_a_base_url_with_credentials_is_refused_without_echoing_them(base_url: str) -> None:
    with pytest.raises(ConfigurationError) as caught:
        VortextClient("user", "pass", base_url=base_url)
    text = str(caught.value)
    assert "hunter2" not in text
    assert "Pa55word" not in text
    assert "messages.example" in text
    assert "hunter2" not in repr(caught.value)


@pytest.mark.parametrize(
    "options",
    [
        {"base_url": "ftp://messages.example"},
        {"max_message_length": 0},
        {"transport": "carrier pigeon"},
    ],
)
def test_no_frame_of_a_refused_configuration_shows_the_password(options: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError) as caught:
        VortextClient("user", PASSWORD, **options)
    assert leaks(caught.value, least_frames=1) == []


def test_no_frame_of_a_refused_blocking_client_shows_the_password() -> None:
    from vortext_async.sync import VortextClient as BlockingClient

    with pytest.raises(ConfigurationError) as caught:
        BlockingClient("user", PASSWORD, base_url="ftp://messages.example")
    assert leaks(caught.value, least_frames=2) == []
