"""PUSH replies: read them (:func:`parse_push`) and receive them (:class:`PushReceiver`).

When a recipient answers an SMS, Vortext POSTs ``{"response": {"content",
"answeredAt"}, "message": {...the SMS...}}`` to your URL, with no authentication.
:class:`PushReceiver` is a plain ASGI application (no framework needed) that checks
the request, reads the body as a :class:`PushResponse` and hands it to your handler::

    from fastapi import FastAPI
    from vortext_async.webhooks import PushReceiver, PushResponse

    async def on_reply(push: PushResponse) -> None:
        print(push.message.metadata, push.response.content)

    app = FastAPI()
    app.mount("/vortext/push", PushReceiver(on_reply, path_token="<secret, see below>"))

Since anyone can POST to a URL, protect it: an unguessable ``path_token`` (see
:func:`new_path_token`), and ``allowed_networks`` when the sender's addresses are
known.  ``X-Forwarded-For`` is believed only from the proxies in ``trusted_proxies``.
"""

from __future__ import annotations

from ._receiver import (
    InvalidPushError,
    PushHandler,
    PushReceiver,
    PushReply,
    PushResponse,
    SmsDetail,
    new_path_token,
    parse_push,
)

__all__ = [
    "InvalidPushError",
    "PushHandler",
    "PushReceiver",
    "PushReply",
    "PushResponse",
    "SmsDetail",
    "new_path_token",
    "parse_push",
]
