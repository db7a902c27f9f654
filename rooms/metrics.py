"""What the rooms app measures for Prometheus: sync lag and ingest time per sync host, live-push
render time, open websockets, and the outbox backlog.

Hooks are one line where the work happens (a decorator on `services.sync_ingest`, a timed
`render_to_string` for notify, a gauge around the consumer), so the code they measure stays as
it was. Each process keeps its own figures in prometheus_client's default registry; the web
process serves them on /metrics and sync hosts on their own port (webclient/metrics.py). The
outbox backlog is one indexed query at scrape time, so it is the same from every process.
"""

import contextlib
import functools
import threading
import time
from collections.abc import Callable, Iterator

from django.conf import settings
from django.db import connection
from django.db.models import Count, Min
from django.template.loader import render_to_string as django_render_to_string
from django.utils import timezone
from prometheus_client import REGISTRY, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from rooms.models import OutboxMessage

# From a /sync response's arrival to its events committed: what a page waits for beyond the
# homeserver. Buckets reach the 30 s a backlogged host showed (issue 9).
SYNC_LAG = Histogram(
    "webclient_sync_lag_seconds",
    "Time from a /sync response arriving to its ingest commit, per sync host.",
    ["host"],
    buckets=(0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60),
)
INGEST_SECONDS = Histogram(
    "webclient_sync_ingest_seconds",
    "Time one /sync response's ingest transaction took.",
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
INGEST_FAILURES = Counter(
    "webclient_sync_ingest_failures",
    "Ingests that raised (lease lost, database error); the sync is retried or the account moves.",
)
RENDER_SECONDS = Histogram(
    "webclient_live_render_seconds",
    "Time to render one live-update fragment, by template fragment.",
    ["template"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1),
)
WEBSOCKETS = Gauge("webclient_websockets_open", "Websocket connections open in this process.")

_last_success: dict[str, float] = {}  # host id -> wall-clock time of its last successful ingest
_last_lock = threading.Lock()


def ingest_observed[F: Callable](function: F) -> F:
    """Decorate the ingest service: time it, and on success record the host's sync lag (from the
    batch's `received_at`) and its last successful sync."""

    @functools.wraps(function)
    def observed(*args, **kwargs):
        started = time.monotonic()
        try:
            result = function(*args, **kwargs)
        except Exception:
            INGEST_FAILURES.inc()
            raise
        finished = time.monotonic()
        INGEST_SECONDS.observe(finished - started)
        lease, batch = kwargs.get("lease"), kwargs.get("batch")
        host = getattr(lease, "owner", "") or "unknown"
        received_at = getattr(batch, "received_at", None)
        if received_at is not None:
            SYNC_LAG.labels(host=host).observe(max(0.0, finished - received_at))
        with _last_lock:
            _last_success[host] = time.time()
        return result

    return observed  # type: ignore[return-value]


def host_stopped(host_id: str) -> None:
    """A host ended: its series stop, so a stopped host never looks like a stuck one."""
    with _last_lock:
        _last_success.pop(host_id, None)
    with contextlib.suppress(KeyError):  # it never ingested
        SYNC_LAG.remove(host_id)


def render_to_string(template_name: str, context: dict | None = None, **kwargs) -> str:
    """Django's render_to_string, timed by template fragment (notify renders live pushes here)."""
    started = time.monotonic()
    try:
        return django_render_to_string(template_name, context, **kwargs)
    finally:
        RENDER_SECONDS.labels(template=template_name).observe(time.monotonic() - started)


class LastSyncCollector(Collector):
    """Seconds since each host in this process last ingested a sync: a quiet account still
    long-polls every SYNC_TIMEOUT_MS, so a host with accounts whose age grows well past that is
    stuck (or all its accounts are failing)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(
            "webclient_sync_last_success_age_seconds",
            "Seconds since this sync host last committed a /sync response.",
            labels=["host"],
        )
        now = time.time()
        with _last_lock:
            ages = [(host, now - at) for host, at in _last_success.items()]
        for host, age in ages:
            family.add_metric([host], max(0.0, age))
        yield family


def outbox_backlog() -> tuple[int, float]:
    """Messages waiting to be sent, and how long the oldest has waited (seconds; 0 when none).
    One query on the pending rows' partial index."""
    summary = OutboxMessage.objects.filter(status=OutboxMessage.PENDING).aggregate(
        depth=Count("id"), oldest=Min("created_at")
    )
    oldest = summary["oldest"]
    age = (timezone.now() - oldest).total_seconds() if oldest is not None else 0.0
    return summary["depth"], max(0.0, age)


class OutboxCollector(Collector):
    """The outbox backlog, read from the database when scraped (every process reads the same
    figure: aggregate with max, not sum)."""

    def collect(self) -> Iterator[GaugeMetricFamily]:
        try:
            depth, age = outbox_backlog()
        finally:
            if not connection.in_atomic_block:
                connection.close()  # a scrape thread keeps no connection (or pool slot) open
        yield GaugeMetricFamily(
            "webclient_outbox_depth", "Messages queued for the homeserver, not yet sent.", depth
        )
        yield GaugeMetricFamily(
            "webclient_outbox_oldest_age_seconds",
            "How long the oldest queued message has waited, in seconds (0 when none).",
            age,
        )


_served = False


def serve_host_metrics() -> int | None:
    """Sync hosts (`manage.py sync_host`, the Celery sync worker) serve the default registry on
    METRICS_PORT (bound to METRICS_ADDR), when set; returns the port, or None when off. Once per
    process: every host of the process shares the registry, told apart by their `host` label."""
    global _served
    port = settings.METRICS_PORT
    if not port or _served:
        return None
    start_http_server(port, addr=settings.METRICS_ADDR)
    _served = True
    return port


REGISTRY.register(LastSyncCollector())
