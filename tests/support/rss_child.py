"""Run in a child process: one send to an edge server, and the peak RSS it cost.

``python tests/support/rss_child.py OK_URL EDGE_URL TRANSPORT`` (``httpcore`` or
``aiohttp``).  It first warms up (a send to ``OK_URL`` over the same transport, so
imports, pools and caches are paid for), then sends once to ``EDGE_URL`` and prints
one JSON line: the outcome's class, its cause, and ``peak_growth`` in bytes, the peak
RSS (``VmHWM``) after the send minus the RSS (``VmRSS``) before it.  When the kernel
lets us, the peak is reset first (``/proc/self/clear_refs``); otherwise the warm-up's
own peak only makes the growth look larger, never smaller than it was.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import importlib.util
import json
import sys
from typing import Any

from vortext_async import VortextClient, VortextError


def _status_kb(field: str) -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise RuntimeError(f"no {field} in /proc/self/status")


def _reset_peak() -> None:
    """Reset ``VmHWM`` to the current RSS, when the kernel lets us."""
    with contextlib.suppress(OSError), open("/proc/self/clear_refs", "w") as refs:
        refs.write("5")


def _client(base_url: str, transport: str) -> VortextClient:
    name = "httpx2" if importlib.util.find_spec("httpx2") else "httpx"
    lib = importlib.import_module(name)
    chosen: Any = "aiohttp" if transport == "aiohttp" else lib.AsyncHTTPTransport()
    return VortextClient("acme", "secret", base_url=base_url, transport=chosen)


async def main(ok_url: str, edge_url: str, transport: str) -> dict[str, object]:
    async with _client(ok_url, transport) as warm:
        await warm.send_sms("+33611272727", "warm up")
    async with _client(edge_url, transport) as client:
        _reset_peak()
        before = _status_kb("VmRSS")
        outcome: str = "sent"
        cause = ""
        try:
            await client.send_sms("+33611272727", "edge")
        except VortextError as error:
            outcome = type(error).__name__
            cause = str(getattr(error, "cause", error))[:300]
        peak = _status_kb("VmHWM")
    return {"outcome": outcome, "cause": cause, "peak_growth": (peak - before) * 1024}


if __name__ == "__main__":
    print(json.dumps(asyncio.run(main(*sys.argv[1:4]))))
