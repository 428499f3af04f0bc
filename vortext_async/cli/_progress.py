"""Where a bulk job stands, in numbers that hold: rates from the job's own clock, ETA from the caps.

The bar's rate used to come from rich's speed estimate, which a burst (the first
window's worth of sends at once, or results taken from a journal) inflated: a
0.3/s job ended at "324/s".  Its time left came from that speed, and after Ctrl-C
it still counted the messages that would never be sent.  Here:

- the rate over an interval counts only messages attempted in it (not results read
  from the journal, not bad input lines), over the interval's true length;
- the average rate is over the whole job's duration;
- the ETA comes from the caps (the limiter's windows: what is left beyond the tokens
  free now, at each window's sustained rate) and from the recent rate, whichever is
  longer; once the job is stopping there is no ETA, only what is left unsent.
"""

from __future__ import annotations

import json
import math
import os
import time
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Any

import attrs

from vortext_async import LimiterState


@attrs.define
class Counts:
    """The tally's numbers at one instant."""

    sent: int = 0
    failed: int = 0
    uncertain: int = 0
    resumed: int = 0
    bad_lines: int = 0
    unsent: int = 0
    """FAILED here without a server's answer: stopped before its turn, given up, not
    connected (bad input lines and journal results aside)."""
    skipped: int = 0
    """Held by another host of the job (a shared journal): done, not here."""

    @property
    def done(self) -> int:
        return self.sent + self.failed + self.uncertain

    @property
    def attempted(self) -> int:
        """Finished here by a server's outcome: sent, refused by it, or uncertain.

        Not results read from the journal, bad lines, nor messages that failed
        without an answer (after Ctrl-C, those waiting for their turn fail at once:
        they are no sends, and would make the rate jump).
        """
        return self.done - self.resumed - self.bad_lines - self.unsent


def eta_seconds(left: int, state: LimiterState | None, recent_rate: float | None) -> float | None:
    """Seconds until ``left`` more messages are done, or None when unknown.

    The caps give a floor: the slowest window's time for what its free tokens do not
    cover, plus a 429 pause still running.  The recent rate gives the pace the job
    actually keeps (latency, concurrency); the ETA is the longer of the two.
    """
    if left <= 0:
        return 0.0
    eta: float | None = None
    if state is not None and state.windows:
        eta = max(
            max(0, left - window.tokens_left) * window.seconds / window.max_sends
            for window in state.windows
        )
        eta += state.paused_until or 0.0
    if recent_rate:
        eta = max(eta or 0.0, left / recent_rate)
    return eta


def clock_text(seconds: float | None) -> str:
    """``0:02:05``, or ``--:--:--`` when unknown."""
    if seconds is None or not math.isfinite(seconds):
        return "--:--:--"
    whole = round(seconds)
    return f"{whole // 3600}:{whole % 3600 // 60:02d}:{whole % 60:02d}"


def rate_text(rate: float | None) -> str:
    """``12.5/s``, or ``0.33/s`` for a slow job; ``--/s`` when unknown."""
    if rate is None:
        return "--/s"
    return f"{rate:,.1f}/s" if rate >= 10 else f"{rate:.2f}/s"


class JobProgress:
    """The figures of a running job, read by the bar and by the plain progress lines.

    Args:
        total: messages in the input, or None when unknown (standard input).
        window: seconds of the bar's recent rate.
        clock: the time source (seconds).
    """

    def __init__(
        self,
        total: int | None,
        *,
        window: float = 10.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.total = total
        self.window = window
        self.stopping = False
        self.finished = False
        self._clock = clock
        self._start = clock()
        self._end: float | None = None
        self._samples: deque[tuple[float, int]] = deque([(self._start, 0)])
        self._line_at = (self._start, 0)

    def elapsed(self) -> float:
        end = self._end if self._end is not None else self._clock()
        return end - self._start

    def finish(self) -> None:
        """The job is over: rates become the job's average, no ETA."""
        if self._end is None:
            self._end = self._clock()
        self.finished = True

    def sample(self, counts: Counts) -> None:
        """Record where the job stands now (called on each refresh)."""
        now = self._clock()
        self._samples.append((now, counts.attempted))
        while len(self._samples) > 2 and self._samples[1][0] <= now - self.window:
            self._samples.popleft()

    def average_rate(self, counts: Counts) -> float | None:
        elapsed = self.elapsed()
        return counts.attempted / elapsed if elapsed > 0 else None

    def recent_rate(self, counts: Counts) -> float | None:
        """Messages attempted per second over the last ``window`` seconds."""
        if self.finished:
            return self.average_rate(counts)
        now = self._clock()
        since, attempted = self._samples[0]
        if now - since <= 0:
            return None
        return (counts.attempted - attempted) / (now - since)

    def left(self, counts: Counts) -> int | None:
        if self.total is None:
            return None
        return max(self.total - counts.done - counts.skipped, 0)

    def eta(self, counts: Counts, state: LimiterState | None) -> float | None:
        left = self.left(counts)
        if self.finished or self.stopping or left is None:
            return None
        return eta_seconds(left, state, self.recent_rate(counts))

    def eta_text(self, counts: Counts, state: LimiterState | None) -> str:
        if self.finished:
            return "done" if not self.left(counts) else "stopped"
        if self.stopping:
            return "stopping"
        return clock_text(self.eta(counts, state))

    def line(self, counts: Counts, state: LimiterState | None) -> str:
        """One plain progress line; its rate is over the time since the previous line."""
        now = self._end if self._end is not None else self._clock()
        since, attempted = self._line_at
        self._line_at = (now, counts.attempted)
        interval = now - since
        rate = (counts.attempted - attempted) / interval if interval > 0 else 0.0
        left = self.left(counts)
        queued = "?" if left is None else f"{left}"
        if self.finished:
            eta = "done" if not left else f"stopped, {left} not sent"
        elif self.stopping:
            eta = f"stopping, {queued} not sent"
        else:
            eta = clock_text(eta_seconds(left, state, rate or None) if left is not None else None)
        return (
            f"progress: elapsed {clock_text(self.elapsed())} sent {counts.sent} "
            f"failed {counts.failed} uncertain {counts.uncertain} queued {queued} "
            f"rate {rate_text(rate)} over {interval:.1f} s eta {eta}"
        )


def check_summary_json(path: Path) -> None:
    """Raise ``OSError`` now if ``path`` cannot be written, before the job sends anything.

    The file is created if missing (empty until the job ends), with the umask's mode:
    unlike the journal and the report (0600), it holds counts only, no phone number.
    """
    if path.is_dir():
        raise IsADirectoryError(21, "Is a directory", str(path))
    os.close(os.open(path, os.O_WRONLY | os.O_CREAT, 0o666))


def summary_json(path: Path, data: dict[str, Any]) -> None:
    """Write the final summary as JSON (``--summary-json``)."""
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
