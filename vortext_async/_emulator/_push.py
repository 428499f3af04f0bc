"""PUSH replies: POST the documented body to the customer's URL, as Vortext would.

Uses httpx (a dependency of the package, not client code), imported lazily.  One
``AsyncClient`` per event loop is kept, so an emulator reused by several test
loops never touches a client bound to a closed loop.
"""

from __future__ import annotations

import asyncio
from datetime import datetime
from typing import TYPE_CHECKING, Any

from . import _wire

if TYPE_CHECKING:
    import httpx

    from ._store import ReceivedSms


def push_body(sms: ReceivedSms, content: str, answered_at: datetime) -> dict[str, Any]:
    """``{"response": {"content", "answeredAt"}, "message": {...the SMS detail...}}``."""
    return {
        _wire.PUSH_RESPONSE: {
            _wire.PUSH_CONTENT: content,
            _wire.PUSH_ANSWERED_AT: _wire.format_date(answered_at),
        },
        _wire.PUSH_MESSAGE: sms.to_wire(),
    }


class PushSender:
    """Posts PUSH bodies with no authentication and ``Content-Type: application/json``."""

    __slots__ = ("_client", "_loop", "timeout")

    def __init__(self, *, timeout: float = 10.0) -> None:
        self.timeout = timeout
        self._client: httpx.AsyncClient | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def post(self, url: str, body: dict[str, Any]) -> int:
        """POST ``body`` to ``url``; the receiver's status code."""
        response = await self._http().post(
            url, content=_wire.dump(body), headers={"Content-Type": "application/json"}
        )
        await response.aread()
        return response.status_code

    def _http(self) -> httpx.AsyncClient:
        import httpx

        loop = asyncio.get_running_loop()
        if self._client is None or self._loop is not loop or self._client.is_closed:
            self._client = httpx.AsyncClient(timeout=self.timeout, trust_env=False)
            self._loop = loop
        return self._client

    async def aclose(self) -> None:
        """Close the client of the running loop (a client of another loop is dropped)."""
        client, self._client = self._client, None
        loop, self._loop = self._loop, None
        if client is not None and loop is asyncio.get_running_loop():
            await client.aclose()
