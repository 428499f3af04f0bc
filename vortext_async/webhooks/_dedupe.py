"""The pushes handled recently, so a repeated push reaches the handler once.

A push is identified by its message id, its content and its ``answeredAt`` instant,
kept as a SHA-256 digest (32 bytes whatever the reply's size).  Entries are kept in
the order they were added, which is also time order, so expiry and the size bound
both drop from the front: memory is bounded by ``max_entries``.
"""

from __future__ import annotations

import datetime as _dt
import hashlib
import json
from collections import OrderedDict

from vortext_async._models import PushResponse

__all__ = ["SeenPushes", "push_key"]

_EPOCH = _dt.datetime(1970, 1, 1, tzinfo=_dt.UTC)


def push_key(push: PushResponse) -> bytes:
    """The identity of a push: same message, same content, same instant (in any offset)."""
    # A difference of aware datetimes never overflows, unlike astimezone() near year 1.
    since = push.response.answered_at - _EPOCH
    instant = [since.days, since.seconds, since.microseconds]
    identity = json.dumps([push.message.message_id, push.response.content, instant])
    return hashlib.sha256(identity.encode()).digest()


class SeenPushes:
    """A time-ordered set of push keys, each remembered for ``window_ns``."""

    __slots__ = ("_entries", "max_entries", "window_ns")

    def __init__(self, window_ns: int, max_entries: int) -> None:
        self.window_ns = window_ns
        self.max_entries = max_entries
        self._entries: OrderedDict[bytes, int] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _expire(self, now_ns: int) -> None:
        entries = self._entries
        while entries:
            oldest = next(iter(entries.values()))
            if oldest + self.window_ns > now_ns:
                return
            entries.popitem(last=False)

    def seen(self, key: bytes, now_ns: int) -> bool:
        """True when ``key`` was added less than the window ago."""
        self._expire(now_ns)
        return key in self._entries

    def add(self, key: bytes, now_ns: int) -> None:
        """Remember ``key`` from ``now_ns``, forgetting the oldest entry when full."""
        self._expire(now_ns)
        self._entries.pop(key, None)
        while len(self._entries) >= self.max_entries:
            self._entries.popitem(last=False)
        self._entries[key] = now_ns
