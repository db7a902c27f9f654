"""/healthz, /readyz and /metrics, answered before the rest of the middleware.

Load balancers and Prometheus call these by the machine's address, over plain HTTP, without a
session: answered here, first in MIDDLEWARE, they skip the HTTPS redirect, the ALLOWED_HOSTS
check (a probe's Host header is an IP address), sessions, CSRF, gzip and sign-in. /metrics reads
the client address as webclient/proxies.py trusts it, and sees a relaying proxy's header before
ForwardedHeadersMiddleware would drop it. The views stay thin: the logic is in
webclient/health.py and webclient/metrics.py.
"""

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

from webclient import health
from webclient.metrics import metrics_view


def healthz(request: HttpRequest) -> HttpResponse:
    """The process is alive and answers; nothing else is asked (no database)."""
    return _no_store(JsonResponse({"status": "alive"}))


def readyz(request: HttpRequest) -> HttpResponse:
    """200 when the database, Redis and the homeserver answer, 503 otherwise; the body says which."""
    report = health.readiness()
    return _no_store(JsonResponse(report.as_json(), status=200 if report.ready else 503))


def _no_store(response: HttpResponse) -> HttpResponse:
    response["Cache-Control"] = "no-store"
    return response


PROBES: dict[str, Callable[[HttpRequest], HttpResponse]] = {
    "/healthz": healthz,
    "/readyz": readyz,
    "/metrics": metrics_view,
}


class ProbeMiddleware:
    """First in MIDDLEWARE: a GET or HEAD of a probe path is answered here."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        probe = PROBES.get(request.path_info)
        if probe is not None and request.method in ("GET", "HEAD"):
            return probe(request)
        return self.get_response(request)
