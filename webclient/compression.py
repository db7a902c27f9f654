"""Compressed pages: Django's GZipMiddleware, which pads each compressed body with random bytes
against BREACH, for text responses only (a room page is ~3 KB of HTML per message). Media and
images are already compressed, and static files come compressed from whitenoise, above us."""

from django.http import HttpRequest, HttpResponseBase
from django.middleware.gzip import GZipMiddleware

COMPRESSIBLE = ("text/", "application/json", "application/javascript", "image/svg+xml")


class TextGZipMiddleware(GZipMiddleware):
    def process_response(self, request: HttpRequest, response: HttpResponseBase):
        if not response.get("Content-Type", "").startswith(COMPRESSIBLE):
            return response
        return super().process_response(request, response)
