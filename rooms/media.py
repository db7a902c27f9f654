"""Media shown in pages: validated, fetched with the person's own access, only safe image types."""

from dataclasses import dataclass

from accounts.matrix import media_api
from accounts.models import MatrixAccount

INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}


@dataclass(frozen=True)
class Thumbnail:
    body: bytes
    content_type: str


def avatar_thumbnail(*, account: MatrixAccount, server_name: str, media_id: str) -> Thumbnail:
    body, content_type = media_api.fetch_thumbnail(
        account.homeserver_url,
        access_token=account.access_token,
        server_name=server_name,
        media_id=media_id,
        size=96,
    )
    if content_type not in INLINE_IMAGE_TYPES:
        raise ValueError("not an inline image type")
    return Thumbnail(body=body, content_type=content_type)
