"""Production: every address and key comes from the environment; missing ones stop the start."""

import os

from django.core.exceptions import ImproperlyConfigured

from webclient.settings.base import *  # noqa: F403
from webclient.settings.base import (
    MATRIX_HOMESERVER_URL,
    MATRIX_REGISTRATION_SHARED_SECRET,
    SECRET_KEY,
    TRUSTED_PROXIES,
    WEBCLIENT_SECRET_KEYS,
)

# base.py falls back to a local Redis and SQLite for the embedded run; in production a missing
# address must stop the start instead of quietly using the wrong server.
for _name, _value in {
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "WEBCLIENT_SECRET_KEYS": WEBCLIENT_SECRET_KEYS,
    "MATRIX_HOMESERVER_URL": MATRIX_HOMESERVER_URL,
    "MATRIX_REGISTRATION_SHARED_SECRET": MATRIX_REGISTRATION_SHARED_SECRET,
    "DATABASE_URL": os.environ.get("DATABASE_URL"),
    "REDIS_URL": os.environ.get("REDIS_URL"),
}.items():
    if not _value:
        raise ImproperlyConfigured(f"Set {_name} in the environment for production.")

DEBUG = False
# X-Forwarded-Proto says "https" only when it comes from a listed proxy: ForwardedHeadersMiddleware
# removes it from every other peer, and without proxies it is not read at all.
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if TRUSTED_PROXIES else None
SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
# Both bind more than this workspace (every subdomain; browsers' preload lists, slow to leave), so
# they are the operator's decision: opt in with the environment.
SECURE_HSTS_INCLUDE_SUBDOMAINS = os.environ.get("DJANGO_HSTS_INCLUDE_SUBDOMAINS", "0") == "1"
SECURE_HSTS_PRELOAD = os.environ.get("DJANGO_HSTS_PRELOAD", "0") == "1"
SILENCED_SYSTEM_CHECKS = [
    check
    for check, chosen in (
        ("security.W005", SECURE_HSTS_INCLUDE_SUBDOMAINS),
        ("security.W021", SECURE_HSTS_PRELOAD),
    )
    if not chosen
]
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
