"""Media: uploads go to the homeserver with the person's own token and out as a message through
the outbox; downloads come back through our proxy with the spec's media security rules."""

import io
from dataclasses import dataclass

from asgiref.sync import sync_to_async

from accounts.matrix import attachments, client_api, media_api
from accounts.models import MatrixAccount
from rooms import media_index, selectors, services, visibility
from rooms.models import OutboxMessage, Room

INLINE_IMAGE_TYPES = {"image/png", "image/jpeg", "image/gif", "image/webp"}
DEFAULT_UPLOAD_LIMIT = 50 * 1024 * 1024


@dataclass(frozen=True)
class Thumbnail:
    body: bytes
    content_type: str


class MediaNotShown(ValueError):
    """The person was never shown this media: to them it does not exist."""


def check_media_access(*, account: MatrixAccount, server_name: str, media_id: str) -> None:
    """Serve an mxc:// only to someone whose own timeline or room state shows it (or who uploaded
    it): having the link is not enough, or anyone signed in could read a private room's files.
    Malformed references are refused before anything else."""
    media_api.check_media(server_name, media_id)
    if visibility.may_see_media(account=account, server_name=server_name, media_id=media_id):
        return
    if visibility.is_own_avatar(account=account, server_name=server_name, media_id=media_id):
        return
    raise MediaNotShown("no such media for this person")


def avatar_thumbnail(
    *,
    account: MatrixAccount,
    server_name: str,
    media_id: str,
    size: int = 96,
    method: str = "crop",
) -> Thumbnail:
    check_media_access(account=account, server_name=server_name, media_id=media_id)
    body, content_type = media_api.fetch_thumbnail(
        account.homeserver_url,
        access_token=account.access_token,
        server_name=server_name,
        media_id=media_id,
        size=size,
        method=method,
    )
    if content_type not in INLINE_IMAGE_TYPES:
        raise ValueError("not an inline image type")
    return Thumbnail(body=body, content_type=content_type)


def upload_limit(*, account: MatrixAccount) -> int:
    """The homeserver's own limit (m.upload.size), so we refuse before sending a byte."""
    config = media_api.media_config(account.homeserver_url, access_token=account.access_token)
    limit = config.get("m.upload.size")
    return limit if isinstance(limit, int) and limit > 0 else DEFAULT_UPLOAD_LIMIT


def _human(size: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size:.0f} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size} bytes"


@dataclass(frozen=True)
class Uploaded:
    uri: str
    name: str
    size: int
    content_type: str


def _checked_file(*, account: MatrixAccount, uploaded, default_name: str) -> tuple[str, int, str]:
    """(name, size, content type) of a picked file that is neither empty nor over the
    homeserver's own size limit, checked before a byte is sent."""
    name = (getattr(uploaded, "name", "") or default_name)[:255]
    size = getattr(uploaded, "size", 0) or 0
    if size <= 0:
        raise services.MessageRejected("That file is empty.")
    limit = upload_limit(account=account)
    if size > limit:
        raise services.MessageRejected(
            f"{name} is {_human(size)}; this homeserver accepts files up to {_human(limit)}."
        )
    content_type = (getattr(uploaded, "content_type", "") or "application/octet-stream")[:100]
    return name, size, content_type


def _upload(*, account: MatrixAccount, uploaded, default_name: str) -> Uploaded:
    """Send a picked file to the homeserver within its own size limit; nothing is read into
    memory (Django spools large uploads to disk and we stream from there)."""
    name, size, content_type = _checked_file(
        account=account, uploaded=uploaded, default_name=default_name
    )
    uploaded.seek(0)
    uri = media_api.upload(
        account.homeserver_url,
        access_token=account.access_token,
        stream=uploaded,
        size=size,
        content_type=content_type,
        filename=name,
    )
    media_index.index_upload(account.pk, uri)
    return Uploaded(uri, name, size, content_type)


def media_send(*, account: MatrixAccount, room: Room, uploaded) -> OutboxMessage:
    """Upload a file someone picked and queue the message that shows it (image or file). In an
    encrypted room the file is encrypted first: the homeserver only ever holds ciphertext."""
    if selectors.room_is_encrypted(account=account, room=room):
        sent, file = _upload_encrypted(account=account, uploaded=uploaded)
        where = {"file": {**file, "url": sent.uri, "mimetype": sent.content_type}}
    else:
        sent = _upload(account=account, uploaded=uploaded, default_name="file")
        where = {"url": sent.uri}
    msgtype = "m.image" if sent.content_type in INLINE_IMAGE_TYPES else "m.file"
    content = {
        "msgtype": msgtype,
        "body": sent.name,
        **where,
        "info": {"mimetype": sent.content_type, "size": sent.size},
    }
    return services.queue_content(account_id=account.pk, room=room, content=content)


