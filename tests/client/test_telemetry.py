"""OpenTelemetry: the metrics and the span of each send, read with the SDK's in-memory reader.

The SDK's global providers can be set once per process: the fixture sets them on
first use for the rest of the run (delta temporality, so each test reads only its
own points), and the spans are kept only while a test records them.  That OTel
costs nothing when absent is checked in a subprocess that cannot import it.
"""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

pytest.importorskip("opentelemetry.sdk")

from opentelemetry import metrics, trace
from opentelemetry.sdk.metrics import (
    Counter,
    Histogram,
    MeterProvider,
    ObservableCounter,
    ObservableGauge,
    ObservableUpDownCounter,
    UpDownCounter,
)
from opentelemetry.sdk.metrics.export import AggregationTemporality, InMemoryMetricReader
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from vortext_async import (
    InvalidRequestError,
    RateLimit,
    RetryPolicy,
    VortextClient,
    aiohttp_transport,
)
from vortext_async.emulator import Emulator, serve_emulator
from vortext_async.testing import VirtualClock, emulator_client

ROOT = Path(__file__).resolve().parents[2]
PHONE = "+33611272727"
TEXT = "Your code is 1234"


class _Gate(SimpleSpanProcessor):
    """Exports spans only while a test records (other tests' spans are dropped)."""

    recording = False

    def on_end(self, span: ReadableSpan) -> None:
        if self.recording:
            super().on_end(span)


class Otel:
    def __init__(self) -> None:
        delta = AggregationTemporality.DELTA
        self.reader = InMemoryMetricReader(
            preferred_temporality=dict.fromkeys(
                (
                    Counter,
                    UpDownCounter,
                    Histogram,
                    ObservableCounter,
                    ObservableUpDownCounter,
                    ObservableGauge,
                ),
                delta,
            )
        )
        self.exporter = InMemorySpanExporter()
        self.gate = _Gate(self.exporter)
        tracer_provider = TracerProvider()
        tracer_provider.add_span_processor(self.gate)
        metrics.set_meter_provider(MeterProvider(metric_readers=[self.reader]))
        trace.set_tracer_provider(tracer_provider)

    def points(self) -> dict[str, list[tuple[dict[str, Any], Any]]]:
        """Each metric's points since the last call: (attributes, value or histogram)."""
        found: dict[str, list[tuple[dict[str, Any], Any]]] = {}
        data = self.reader.get_metrics_data()
        for resource in data.resource_metrics if data else ():
            for scope in resource.scope_metrics:
                if scope.scope.name != "vortext_async":
                    continue
                for metric in scope.metrics:
                    for point in metric.data.data_points:
                        value = getattr(point, "value", point)
                        found.setdefault(metric.name, []).append((dict(point.attributes), value))
        return found


_OTEL: Otel | None = None


@pytest.fixture
def otel() -> Iterator[Otel]:
    global _OTEL
    if _OTEL is None:
        _OTEL = Otel()
    _OTEL.points()  # drop what earlier tests recorded
    _OTEL.exporter.clear()
    _OTEL.gate.recording = True
    try:
        yield _OTEL
    finally:
        _OTEL.gate.recording = False
        _OTEL.exporter.clear()


def span_texts(span: ReadableSpan) -> list[str]:
    """What a span says in words: its name, status, attributes and events (not ids, times)."""
    texts = [span.name, span.status.description or ""]
    carriers = [
        span.attributes,
        *(e.attributes for e in span.events),
        *(k.attributes for k in span.links),
    ]
    texts += [e.name for e in span.events]
    for attributes in carriers:
        for key, value in (attributes or {}).items():
            values = value if isinstance(value, tuple | list) else (value,)
            texts += [key, *(str(v) for v in values)]
    return texts


def _sum(points: list[tuple[dict[str, Any], Any]], **attributes: str) -> int:
    return sum(
        value for found, value in points if all(found.get(k) == v for k, v in attributes.items())
    )


async def test_each_send_counts_times_and_traces_by_outcome(otel: Otel) -> None:
    clock = VirtualClock()
    emulator = Emulator(users={"demo": "demo"}, windows=[(1, 60.0)], clock=clock)
    in_flight_during: list[int] = []

    def handed_over() -> None:
        in_flight_during.append(_sum(otel.points().get("vortext.sends.in_flight", [])))

    async with emulator_client(emulator, clock=clock, rate_limit=RateLimit()) as client:
        await client.send(client_sms(), on_handover=handed_over)  # sent at once
        await client.send_sms(PHONE, TEXT)  # 429 (Retry-After 60), then sent
    async with emulator_client(emulator, password="wrong", clock=clock) as client:
        with pytest.raises(Exception, match="401"):
            await client.send_sms(PHONE, TEXT)  # failed: certainly not sent
    emulator.error_rate, emulator.error_statuses = 1.0, (500,)
    async with emulator_client(emulator, clock=clock) as client:
        with pytest.raises(Exception, match="may or may not"):
            await client.send_sms(PHONE, TEXT)  # uncertain

    assert in_flight_during == [1]
    points = otel.points()
    sends = points["vortext.sends"]
    assert (_sum(sends, outcome="sent"), _sum(sends, outcome="failed")) == (2, 1)
    assert _sum(sends, outcome="uncertain") == 1
    assert _sum(points["vortext.sends.in_flight"]) == -1  # back to 0 after the +1 read above
    durations = {found["outcome"]: value for found, value in points["vortext.send.duration"]}
    assert durations["sent"].count == 2
    assert durations["sent"].sum == pytest.approx(60.0)  # the retried one waited 60 s
    assert (durations["failed"].count, durations["uncertain"].count) == (1, 1)
    assert points["vortext.retries"] == [({"reason": "rate_limited", "operation": "send"}, 1)]
    [(_, waits)] = points["vortext.limiter.wait"]
    # One per attempt: 3 for the two sent, 1 failed, 1 uncertain; the first one was
    # read already, by handed_over().
    assert waits.count == 4

    spans = otel.exporter.get_finished_spans()
    assert [span.name for span in spans] == ["vortext.send_sms"] * 4
    assert all(span.kind is SpanKind.CLIENT for span in spans)
    described = [(s.attributes["vortext.outcome"], s.attributes["vortext.attempts"]) for s in spans]
    assert described == [("sent", 1), ("sent", 2), ("failed", 1), ("uncertain", 1)]
    assert spans[0].status.status_code is StatusCode.UNSET
    assert [s.status.status_code for s in spans[2:]] == [StatusCode.ERROR] * 2
    assert [s.attributes["error.type"] for s in spans[2:]] == [
        "AuthenticationError",
        "UncertainSendError",
    ]
    for span in spans:  # never the phone number or the text
        texts = span_texts(span)
        assert "vortext.outcome" in texts  # what is checked is what the span carries
        assert not [t for t in texts if TEXT in t or "611272727" in re.sub(r"\D", "", t)]


