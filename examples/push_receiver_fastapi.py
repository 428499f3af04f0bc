"""Receive Vortext's PUSH replies in a FastAPI app.

Run it (``pip install 'vortext-async[fastapi]'``)::

    export VORTEXT_PUSH_TOKEN=$(python -c \
        "from vortext_async.webhooks import new_path_token; print(new_path_token())")
    python examples/push_receiver_fastapi.py

then give Vortext the URL it prints (behind your HTTPS proxy), or try it::

    curl -i -H 'Content-Type: application/json' --data \
      '{"response": {"content": "Yes", "answeredAt": "2020-02-12T13:00:00.000+0000"},
        "message": {"messageId": "m-1", "phoneNumber": "+3361127272727",
                    "message": "Please call me", "metadata": {"myCustomerId": "123de32"}}}' \
      http://127.0.0.1:8000/vortext/push/$VORTEXT_PUSH_TOKEN

Settings (environment): ``VORTEXT_PUSH_TOKEN`` (the secret path part; a random one
is made when unset), ``VORTEXT_PUSH_NETWORKS`` (comma-separated networks allowed to
push; any source when unset), ``HOST`` and ``PORT``.
"""

from __future__ import annotations

import logging
import os

import uvicorn
from fastapi import FastAPI

from vortext_async.webhooks import PushReceiver, PushResponse, new_path_token

log = logging.getLogger("push_example")


async def on_reply(push: PushResponse) -> None:
    """Called once per reply; raise to answer 500 so Vortext may send it again."""
    customer = (push.message.metadata or {}).get("myCustomerId")
    # Store push.response.content with your customer here; keep it out of the logs.
    log.info(
        "reply to %s (customer %s) at %s: %d characters",
        push.message.message_id,
        customer,
        push.response.answered_at.isoformat(),
        len(push.response.content),
    )


token = os.environ.get("VORTEXT_PUSH_TOKEN") or new_path_token()
networks = [n for n in os.environ.get("VORTEXT_PUSH_NETWORKS", "").split(",") if n.strip()]

app = FastAPI()
app.mount(
    "/vortext/push",
    PushReceiver(on_reply, path_token=token, allowed_networks=networks or None),
)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


if __name__ == "__main__":
    logging.basicConfig(level=logging.INFO)
    host, port = os.environ.get("HOST", "127.0.0.1"), int(os.environ.get("PORT", "8000"))
    print(f"PUSH URL: http://{host}:{port}/vortext/push/{token}")
    # No access log: it would write the secret path token of every push.
    uvicorn.run(app, host=host, port=port, access_log=False)
