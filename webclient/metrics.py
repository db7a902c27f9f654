"""The web process's /metrics: Prometheus text for whoever may read it.

Figures per process (prometheus_client's default registry: websockets, live render time,
homeserver errors, the process's CPU and memory) plus the outbox backlog read from the database.
Sync hosts serve their own on a port (rooms.metrics.serve_host_metrics). No multiprocess mode:
scrape each daphne process on its own address (each listens on its own port anyway).

Who may read: a client address inside METRICS_ALLOWED (loopback by default; the address as
webclient/proxies.py trusts it, so behind a listed proxy it is the real client's; a request relayed
by a proxy that is not listed is never let in by address) or a request carrying
`Authorization: Bearer <METRICS_TOKEN>` when a token is set. Everyone else gets a 404, as if there
were nothing here.
"""

import hmac
import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest, HttpResponse, HttpResponseNotFound
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, CollectorRegistry, generate_latest

from rooms.metrics import OutboxCollector
from webclient.proxies import client_address, is_trusted_proxy

_DATABASE_FIGURES = CollectorRegistry()  # collected when scraped, never at import
_DATABASE_FIGURES.register(OutboxCollector())


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]):
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def may_read(request: HttpRequest) -> bool:
    """An allowed address, or the bearer token (compared in constant time)."""
    token = settings.METRICS_TOKEN
    given = request.headers.get("Authorization", "")
    if token and hmac.compare_digest(given.encode(), f"Bearer {token}".encode()):
        return True
    relayed = "HTTP_X_FORWARDED_FOR" in request.META
    if relayed and not is_trusted_proxy(str(request.META.get("REMOTE_ADDR", ""))):
        # Relayed by a proxy we were not told to trust (nginx on loopback without
        # WEBCLIENT_TRUSTED_PROXIES): its clients are not local, whatever the peer address.
        return False
    try:
        address = ipaddress.ip_address(client_address(request.META))
    except ValueError:
        return False
    return any(address in network for network in _networks(tuple(settings.METRICS_ALLOWED)))


def exposition() -> bytes:
    """This process's figures and the database-wide ones, in Prometheus' text format."""
    return generate_latest(REGISTRY) + generate_latest(_DATABASE_FIGURES)


def metrics_view(request: HttpRequest) -> HttpResponse:
    if not may_read(request):
        return HttpResponseNotFound()
    response = HttpResponse(exposition(), content_type=CONTENT_TYPE_LATEST)
    response["Cache-Control"] = "no-store"
    return response
