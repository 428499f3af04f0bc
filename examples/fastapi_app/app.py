"""A FastAPI service that sends SMS and receives the replies, on vortext-async.

- ``POST /notify`` ``{"phone": "+33611272727", "text": "Your code is 1234", "ref": "order-42"}``
  awaits the send with a wait budget and answers ``{"messageId": ...}``; when the
  account's caps would hold it longer, ``429`` with ``Retry-After`` (and ``503`` when
  Vortext itself refuses or the service is stopping).
- ``POST /vortext/push/<token>`` receives the replies Vortext posts back
  (:class:`~vortext_async.webhooks.PushReceiver`); ``ref`` comes back in the reply's
  metadata, so a reply is matched to its notification.
- ``GET /health``: the rate limiter's state, for monitoring.

Every send's outcome is logged (logger ``notify``), including those that finish in
the background after their caller went away, and those cut at shutdown.

Configuration (environment): ``VORTEXT_USERNAME``, ``VORTEXT_PASSWORD``,
``VORTEXT_BASE_URL`` (the client's own); ``VORTEXT_REDIS_URL`` to share the caps
between workers; ``NOTIFY_PER_MINUTE``, ``NOTIFY_PER_HOUR`` (the account's caps) and
``NOTIFY_WINDOWS`` (extra ``N:SECONDS`` caps, comma-separated); ``NOTIFY_MAX_WAIT``
(seconds, default 2); ``NOTIFY_SHUTDOWN_GRACE`` (seconds, default 10);
``NOTIFY_PUSH_TOKEN`` (the secret path of the reply webhook).

Run it against the emulator with ``python examples/fastapi_app/run.py``.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Mapping
from typing import Any

from fastapi import FastAPI
from pydantic import BaseModel, Field

from vortext_async import Outcome, RateLimit, SendResult
from vortext_async.fastapi import (
    CancelOnDisconnect,
    VortextClientDep,
    install_error_handlers,
    vortext_lifespan,
)
from vortext_async.webhooks import PushReceiver, PushResponse

log = logging.getLogger("notify")


class Notification(BaseModel):
    phone: str = Field(examples=["+33611272727"])
    text: str = Field(examples=["Your code is 1234"])
    ref: str | None = Field(default=None, description="your id; comes back with replies")


def log_outcome(outcome: str, ref: str | None, detail: str, *, background: bool) -> None:
    """One line per send: what the service knows about it."""
    level = logging.INFO if outcome == Outcome.SENT.value else logging.WARNING
    where = "background" if background else "request"
    log.log(level, "outcome=%s ref=%s via=%s %s", outcome, ref or "-", where, detail)


def on_background_result(result: SendResult) -> None:
    """A send whose caller went away (hung up, timed out, or cut at shutdown)."""
    ref = (result.sms.metadata or {}).get("ref")
    detail = f"message_id={result.message_id}" if result.message_id else f"error={result.error}"
    log_outcome(result.outcome.value, ref, detail, background=True)


async def on_reply(push: PushResponse) -> None:
    """A recipient answered: match it to the notification by its ``ref``."""
    ref = (push.message.metadata or {}).get("ref")
    log.info(
        "reply ref=%s message_id=%s content=%r", ref, push.message.message_id, push.response.content
    )


def rate_limit_from(env: Mapping[str, str]) -> RateLimit:
    """The account's caps from ``NOTIFY_PER_MINUTE``, ``NOTIFY_PER_HOUR``, ``NOTIFY_WINDOWS``."""
    windows = tuple(
        (int(n), float(seconds))
        for n, seconds in (
            part.split(":") for part in env.get("NOTIFY_WINDOWS", "").split(",") if part.strip()
        )
    )
    per_minute = env.get("NOTIFY_PER_MINUTE")
    per_hour = env.get("NOTIFY_PER_HOUR")
    return RateLimit(
        per_minute=int(per_minute) if per_minute else None,
        per_hour=int(per_hour) if per_hour else None,
        windows=windows,
    )


def create_app(
    env: Mapping[str, str] = os.environ,
    *,
    on_reply: Callable[[PushResponse], Any] = on_reply,
    **client_options: Any,
) -> FastAPI:
    """The service; ``client_options`` go to the ``VortextClient`` (tests)."""
    max_wait = float(env.get("NOTIFY_MAX_WAIT", "2.0"))
    for option, variable in (
        ("username", "VORTEXT_USERNAME"),
        ("password", "VORTEXT_PASSWORD"),
        ("base_url", "VORTEXT_BASE_URL"),
    ):
        client_options.setdefault(option, env.get(variable))
    client_options.setdefault("shutdown_grace", float(env.get("NOTIFY_SHUTDOWN_GRACE", "10")))
    client_options.setdefault("on_background_result", on_background_result)
    app = FastAPI(
        title="notify",
        lifespan=vortext_lifespan(
            rate_limit=rate_limit_from(env),
            redis_url=env.get("VORTEXT_REDIS_URL"),
            **client_options,
        ),
    )
    install_error_handlers(app)
    app.add_middleware(CancelOnDisconnect)  # a caller who hangs up cancels its request

    @app.post("/notify")
    async def notify(body: Notification, client: VortextClientDep) -> dict[str, str]:
        metadata = {"ref": body.ref} if body.ref else None
        try:
            sent = await client.send_sms(
                body.phone, body.text, metadata=metadata, max_wait=max_wait
            )
        except Exception as error:
            certain = getattr(error, "certainly_not_sent", True)
            outcome = Outcome.FAILED if certain else Outcome.UNCERTAIN
            log_outcome(outcome.value, body.ref, f"error={type(error).__name__}", background=False)
            raise  # answered by install_error_handlers (429, 503, 502, 422) or a 500
        log_outcome("sent", body.ref, f"message_id={sent.message_id}", background=False)
        return {"messageId": sent.message_id}

    @app.get("/health")
    async def health(client: VortextClientDep) -> dict[str, Any]:
        state = client.limiter.state()
        return {
            "closing": client.closed,
            "queued": state.queued,
            "inFlight": state.in_flight,
            "pausedFor": state.paused_until,
            "tokensLeft": [w.tokens_left for w in state.windows],
        }

    token = env.get("NOTIFY_PUSH_TOKEN")
    app.mount("/vortext/push", PushReceiver(on_reply, path_token=token))
    return app


logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
for noisy in ("httpx", "httpx2"):
    logging.getLogger(noisy).setLevel(logging.WARNING)
app = create_app()
