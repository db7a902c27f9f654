"""Production: every address and key comes from the environment; missing ones stop the start."""

import os

from django.core.exceptions import ImproperlyConfigured

from webclient.settings.base import *  # noqa: F403
from webclient.settings.base import MATRIX_HOMESERVER_URL, SECRET_KEY, WEBCLIENT_SECRET_KEYS

for _name, _value in {
    "DJANGO_SECRET_KEY": SECRET_KEY,
    "WEBCLIENT_SECRET_KEYS": WEBCLIENT_SECRET_KEYS,
    "MATRIX_HOMESERVER_URL": MATRIX_HOMESERVER_URL,
    "DATABASE_URL": os.environ.get("DATABASE_URL"),
}.items():
    if not _value:
        raise ImproperlyConfigured(f"Set {_name} in the environment for production.")

DEBUG = False
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
SECURE_SSL_REDIRECT = os.environ.get("DJANGO_SECURE_SSL_REDIRECT", "1") == "1"
SECURE_HSTS_SECONDS = int(os.environ.get("DJANGO_HSTS_SECONDS", "31536000"))
SECURE_HSTS_INCLUDE_SUBDOMAINS = True
SECURE_HSTS_PRELOAD = True
SESSION_COOKIE_SECURE = True
CSRF_COOKIE_SECURE = True
