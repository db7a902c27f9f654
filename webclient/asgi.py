"""ASGI entry point: HTTP goes to Django, websockets to Channels consumers (auth + origin checked)."""

import os

from django.core.asgi import get_asgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "webclient.settings.embedded")
django_asgi_app = get_asgi_application()

from channels.routing import ProtocolTypeRouter, URLRouter  # noqa: E402
from channels.security.websocket import AllowedHostsOriginValidator  # noqa: E402

from accounts.live_auth import live_auth_stack  # noqa: E402
from webclient.routing import websocket_urlpatterns  # noqa: E402

application = ProtocolTypeRouter(
    {
        "http": django_asgi_app,
        "websocket": AllowedHostsOriginValidator(live_auth_stack(URLRouter(websocket_urlpatterns))),
    }
)
