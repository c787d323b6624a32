"""Traces: every turn as an OpenTelemetry trace that follows the GenAI semantic conventions, sent over
OTLP/HTTP to whatever the operators run (Jaeger, Tempo, Langfuse, Phoenix, a collector).

    with tracing.span("turn_store.claim"): ...          # a plain child of the current span
    tracing.traceparent()                                # the current span as a W3C traceparent, or ""
    with tracing.continued(traceparent): ...             # work queued by a turn continues its trace

Off unless OTEL_EXPORTER_OTLP_ENDPOINT (or OTEL_EXPORTER_OTLP_TRACES_ENDPOINT) is set: then `span()`
returns one shared do-nothing context manager and nothing else here runs, so a turn pays for an `if`.
On, spans go to a batch processor whose thread exports them; the SDK reads its other standard
variables itself (OTEL_EXPORTER_OTLP_HEADERS, _TIMEOUT, OTEL_BSP_*, OTEL_RESOURCE_ATTRIBUTES).

What callers said and the personas answered goes on spans only with
OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT=true (`capture_content()`): callers' words are personal
data, and so are their ids (phone numbers), which follow the same switch.
"""

import contextlib
import json
import logging

from django.conf import settings
from django.core.signals import setting_changed
from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

log = logging.getLogger(__name__)

SETTINGS = (
    "OTEL_EXPORTER_OTLP_ENDPOINT",
    "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",
    "OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT",
)
CLIENT = trace.SpanKind.CLIENT  # a call to another service (the model)
NOTHING = contextlib.nullcontext()  # what span() returns while tracing is off
PROPAGATOR = TraceContextTextMapPropagator()

_provider = None  # the SDK's TracerProvider while tracing is on
_tracer: trace.Tracer | None = None


def endpoint() -> str:
    """Where spans go: the traces endpoint, else the base endpoint's /v1/traces (the OTLP rule); ""
    for nowhere (tracing off)."""
    if settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_TRACES_ENDPOINT
    if settings.OTEL_EXPORTER_OTLP_ENDPOINT:
        return settings.OTEL_EXPORTER_OTLP_ENDPOINT.rstrip("/") + "/v1/traces"
    return ""


def configure() -> None:
    """Start (or stop) exporting as the settings say; called when the app is ready and when a test
    changes the settings. Spans in flight under the old settings are flushed first."""
    global _provider, _tracer
    shutdown()
    url = endpoint()
    if not url:
        return
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    provider = TracerProvider(resource=Resource.create({"service.name": settings.OTEL_SERVICE_NAME}))
    provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=url)))
    _provider, _tracer = provider, provider.get_tracer("tron")
    log.info("Tracing on: spans go to %s", url)


def shutdown() -> None:
    """Export what is buffered and stop."""
    global _provider, _tracer
    provider, _provider, _tracer = _provider, None, None
    if provider is not None:
        provider.shutdown()


def flush() -> None:
    """Export what is buffered now (tests, a task that ends its process)."""
    if _provider is not None:
        _provider.force_flush()


def _reconfigure(setting, **_kwargs):
    if setting in SETTINGS:
        configure()


setting_changed.connect(_reconfigure, dispatch_uid="agents.tracing.settings")


def on() -> bool:
    return _tracer is not None


def capture_content() -> bool:
    return _tracer is not None and settings.OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT


def span(name: str, attributes: dict | None = None, *, parent=None, kind=trace.SpanKind.INTERNAL):
    """A span named `name`, current within the `with`, a child of `parent` (an OpenTelemetry context)
    or of the current span. Exceptions end it with an error status. Off: NOTHING."""
    if _tracer is None:
        return NOTHING
    return _tracer.start_as_current_span(name, context=parent, kind=kind, attributes=attributes)


def parent_from(traceparent: str, tracestate: str = ""):
    """The context a W3C `traceparent` header names (a caller's, or the turn that queued a task); None
    when tracing is off or the header is missing or malformed (the span starts a trace of its own)."""
    if _tracer is None or not traceparent:
        return None
    carrier = {"traceparent": traceparent, **({"tracestate": tracestate} if tracestate else {})}
    extracted = PROPAGATOR.extract(carrier)
    return extracted if trace.get_current_span(extracted).get_span_context().is_valid else None


def traceparent() -> str:
    """The current span as a W3C traceparent, for work queued now (a django-q2 task); "" when off."""
    if _tracer is None:
        return ""
    carrier: dict = {}
    PROPAGATOR.inject(carrier)
    return carrier.get("traceparent", "")


def traceparent_of(trace_id: str, span_id: str) -> str:
    """A traceparent naming a span recorded earlier (a turn's ids, as its row keeps them)."""
    if _tracer is None or not (trace_id and span_id):
        return ""
    return f"00-{trace_id}-{span_id}-01"


@contextlib.contextmanager
def continued(traceparent_value: str):
    """Within: the span `traceparent_value` names is the current one, so what runs here (a queued
    task's turn) joins its trace. Off, or with no header: nothing changes."""
    parent = parent_from(traceparent_value)
    if parent is None:
        yield
        return
    token = otel_context.attach(parent)
    try:
        yield
    finally:
        otel_context.detach(token)


def ids(current) -> tuple[str, str]:
    """(trace id, span id) of a span as 32 and 16 hex digits; ("", "") for none or a do-nothing span."""
    if current is None:
        return "", ""
    found = current.get_span_context()
    if not found.is_valid:
        return "", ""
    return f"{found.trace_id:032x}", f"{found.span_id:016x}"


def as_json(value) -> str:
    """Structured content (messages, tool arguments) as a span attribute takes it: one JSON string."""
    return json.dumps(value, ensure_ascii=False, default=str)


def failed(current, error_type: str, message: str = "") -> None:
    """Mark a span as failed with `error.type` (an error's stable code, e.g. upstream_timeout)."""
    if current is None:
        return
    current.set_attribute("error.type", error_type)
    current.set_status(trace.Status(trace.StatusCode.ERROR, message or error_type))
