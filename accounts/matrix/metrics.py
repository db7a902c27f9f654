"""The boundary's one metric: how often the homeserver failed us, by kind.

Counted where its answers become our exceptions (http.error_from_response, and every place that
gives up on reaching it), so each failure is counted once whichever process or path met it. The
label is a small closed set (never the errcode, which a homeserver may make up) so the series stay
few.
"""

from prometheus_client import Counter

HOMESERVER_ERRORS = Counter(
    "webclient_homeserver_errors",
    "Homeserver requests that failed: unreachable (no answer), server_error (5xx), "
    "rate_limited (429), refused (other 4xx: also ordinary answers such as a wrong password "
    "or a room without encryption state, so alert on the first three).",
    ["kind"],
)
for _kind in ("unreachable", "rate_limited", "server_error", "refused"):
    HOMESERVER_ERRORS.labels(kind=_kind)  # present at 0 from the start, so rate() works at once


def homeserver_error(*, status: int | None) -> None:
    """Count one failed request; `status` None when no HTTP answer came."""
    if status is None or status >= 500:
        kind = "unreachable" if status is None else "server_error"
    elif status == 429:
        kind = "rate_limited"
    else:
        kind = "refused"
    HOMESERVER_ERRORS.labels(kind=kind).inc()
