"""OpenTelemetry metrics and traces of sends, when ``opentelemetry-api`` is installed.

The client takes the global meter and tracer providers once, at construction
(configure the SDK first).  When the API is not installed, or no SDK provider is
set (the API's proxies would record nothing), :func:`telemetry` returns ``None``
and a send pays one ``is None`` test.

Instruments (meter ``vortext_async``):

- counter ``vortext.sends``, attribute ``outcome`` = ``sent`` | ``failed`` | ``uncertain``;
- histogram ``vortext.send.duration`` (s): one point per send, any outcome, waits included;
- histogram ``vortext.limiter.wait`` (s): one point per attempt, the rate limiter's wait;
- up-down counter ``vortext.sends.in_flight``: sends started and not finished;
- counter ``vortext.retries``, attributes ``reason`` (the error, e.g. ``rate_limited``)
  and ``operation`` (``send`` or ``read``).

A span ``vortext.send_sms`` (kind CLIENT) per send, with ``vortext.outcome`` and
``vortext.attempts``, and ``error.type`` when not sent: never the phone number, the
text or the metadata.  A send refused for bad input before any attempt is a send too
(``failed``, no attempt).  It is current while the send runs, so HTTP instrumentation
spans nest under it.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any, Final

from ._clock import Clock
from ._errors import VortextError
from ._version import __version__

if TYPE_CHECKING:
    from ._models import SentSms

__all__ = ["Telemetry", "reason_of", "telemetry"]

_NS: Final = 1_000_000_000
_NAME: Final = "vortext_async"
_SENT: Final = {"outcome": "sent"}
_FAILED: Final = {"outcome": "failed"}
_UNCERTAIN: Final = {"outcome": "uncertain"}


def reason_of(error: BaseException) -> str:
    """``RateLimitedError`` -> ``rate_limited``: the error class as a metric attribute."""
    name = type(error).__name__.removesuffix("Error") or type(error).__name__
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


class _Handover:
    """Counts the attempts handed to the transport, then calls the caller's hook."""

    __slots__ = ("count", "hook")

    def __init__(self, hook: Callable[[], object] | None) -> None:
        self.count = 0
        self.hook = hook

    def __call__(self) -> None:
        self.count += 1
        if self.hook is not None:
            self.hook()


class Telemetry:
    """The instruments and tracer of one client (see the module docstring).

    Args:
        meter_provider: an OpenTelemetry ``MeterProvider``, or None for no metrics.
        tracer_provider: an OpenTelemetry ``TracerProvider``, or None for no spans.
        clock: the client's clock, which times the sends and the limiter waits.
    """

    def __init__(self, meter_provider: Any, tracer_provider: Any, clock: Clock) -> None:
        from opentelemetry import trace

        self._clock = clock
        self._trace = trace
        self.metrics = meter_provider is not None
        self.tracer: Any = (
            tracer_provider.get_tracer(_NAME, __version__) if tracer_provider is not None else None
        )
        if meter_provider is None:
            return
        meter = meter_provider.get_meter(_NAME, __version__)
        self.sends = meter.create_counter(
            "vortext.sends", unit="{send}", description="Sends finished, by outcome."
        )
        self.duration = meter.create_histogram(
            "vortext.send.duration",
            unit="s",
            description="Duration of a send, rate-limit and retry waits included.",
        )
        self.limiter_wait = meter.create_histogram(
            "vortext.limiter.wait",
            unit="s",
            description="Time an attempt waited for the rate limiter.",
        )
        self.in_flight = meter.create_up_down_counter(
            "vortext.sends.in_flight", unit="{send}", description="Sends started, not finished."
        )
        self.retries = meter.create_counter(
            "vortext.retries", unit="{retry}", description="Attempts retried, by reason."
        )

    def waited(self, since_ns: int) -> None:
        """An attempt got its turn from the limiter, having asked at ``since_ns``."""
        if self.metrics:
            self.limiter_wait.record((self._clock.now_ns() - since_ns) / _NS)

    def retried(self, error: BaseException, operation: str) -> None:
        """An attempt failed and will be tried again."""
        if self.metrics:
            self.retries.add(1, {"reason": reason_of(error), "operation": operation})

    async def send(
        self,
        run: Callable[[Callable[[], object]], Awaitable[SentSms]],
        on_handover: Callable[[], object] | None,
    ) -> SentSms:
        """Run one send (``run(on_handover)``), measured and traced."""
        start = self._clock.now_ns()
        handover = _Handover(on_handover)
        span = None
        if self.tracer is not None:
            span = self.tracer.start_span("vortext.send_sms", kind=self._trace.SpanKind.CLIENT)
        if self.metrics:
            self.in_flight.add(1)
        attributes = _UNCERTAIN
        attempts = 0
        error_type: str | None = None
        try:
            if span is None:
                result = await run(handover)
            else:
                with self._trace.use_span(
                    span, record_exception=False, set_status_on_exception=False
                ):
                    result = await run(handover)
            attributes = _SENT
            attempts = handover.count
            return result
        except VortextError as error:
            attributes = _FAILED if error.certainly_not_sent else _UNCERTAIN
            attempts = error.attempts
            error_type = type(error).__name__
            raise
        except BaseException as error:  # cancelled: sent nothing, or may go on
            attributes = _UNCERTAIN if handover.count else _FAILED
            attempts = handover.count
            error_type = type(error).__name__
            raise
        finally:
            if self.metrics:
                self.in_flight.add(-1)
            self._finish(start, span, attributes, attempts, error_type)

    def refused(self, error: BaseException, start_ns: int) -> None:
        """A send refused before its first attempt (bad input, begun at ``start_ns``).

        It counts as any send does: one ``failed`` point of ``vortext.sends`` and of
        ``vortext.send.duration``, and a span with no attempt.
        """
        span = None
        if self.tracer is not None:
            span = self.tracer.start_span("vortext.send_sms", kind=self._trace.SpanKind.CLIENT)
        self._finish(start_ns, span, _FAILED, 0, type(error).__name__)

    def _finish(
        self,
        start: int,
        span: Any,
        attributes: dict[str, str],
        attempts: int,
        error_type: str | None,
    ) -> None:
        if self.metrics:
            self.sends.add(1, attributes)
            self.duration.record((self._clock.now_ns() - start) / _NS, attributes)
        if span is not None:
            span.set_attribute("vortext.outcome", attributes["outcome"])
            span.set_attribute("vortext.attempts", attempts)
            if error_type is not None:
                span.set_attribute("error.type", error_type)
                span.set_status(self._trace.Status(self._trace.StatusCode.ERROR, error_type))
            span.end()


def _is_real(provider: object, *placeholders: object) -> bool:
    return not any(
        isinstance(provider, placeholder)  # type: ignore[arg-type]
        for placeholder in placeholders
        if placeholder is not None
    )


def telemetry(clock: Clock) -> Telemetry | None:
    """The client's telemetry from the global providers, or None (nothing to record)."""
    try:
        from opentelemetry import metrics, trace
    except ImportError:
        return None
    from opentelemetry.metrics import _internal as metrics_internal

    meter_provider: Any = metrics.get_meter_provider()
    tracer_provider: Any = trace.get_tracer_provider()
    if not _is_real(
        meter_provider,
        metrics.NoOpMeterProvider,
        getattr(metrics_internal, "_ProxyMeterProvider", None),
    ):
        meter_provider = None
    if not _is_real(tracer_provider, trace.NoOpTracerProvider, trace.ProxyTracerProvider):
        tracer_provider = None
    if meter_provider is None and tracer_provider is None:
        return None
    return Telemetry(meter_provider, tracer_provider, clock)