def _upload_encrypted(*, account: MatrixAccount, uploaded) -> tuple[Uploaded, dict]:
    """Encrypt a picked file and upload the ciphertext (in memory: bounded by the homeserver's
    size limit, checked first)."""
    name, size, content_type = _checked_file(
        account=account, uploaded=uploaded, default_name="file"
    )
    uploaded.seek(0)
    ciphertext, file = attachments.encrypt(uploaded.read())
    uri = media_api.upload(
        account.homeserver_url,
        access_token=account.access_token,
        stream=io.BytesIO(ciphertext),
        size=len(ciphertext),
        content_type="application/octet-stream",
        filename="",
    )
    media_index.index_upload(account.pk, uri)
    return Uploaded(uri, name, size, content_type), file


@dataclass(frozen=True)
class DecryptedFile:
    body: bytes
    content_type: str
    inline: bool


def encrypted_media(*, account: MatrixAccount, room_id: str, event_id: str) -> DecryptedFile:
    """The decrypted file of an encrypted-room message the account's own device could read: the
    key comes from that event, never from the request."""
    event = visibility.readable_event(account=account, room_id=room_id, event_id=event_id)
    content = event.raw.get("content") if event is not None else None
    content = content if isinstance(content, dict) else {}
    file = content.get("file")
    if not attachments.is_encrypted_file(file):
        raise ValueError("no encrypted file in that message")
    parsed = media_api.parse_mxc(file["url"])
    if parsed is None:
        raise ValueError("malformed media reference")
    # Whole and capped, not streamed: the event's SHA-256 must match before any plaintext goes
    # out (AES-CTR is malleable: a tampered ciphertext would decrypt to tampered bytes).
    ciphertext = media_api.download_bytes(
        account.homeserver_url,
        access_token=account.access_token,
        server_name=parsed[0],
        media_id=parsed[1],
        max_bytes=max(upload_limit(account=account), DEFAULT_UPLOAD_LIMIT) + 1024,
    )
    info = content.get("info") if isinstance(content.get("info"), dict) else {}
    content_type = info.get("mimetype") or file.get("mimetype") or "application/octet-stream"
    content_type = content_type if isinstance(content_type, str) else "application/octet-stream"
    return DecryptedFile(
        attachments.decrypt(ciphertext, file),
        content_type[:100],
        inline=content_type in INLINE_IMAGE_TYPES,
    )


MAX_PROXIED_BYTES = 512 * 1024 * 1024  # past any homeserver's usual upload limit
MediaTooLarge = media_api.MediaTooLarge  # from media_download: views answer 413 with its message


@dataclass(frozen=True)
class Download:
    stream: media_api.MediaStream
    inline: bool


async def media_download(*, account: MatrixAccount, server_name: str, media_id: str) -> Download:
    """Stream a file the person was shown, with their own token, chunk by chunk and capped."""
    await sync_to_async(check_media_access)(
        account=account, server_name=server_name, media_id=media_id
    )
    stream = await media_api.open_stream(
        account.homeserver_url,
        access_token=account.access_token,
        server_name=server_name,
        media_id=media_id,
        max_bytes=MAX_PROXIED_BYTES,
    )
    return Download(stream, inline=stream.content_type in INLINE_IMAGE_TYPES)


def room_avatar_set(*, account: MatrixAccount, room_id: str, uploaded) -> None:
    """Upload a picture and make it the room's avatar (m.room.avatar)."""
    if (getattr(uploaded, "content_type", "") or "") not in INLINE_IMAGE_TYPES:
        raise services.MessageRejected("Room pictures must be PNG, JPEG, GIF or WebP images.")
    sent = _upload(account=account, uploaded=uploaded, default_name="avatar")
    client_api.put_room_state(
        account.homeserver_url,
        access_token=account.access_token,
        room_id=room_id,
        event_type="m.room.avatar",
        content={"url": sent.uri},
    )
