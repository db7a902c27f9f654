"""Which address a request came from. X-Forwarded-For and X-Forwarded-Proto are believed only when
the direct peer is one of the proxies the operator listed (TRUSTED_PROXIES); from anyone else they
are removed before Django or sign-in throttling can read them, so nobody can claim to be someone
else's address or pretend the connection was HTTPS."""

import ipaddress
from functools import lru_cache

from django.conf import settings
from django.http import HttpRequest
from django.utils.deprecation import MiddlewareMixin

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
FORWARDED_HEADERS = ("HTTP_X_FORWARDED_FOR", "HTTP_X_FORWARDED_PROTO", "HTTP_X_FORWARDED_HOST")


@lru_cache(maxsize=8)
def _networks(entries: tuple[str, ...]) -> tuple[IPNetwork, ...]:
    return tuple(ipaddress.ip_network(entry, strict=False) for entry in entries)


def trusted_networks() -> tuple[IPNetwork, ...]:
    """TRUSTED_PROXIES as networks: single addresses ("10.0.0.5") or ranges ("10.0.0.0/24")."""
    return _networks(tuple(settings.TRUSTED_PROXIES))


def _address(value: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        return ipaddress.ip_address(value.strip())
    except ValueError:
        return None


def is_trusted_proxy(value: str) -> bool:
    address = _address(value)
    return address is not None and any(address in network for network in trusted_networks())


def client_address(meta: dict) -> str:
    """The client's address: the direct peer, unless that peer is a trusted proxy; then the
    X-Forwarded-For chain is read from the right (each proxy appends the peer it saw) and the first
    hop that is not itself a trusted proxy is the client. Hops left of it were written by the
    client and are never believed."""
    peer = str(meta.get("REMOTE_ADDR", ""))
    if not is_trusted_proxy(peer):
        return peer
    candidate = peer
    hops = [hop.strip() for hop in str(meta.get("HTTP_X_FORWARDED_FOR", "")).split(",")]
    for hop in reversed([hop for hop in hops if hop]):
        if _address(hop) is None:
            break  # a garbled chain: stop at the last hop a trusted proxy vouched for
        candidate = hop
        if not is_trusted_proxy(hop):
            break
    return candidate


def client_ip(request: HttpRequest) -> str:
    """For django-axes (AXES_CLIENT_IP_CALLABLE): throttle by the address this module trusts."""
    return client_address(request.META)


class ForwardedHeadersMiddleware(MiddlewareMixin):
    """Before anything that reads them (only the probes come first): forwarded headers from a
    peer that is not a trusted proxy are dropped, so SECURE_PROXY_SSL_HEADER and anything else
    reading them sees only what a proxy set."""

    def process_request(self, request: HttpRequest) -> None:
        if not is_trusted_proxy(str(request.META.get("REMOTE_ADDR", ""))):
            for header in FORWARDED_HEADERS:
                request.META.pop(header, None)
