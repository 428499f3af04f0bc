"""Rolling-window caps per account, as a strict server would count them.

A send counted at instant ``t`` fits window ``(N, W)`` when fewer than ``N`` sends
of the same account were counted in ``(t - W, t]``.  Instants are integer
nanoseconds of the emulator's clock.  Callers hold the emulator's lock.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

_NS = 1_000_000_000


@dataclass(frozen=True, slots=True)
class Verdict:
    """Which windows a send would exceed, and when it would fit (ns from now)."""

    exceeded: tuple[int, ...]
    wait_ns: int

    @property
    def fits(self) -> bool:
        return not self.exceeded


def check_windows(windows: Iterable[tuple[int, float]]) -> tuple[tuple[int, float], ...]:
    """Validate ``(max_sends, seconds)`` pairs: a positive integer and positive seconds."""
    checked = []
    for window in windows:
        try:
            max_sends, seconds = window
        except (TypeError, ValueError):
            raise ValueError(
                f"windows: expected (max_sends, seconds) pairs, got {window!r}"
            ) from None
        if isinstance(max_sends, bool) or not isinstance(max_sends, int) or max_sends < 1:
            raise ValueError(f"windows: max_sends must be a positive integer, got {max_sends!r}")
        if isinstance(seconds, bool) or not isinstance(seconds, int | float) or not seconds > 0:
            raise ValueError(f"windows: seconds must be positive, got {seconds!r}")
        checked.append((max_sends, float(seconds)))
    return tuple(checked)


class RollingWindows:
    """The counted sends of each account, one log per window, oldest first."""

    __slots__ = ("_logs", "_windows")

    def __init__(self, windows: tuple[tuple[int, float], ...]) -> None:
        self._windows = tuple((n, round(w * _NS)) for n, w in windows)
        self._logs: dict[str, tuple[deque[int], ...]] = {}

    def check(self, account: str, now_ns: int) -> Verdict:
        """Would a send counted now exceed a window?  Drops expired entries."""
        logs = self._logs.get(account)
        if logs is None:
            return Verdict((), 0)
        exceeded: list[int] = []
        wait_ns = 0
        for index, ((max_sends, width), log) in enumerate(zip(self._windows, logs, strict=True)):
            while log and log[0] <= now_ns - width:
                log.popleft()
            if len(log) >= max_sends:
                exceeded.append(index)
                # It fits once the (len - max_sends + 1) oldest entries have left.
                wait_ns = max(wait_ns, log[len(log) - max_sends] + width - now_ns)
        return Verdict(tuple(exceeded), wait_ns)

    def record(self, account: str, now_ns: int) -> None:
        """Count one send of ``account`` at ``now_ns``."""
        logs = self._logs.get(account)
        if logs is None:
            logs = self._logs[account] = tuple(deque() for _ in self._windows)
        for log in logs:
            log.append(now_ns)
