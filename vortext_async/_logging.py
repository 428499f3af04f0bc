"""The library's logging: quiet by default, readable on demand, never one line per message.

- Every logger is under ``vortext_async`` (``vortext_async.client``, ``.retry``,
  ``.bulk``, ``.limiter``...).  The package logger has a :class:`logging.NullHandler`,
  so nothing reaches Python's last-resort handler: an application that does not
  configure logging sees nothing.
- ``VORTEXT_LOG=debug|info|warning`` (read at import, as ``OPENAI_LOG`` is) adds a
  readable handler on standard error, for scripts.
- :class:`FoldedLog` folds repeated warnings of one cause: the first is logged at
  once, the next ones within ``interval`` seconds (on the injected clock) are counted
  and logged as one line with the count.
- Records carry structured fields through ``extra=`` (``vortext_outcome``,
  ``vortext_attempt``, ``vortext_message_key``, ``vortext_count``...) for JSON
  formatters.  Phone numbers are masked to their last four digits (:func:`mask_phone`)
  unless ``VORTEXT_LOG_PHONE_NUMBERS=1`` is set.
"""

from __future__ import annotations

import logging
import os
import sys
from collections.abc import Mapping
from typing import Final

from ._clock import Clock

__all__ = [
    "ENV_LOG",
    "ENV_LOG_PHONE_NUMBERS",
    "FoldedLog",
    "get_logger",
    "mask_phone",
    "show_phone_numbers",
]

ENV_LOG: Final = "VORTEXT_LOG"
"""The environment variable that turns on a stderr handler: ``debug``, ``info``, ``warning``."""
ENV_LOG_PHONE_NUMBERS: Final = "VORTEXT_LOG_PHONE_NUMBERS"
"""Set to ``1`` to log phone numbers in full (default: masked to the last 4 digits)."""

_ROOT: Final = "vortext_async"
_LEVELS: Final = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}
_FORMAT: Final = "[%(asctime)s %(levelname)s %(name)s] %(message)s"
_NS: Final = 1_000_000_000

_package_logger = logging.getLogger(_ROOT)
_package_logger.addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The logger ``vortext_async.<name>``."""
    return logging.getLogger(f"{_ROOT}.{name}")


class _EnvHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """The handler ``VORTEXT_LOG`` installs (a class of its own, so it is found again)."""


def configure_from_environment(environ: Mapping[str, str] = os.environ) -> None:
    """Apply ``VORTEXT_LOG``: a readable stderr handler at that level, or nothing."""
    value = environ.get(ENV_LOG, "").strip().lower()
    if not value:
        return
    level = _LEVELS.get(value)
    if level is None:
        sys.stderr.write(
            f"vortext_async: ignoring {ENV_LOG}={value!r}: use debug, info or warning\n"
        )
        return
    if any(isinstance(handler, _EnvHandler) for handler in _package_logger.handlers):
        return
    handler = _EnvHandler(sys.stderr)
    handler.setFormatter(logging.Formatter(_FORMAT))
    _package_logger.addHandler(handler)
    _package_logger.setLevel(level)


def show_phone_numbers() -> bool:
    """Whether ``VORTEXT_LOG_PHONE_NUMBERS`` asks for whole phone numbers in logs."""
    return os.environ.get(ENV_LOG_PHONE_NUMBERS, "").strip().lower() in ("1", "true", "yes")


def mask_phone(phone_number: str, *, show: bool | None = None) -> str:
    """``+33611272727`` -> ``*******2727``: the last 4 characters, for logs.

    Returned whole when ``show`` is true, or when it is None and
    ``VORTEXT_LOG_PHONE_NUMBERS=1`` is set (a client's ``log_phone_numbers``).
    """
    if show if show is not None else show_phone_numbers():
        return phone_number
    if not isinstance(phone_number, str):
        return f"<{type(phone_number).__name__}>"
    if len(phone_number) <= 4:
        return "*" * len(phone_number)
    return "*" * (len(phone_number) - 4) + phone_number[-4:]


class _Fold:
    __slots__ = ("count", "extra", "first_ns", "level", "message")

    def __init__(self, first_ns: int) -> None:
        self.first_ns = first_ns
        self.count = 0
        self.level = logging.WARNING
        self.message = ""
        self.extra: dict[str, object] = {}


class FoldedLog:
    """Log the first event of a cause at once; fold the others into one line per interval.

    ``log(cause, level, message, extra)``: the first event of ``cause`` is logged; the
    next ones within ``interval`` seconds of it (on ``clock``) are counted, and the
    first event after the interval (or :meth:`flush`) logs one line: the count and
    the latest message, with ``vortext_count`` in its fields.  A steady stream of one
    cause thus gives one line per interval.

    Args:
        logger: where the lines go.
        clock: the time that measures the interval (the client's injected clock).
        interval: seconds of one fold.
    """

    def __init__(self, logger: logging.Logger, clock: Clock, *, interval: float = 10.0) -> None:
        self.logger = logger
        self.interval = interval
        self._clock = clock
        self._width = round(interval * _NS)
        self._folds: dict[str, _Fold] = {}

    def log(
        self, cause: str, level: int, message: str, extra: Mapping[str, object] | None = None
    ) -> bool:
        """Log ``message`` now, or count it in the current fold of ``cause``.

        Returns whether ``message`` was logged as it is, on a line of its own (False:
        folded into a count, or ``level`` is off).
        """
        if not self.logger.isEnabledFor(level):
            return False
        now = self._clock.now_ns()
        fold = self._folds.get(cause)
        if fold is not None and now - fold.first_ns < self._width:
            fold.count += 1
            fold.level, fold.message = level, message
            fold.extra = dict(extra) if extra else {}
            return False
        if fold is not None and fold.count:
            # A steady stream: this event closes the fold, counted in its line.
            fold.count += 1
            fold.level, fold.message = level, message
            fold.extra = dict(extra) if extra else {}
            self._emit(cause, fold, now)
            self._folds[cause] = _Fold(now)
            return False
        self._folds[cause] = _Fold(now)
        fields = {"vortext_cause": cause, "vortext_count": 1, **(extra or {})}
        self.logger.log(level, "%s", message, extra=fields)
        return True

    def flush(self) -> None:
        """Log the counts still folded (at the client's close)."""
        now = self._clock.now_ns()
        for cause, fold in self._folds.items():
            self._emit(cause, fold, now)
        self._folds.clear()

    def _emit(self, cause: str, fold: _Fold, now: int) -> None:
        if not fold.count:
            return
        seconds = (now - fold.first_ns) / _NS
        fields = {**fold.extra, "vortext_cause": cause, "vortext_count": fold.count}
        self.logger.log(
            fold.level,
            "%d more like this in the last %.0f s (%s), the latest: %s",
            fold.count,
            seconds,
            cause,
            fold.message,
            extra=fields,
        )
        fold.count = 0


configure_from_environment()