async def test_a_send_refused_by_validation_counts_as_a_failed_send(otel: Otel) -> None:
    emulator = Emulator(users={"demo": "demo"})
    async with emulator_client(emulator) as client:
        with pytest.raises(InvalidRequestError, match="phone_number"):
            await client.send_sms("+1", TEXT)
        with pytest.raises(InvalidRequestError, match="metadata"):
            await client.send_sms(PHONE, TEXT, metadata={"when": object()})
    assert emulator.messages() == []
    points = otel.points()
    assert points["vortext.sends"] == [({"outcome": "failed"}, 2)]
    [(found, durations)] = points["vortext.send.duration"]
    assert (found, durations.count) == ({"outcome": "failed"}, 2)
    assert "vortext.sends.in_flight" not in points or _sum(points["vortext.sends.in_flight"]) == 0
    spans = otel.exporter.get_finished_spans()
    assert [span.name for span in spans] == ["vortext.send_sms"] * 2
    for span in spans:
        assert span.attributes is not None
        assert span.attributes["vortext.outcome"] == "failed"
        assert span.attributes["vortext.attempts"] == 0
        assert span.attributes["error.type"] == "InvalidRequestError"
        assert span.status.status_code is StatusCode.ERROR
        texts = span_texts(span)
        assert not [t for t in texts if TEXT in t or "611272727" in re.sub(r"\D", "", t)]


async def test_the_limiter_wait_is_measured(otel: Otel) -> None:
    clock = VirtualClock()
    emulator = Emulator(users={"demo": "demo"}, clock=clock)
    limit = RateLimit(windows=[(1, 10.0)])
    async with emulator_client(emulator, clock=clock, rate_limit=limit) as client:
        await asyncio.gather(client.send_sms(PHONE, "a"), client.send_sms(PHONE, "b"))
    [(_, waits)] = otel.points()["vortext.limiter.wait"]
    assert (waits.count, waits.sum) == (2, pytest.approx(10.0))


TRANSPORTS = ["default", "aiohttp", "fast"]


@pytest.mark.parametrize("transport", TRANSPORTS)
async def test_every_transport_reports_the_same(
    otel: Otel, transport: str, http_library: str
) -> None:
    options: dict[str, Any] = {}
    if transport == "aiohttp":
        options["transport"] = aiohttp_transport(http_library)  # type: ignore[arg-type]
    elif transport == "fast":
        options["transport"] = "aiohttp"
    emulator = Emulator(users={"acme": "pw"}, seed=1)
    async with (
        serve_emulator(emulator) as url,
        VortextClient(
            "acme",
            "pw",
            base_url=url,
            http_library=http_library,  # type: ignore[arg-type]
            retry=RetryPolicy.no_retries(),
            **options,
        ) as client,
    ):
        await asyncio.gather(*(client.send_sms(PHONE, f"n{i}") for i in range(3)))
    points = otel.points()
    assert points["vortext.sends"] == [({"outcome": "sent"}, 3)]
    assert [span.attributes["vortext.outcome"] for span in otel.exporter.get_finished_spans()] == [
        "sent"
    ] * 3


def client_sms() -> Any:
    from vortext_async import Sms

    return Sms(PHONE, TEXT)


def test_without_opentelemetry_installed_the_client_sends_and_records_nothing() -> None:
    script = textwrap.dedent(
        """
        import asyncio, sys
        sys.modules["opentelemetry"] = None  # as if not installed
        from vortext_async.emulator import Emulator
        from vortext_async.testing import emulator_client

        async def main():
            async with emulator_client(Emulator(users={"demo": "demo"})) as client:
                await client.send_sms("+33611272727", "hi")
                print(client._telemetry, "opentelemetry" in sys.modules and
                      sys.modules["opentelemetry"] is not None)

        asyncio.run(main())
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        cwd=ROOT,
        env={k: v for k, v in os.environ.items() if not k.startswith("OTEL")},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    assert done.stdout.split() == ["None", "False"]
