"""Run the example service against the Vortext emulator, in one command.

    python examples/fastapi_app/run.py [--port 8000] [--per-minute 30]

Starts the emulator (with the caps you give, and answering every SMS one second
later through the service's reply webhook) and the service, both on loopback,
until Ctrl-C.  Then, in another terminal:

    curl -i -X POST localhost:8000/notify -H 'content-type: application/json' \\
         -d '{"phone": "+33611272727", "text": "Your code is 1234", "ref": "order-42"}'
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from pathlib import Path

import uvicorn

from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.webhooks import new_path_token


async def main(port: int, emulator_port: int, per_minute: int) -> None:
    token = new_path_token()
    emulator = Emulator(
        users={"demo": "demo"},
        windows=[(per_minute, 60.0)],
        push_url=f"http://127.0.0.1:{port}/vortext/push/{token}",
        reply_rate=1.0,
        reply_delay=1.0,
        reply_content="Thanks!",
    )
    async with serve_emulator(emulator, port=emulator_port) as emulator_url:
        os.environ.update(
            VORTEXT_USERNAME="demo",
            VORTEXT_PASSWORD="demo",
            VORTEXT_BASE_URL=emulator_url,
            NOTIFY_PER_MINUTE=str(per_minute),
            NOTIFY_PUSH_TOKEN=token,
        )
        sys.path.insert(0, str(Path(__file__).parent))
        import app  # reads the environment above

        print(f"emulator on {emulator_url} ({per_minute} SMS per minute)")
        print(f"service on http://127.0.0.1:{port}: POST /notify, GET /health, GET /docs")
        # No access log: it would print the webhook's secret path; the app logs each send.
        config = uvicorn.Config(
            app.app, host="127.0.0.1", port=port, log_level="info", access_log=False
        )
        await uvicorn.Server(config).serve()  # until Ctrl-C or SIGTERM


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--emulator-port", type=int, default=8025)
    parser.add_argument("--per-minute", type=int, default=30)
    options = parser.parse_args()
    asyncio.run(main(options.port, options.emulator_port, options.per_minute))
