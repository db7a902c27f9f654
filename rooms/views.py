"""Pages: thin views that call a selector and render. Every htmx link keeps a real href."""

from urllib.parse import quote

from asgiref.sync import sync_to_async
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import (
    Http404,
    HttpRequest,
    HttpResponse,
    HttpResponseBadRequest,
    StreamingHttpResponse,
)
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import page_session
from accounts.matrix.errors import MatrixError
from rooms import devices, identities, media, outbox, selectors, services, trust
from rooms.models import OutboxMessage

# The composer's picker: the faces and symbols a team reaches for most.
EMOJI_CHOICES = [
    "😀",
    "😂",
    "🙂",
    "😉",
    "😍",
    "🤔",
    "😅",
    "😢",
    "😮",
    "😴",
    "🙏",
    "👍",
    "👎",
    "👏",
    "🙌",
    "💪",
    "👀",
    "🎉",
    "🚀",
    "🔥",
    "✅",
    "❌",
    "⚠️",
    "💡",
    "❤️",
    "💯",
    "☕",
    "🍕",
    "📌",
    "📎",
    "🗓️",
    "⏰",
]


def _account_or_404(request: HttpRequest):
    account = getattr(request.user, "matrix_account", None)
    if account is None or not account.is_active:
        raise Http404("This person has no active Matrix account.")
    return account


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    return _shell(request, _account_or_404(request), "rooms/home.html")


@login_required
@require_GET
def room_list_fragment(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    return render(
        request,
        "rooms/home.html#room-list",
        {
            "account": account,
            "room_list": selectors.room_list(account=account),
            "current_room_id": request.GET.get("current") or None,
        },
    )


@login_required
@require_GET
def room_detail(request: HttpRequest, room_id: str) -> HttpResponse:
    account = _account_or_404(request)
    view = selectors.room_view(account=account, room_id=room_id)
    if view is None:
        raise Http404("You are not in this room.")
    return _shell(
        request,
        account,
        "rooms/room.html",
        room=view,
        emoji_choices=EMOJI_CHOICES,
        current_room_id=room_id,
    )


@login_required
@require_GET
def avatar(request: HttpRequest, server_name: str, media_id: str) -> HttpResponse:
    """A small avatar thumbnail fetched with the person's own access (authenticated media)."""
    account = _account_or_404(request)
    try:
        large = request.GET.get("size") == "large"
        thumbnail = media.avatar_thumbnail(
            account=account,
            server_name=server_name,
            media_id=media_id,
            size=480 if large else 96,
            method="scale" if large else "crop",
        )
    except (MatrixError, ValueError):
        raise Http404("No such avatar.") from None
    response = HttpResponse(thumbnail.body, content_type=thumbnail.content_type)
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    return response


def _joined_or_404(request: HttpRequest, room_id: str):
    account = _account_or_404(request)
    membership = selectors.membership_for(account=account, room_id=room_id)
    if membership is None:
        raise Http404("You are not in this room.")
    return account, membership


def _stream_param(request: HttpRequest, name: str) -> int | None:
    value = request.GET.get(name)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 18:
        raise ValueError(name)
    return int(value)


HISTORY_PAGE = 50
HISTORY_FETCHES = 5  # homeserver pages one scroll-back may read to fill its page


@login_required
@require_GET
def room_events(request: HttpRequest, room_id: str) -> HttpResponse:
    """Timeline rows after a stream position (catch-up on reconnect, a page at a time: the
    X-Stream-Position and X-Stream-More headers say where the next page starts and whether to ask
    for it) or before one (scroll back: a page of visible items, from the homeserver when the
    local store runs out)."""
    account, membership = _joined_or_404(request, room_id)
    try:
        after, before = _stream_param(request, "after"), _stream_param(request, "before")
    except ValueError:
        return HttpResponseBadRequest("after/before must be stream positions.")
    room = membership.room
    if after is not None:
        page = selectors.catch_up(account=account, room=room, after=after)
        response = render(
            request,
            "rooms/room.html#catch-up",
            {"items": page.items, "updates": page.updates, "gaps": page.gaps, "room": room},
        )
        # A page that missed a gap's pushes drops markers of gaps filled meanwhile.
        response["X-Gaps"] = ",".join(str(gap.gap_id) for gap in page.gaps)
        response["X-Stream-Position"] = str(page.position)
        response["X-Stream-More"] = "1" if page.more else "0"
        return response
    before = before or 0
    items = selectors.timeline_items(account=account, room=room, before=before, limit=HISTORY_PAGE)
    error = ""
    for _ in range(HISTORY_FETCHES):
        if len(items) >= HISTORY_PAGE or not selectors.history_on_homeserver(membership=membership):
            break
        try:
            services.room_history_fetch(account=account, room_id=room_id)
        except MatrixError as failure:
            error = failure.message
            break
        membership.refresh_from_db()
        items = selectors.timeline_items(
            account=account, room=room, before=before, limit=HISTORY_PAGE
        )
    if error and not items:
        return HttpResponse(f'<li class="older error" role="alert">{escape(error)}</li>')
    first = items[0].stream_id if items else before
    has_older = selectors.has_older_events(account=account, membership=membership, stream_id=first)
    items, _ = selectors.with_gaps(
        items, account=account, room=room, newest=not before, has_older=has_older
    )
    return render(
        request,
        "rooms/room.html#history",
        {"items": items, "room": room, "has_older": has_older, "first_stream_id": first},
    )


@login_required
@require_POST
def room_send(request: HttpRequest, room_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    if membership.membership != membership.JOIN:
        return HttpResponseBadRequest("Join the room before writing in it.")
    try:
        message = services.message_send(
            account_id=account.pk, room=membership.room, body=request.POST.get("body", "")
        )
    except services.MessageRejected as error:
        if request.htmx:
            return HttpResponse(f'<li class="event error" role="alert">{escape(str(error))}</li>')
        return HttpResponseBadRequest(str(error))
    if not request.htmx:
        return redirect("rooms:room", room_id=room_id)
    return render(request, "rooms/room.html#outbox-item", {"message": message})


@login_required
@require_POST
def outbox_retry(request: HttpRequest, room_id: str, txn_id: str) -> HttpResponse:
    account, _membership = _joined_or_404(request, room_id)
    try:
        message = outbox.message_retry(account_id=account.pk, txn_id=txn_id)
    except OutboxMessage.DoesNotExist:
        raise Http404("No such message.") from None
    if not request.htmx:
        return redirect("rooms:room", room_id=room_id)
    return render(request, "rooms/room.html#outbox-item", {"message": message})


@login_required
@require_POST
def room_membership(request: HttpRequest, room_id: str, action: str) -> HttpResponse:
    """Accept (join) or decline/leave; errors from the homeserver come back as a message."""
    account, _membership = _joined_or_404(request, room_id)
    change = {"join": services.room_join, "leave": services.room_leave}.get(action)
    if change is None:
        raise Http404("Unknown action.")
    try:
        change(account=account, room_id=room_id)
    except MatrixError as error:
        messages.error(request, error.message)
        return redirect("rooms:room", room_id=room_id)
    if action == "leave":
        return redirect("rooms:home")
    return redirect("rooms:room", room_id=room_id)


@login_required
@require_POST
def room_read(request: HttpRequest, room_id: str) -> HttpResponse:
    """The page reports the newest event the person has seen."""
    account, _membership = _joined_or_404(request, room_id)
    try:
        services.room_mark_read(
            account=account, room_id=room_id, event_id=request.POST.get("event_id", "")
        )
    except services.MessageRejected as error:
        return HttpResponseBadRequest(str(error))
    except MatrixError as error:
        return HttpResponse(error.message, status=502)
    return HttpResponse(status=204)


def _shell(request: HttpRequest, account, template: str, **context) -> HttpResponse:
    """Render a page inside the shell (sidebar with the room list)."""
    page_session.session_keep(request, account_id=account.pk)
    status = context.pop("status", 200)
    return render(
        request,
        template,
        {
            "account": account,
            "room_list": selectors.room_list(account=account),
            "current_room_id": context.pop("current_room_id", None),
            "verifications": selectors.verifications_needing_attention(account=account),
            **context,
        },
        status=status,
    )


@login_required
@require_http_methods(["GET", "POST"])
def room_new(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    values = {"name": "", "topic": "", "public": False, "encrypted": True}
    error = ""
    if request.method == "POST":
        values = {
            "name": request.POST.get("name", ""),
            "topic": request.POST.get("topic", ""),
            "public": request.POST.get("public") == "on",
            "encrypted": request.POST.get("encrypted") == "on",
        }
        try:
            room_id = services.room_create(account=account, **values)
        except (services.MessageRejected, MatrixError) as failure:
            error = str(failure)
        else:
            return redirect("rooms:room", room_id=room_id)
    return _shell(
        request, account, "rooms/new.html", values=values, error=error, status=400 if error else 200
    )


@login_required
@require_GET
def people(request: HttpRequest) -> HttpResponse:
    """Find a person in the user directory; htmx asks for just the results as you type."""
    account = _account_or_404(request)
    term = request.GET.get("q", "")
    error = ""
    try:
        hits = selectors.people_search(account=account, term=term)
    except MatrixError as failure:
        hits, error = [], failure.message
    context = {"hits": hits, "term": term, "error": error}
    if request.htmx:
        return render(request, "rooms/people.html#results", context)
    return _shell(request, account, "rooms/people.html", **context)


@login_required
@require_POST
def message_person(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    try:
        room_id = services.room_start_direct(
            account=account,
            user_id=request.POST.get("user_id", ""),
            display_name=request.POST.get("display_name", ""),
        )
    except (services.MessageRejected, MatrixError) as failure:
        messages.error(request, str(failure))
        return redirect("rooms:people")
    return redirect("rooms:room", room_id=room_id)


@login_required
@require_GET
def explore(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    term = request.GET.get("q", "")
    error = ""
    try:
        public = selectors.room_directory(account=account, term=term)
    except MatrixError as failure:
        public, error = [], failure.message
    return _shell(request, account, "rooms/explore.html", public=public, term=term, error=error)


@login_required
@require_POST
def join_address(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    try:
        room_id = services.room_join_by_address(
            account=account, address=request.POST.get("address", "")
        )
    except (services.MessageRejected, MatrixError) as failure:
        messages.error(request, str(failure))
        return redirect("rooms:explore")
    return redirect("rooms:room", room_id=room_id)


@login_required
@require_POST
def room_invite(request: HttpRequest, room_id: str) -> HttpResponse:
    account, _membership = _joined_or_404(request, room_id)
    user_id = request.POST.get("user_id", "")
    try:
        services.room_invite(account=account, room_id=room_id, user_id=user_id)
    except (services.MessageRejected, MatrixError) as failure:
        messages.error(request, str(failure))
    else:
        messages.success(request, f"Invited {user_id.strip()}.")
    return redirect("rooms:room", room_id=room_id)


@login_required
@require_POST
def room_act(request: HttpRequest, room_id: str) -> HttpResponse:
    """React, take a reaction back, reply, edit or delete: each goes out through the outbox."""
    account, membership = _joined_or_404(request, room_id)
    if membership.membership != membership.JOIN:
        return HttpResponseBadRequest("Join the room first.")
    room, action = membership.room, request.POST.get("action", "")
    event_id, body = request.POST.get("event_id", ""), request.POST.get("body", "")
    actions = {
        "react": lambda: services.message_react(
            account_id=account.pk, room=room, event_id=event_id, key=request.POST.get("key", "")
        ),
        "unreact": lambda: services.message_redact(
            account_id=account.pk, room=room, event_id=event_id
        ),
        "delete": lambda: services.message_redact(
            account_id=account.pk, room=room, event_id=event_id
        ),
        "thread": lambda: services.message_send(
            account_id=account.pk, room=room, body=body, thread_root=event_id
        ),
        "reply": lambda: services.message_send(
            account_id=account.pk, room=room, body=body, reply_to=event_id
        ),
        "edit": lambda: services.message_edit(
            account=account, room=room, event_id=event_id, body=body
        ),
    }
    if action not in actions:
        return HttpResponseBadRequest("Unknown action.")
    try:
        message = actions[action]()
    except services.MessageRejected as error:
        if request.htmx:
            return HttpResponse(
                f'<li class="event error" role="alert">{escape(str(error))}</li>', status=400
            )
        return HttpResponseBadRequest(str(error))
    if not request.htmx:
        return redirect("rooms:room", room_id=room_id)
    if action in ("reply", "thread"):
        return render(request, "rooms/room.html#outbox-item", {"message": message})
    return HttpResponse(status=204)


@login_required
@require_POST
def room_typing(request: HttpRequest, room_id: str) -> HttpResponse:
    account, _membership = _joined_or_404(request, room_id)
    try:
        services.room_typing(
            account=account, room_id=room_id, typing=request.POST.get("typing") == "1"
        )
    except MatrixError as error:
        return HttpResponse(error.message, status=502)
    return HttpResponse(status=204)


@login_required
@require_POST
def room_upload(request: HttpRequest, room_id: str) -> HttpResponse:
    """A picked file goes to the homeserver, then out as an image or file message."""
    account, membership = _joined_or_404(request, room_id)
    uploaded = request.FILES.get("file")
    try:
        if uploaded is None:
            raise services.MessageRejected("Choose a file first.")
        message = media.media_send(account=account, room=membership.room, uploaded=uploaded)
    except (services.MessageRejected, MatrixError) as error:
        if request.htmx:
            return HttpResponse(
                f'<li class="event error" role="alert">{escape(str(error))}</li>', status=200
            )
        messages.error(request, str(error))
        return redirect("rooms:room", room_id=room_id)
    if not request.htmx:
        return redirect("rooms:room", room_id=room_id)
    return render(request, "rooms/room.html#outbox-item", {"message": message})


@login_required
@require_GET
async def media_file(request: HttpRequest, server_name: str, media_id: str) -> HttpResponse:
    """Media through our proxy with the person's own access, only if they were shown it: safe
    images inline, everything else as an attachment, never sniffed, sandboxed if opened, and
    streamed as it arrives (an async iterator: ASGI would buffer a sync one whole)."""
    account = await sync_to_async(_account_or_404)(request)
    try:
        download = await media.media_download(
            account=account, server_name=server_name, media_id=media_id
        )
    except media.MediaTooLarge as error:
        return HttpResponse(error.message, status=413, content_type="text/plain")
    except (MatrixError, ValueError):
        raise Http404("No such file.") from None
    response = StreamingHttpResponse(
        download.stream.chunks,
        content_type=download.stream.content_type
        if download.inline
        else "application/octet-stream",
    )
    if download.stream.length is not None:
        response["Content-Length"] = str(download.stream.length)
    name = request.GET.get("name", "")[:200] or media_id
    disposition = "inline" if download.inline else "attachment"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, max-age=86400"
    return response


@login_required
@require_GET
def encrypted_media_file(request: HttpRequest) -> HttpResponse:
    """A file from an encrypted room, decrypted with the key of a message the person's own device
    could read; the same rules as other media (safe images inline, the rest as attachments)."""
    account = _account_or_404(request)
    try:
        decrypted = media.encrypted_media(
            account=account,
            room_id=request.GET.get("room", ""),
            event_id=request.GET.get("event", ""),
        )
    except (MatrixError, ValueError):
        raise Http404("No such file.") from None
    response = HttpResponse(
        decrypted.body,
        content_type=decrypted.content_type if decrypted.inline else "application/octet-stream",
    )
    name = request.GET.get("name", "")[:200] or "file"
    disposition = "inline" if decrypted.inline and not request.GET.get("download") else "attachment"
    response["Content-Disposition"] = f"{disposition}; filename*=UTF-8''{quote(name)}"
    response["X-Content-Type-Options"] = "nosniff"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["Cache-Control"] = "private, no-store"  # plaintext of an encrypted room: kept nowhere
    return response


@login_required
@require_http_methods(["GET", "POST"])
def room_settings(request: HttpRequest, room_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    error = ""
    if request.method == "POST":
        try:
            services.room_settings_update(
                account=account,
                room_id=room_id,
                name=request.POST.get("name", ""),
                topic=request.POST.get("topic", ""),
                posting=request.POST.get("posting", ""),
            )
            if request.FILES.get("avatar"):
                media.room_avatar_set(
                    account=account, room_id=room_id, uploaded=request.FILES["avatar"]
                )
        except (services.MessageRejected, MatrixError) as failure:
            error = str(failure)
        else:
            messages.success(request, "Room settings saved.")
            return redirect("rooms:settings", room_id=room_id)
    try:
        settings_view = selectors.room_settings(account=account, membership=membership)
    except MatrixError as failure:
        settings_view, error = None, error or failure.message
    return _shell(
        request,
        account,
        "rooms/settings.html",
        membership=membership,
        settings=settings_view,
        error=error,
        current_room_id=room_id,
        status=400 if error and request.method == "POST" else 200,
    )


@login_required
@require_GET
def mention_suggestions(request: HttpRequest, room_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    try:
        hits = selectors.mention_candidates(
            account=account, room=membership.room, term=request.GET.get("q", "")[:100]
        )
    except MatrixError:
        hits = []
    return render(request, "rooms/live.html#mentions", {"hits": hits})


@login_required
@require_GET
def room_thread(request: HttpRequest, room_id: str) -> HttpResponse:
    """A thread: its root message and every reply, with a composer that answers in the thread."""
    account, membership = _joined_or_404(request, room_id)
    root = request.GET.get("root", "")
    items = selectors.thread_items(account=account, room=membership.room, root_event_id=root)
    if not items or items[0].event_id != root:
        raise Http404("No such thread in this room.")
    return _shell(
        request,
        account,
        "rooms/thread.html",
        membership=membership,
        items=items,
        root=root,
        current_room_id=room_id,
        can_redact_others=selectors.can_redact_others(account=account, room=membership.room),
    )


@login_required
@require_GET
def security(request: HttpRequest) -> HttpResponse:
    """This device's encryption identity, trust and verifications with other devices."""
    account = _account_or_404(request)
    user_id = request.GET.get("user_id", "").strip()
    error = ""
    try:
        view = selectors.security(account=account)
        changed = trust.identity_changes(account=account)
        found = selectors.devices_of(account=account, user_id=user_id) if user_id else []
    except MatrixError as failure:
        view, found, error, changed = None, [], failure.message, []
    return _shell(
        request,
        account,
        "rooms/security.html",
        security=view,
        identity_changes=changed,
        lookup_user=user_id,
        lookup_devices=found,
        error=error,
    )


@login_required
@require_POST
def verification_answer(request: HttpRequest, verification_id: int) -> HttpResponse:
    account = _account_or_404(request)
    try:
        devices.verification_answer(
            account=account, verification_id=verification_id, answer=request.POST.get("answer", "")
        )
    except services.MessageRejected as failure:
        messages.error(request, str(failure))
    if request.htmx:
        return HttpResponse(status=204)  # the banner updates live as the device moves on
    return redirect("rooms:security")


@login_required
@require_POST
def identity_acknowledge(request: HttpRequest) -> HttpResponse:
    """The person saw that a colleague's identity changed: stop warning (until it changes again)."""
    account = _account_or_404(request)
    user_id = request.POST.get("user_id", "")
    try:
        identities.identity_acknowledge(account=account, user_id=user_id)
    except services.MessageRejected as failure:
        messages.error(request, str(failure))
    room_id = request.POST.get("room_id", "")
    if room_id and selectors.membership_for(account=account, room_id=room_id) is not None:
        return redirect("rooms:room", room_id)
    return redirect("rooms:security")


@login_required
@require_POST
def verification_start(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    try:
        devices.verification_start(
            account=account,
            user_id=request.POST.get("user_id", ""),
            device_id=request.POST.get("device_id", ""),
        )
    except services.MessageRejected as failure:
        messages.error(request, str(failure))
    else:
        messages.success(request, "Verification requested: compare the emoji when they appear.")
    return redirect("rooms:security")


@login_required
@require_GET
def space_children(request: HttpRequest, room_id: str) -> HttpResponse:
    """A space's rooms, re-fetched when the room list changes (a room joined, a room added)."""
    account = _account_or_404(request)
    membership = selectors.membership_for(account=account, room_id=room_id)
    if membership is None or not membership.is_space:
        raise Http404("No such space.")
    children = selectors.space_children(account=account, room=membership.room)
    return render(
        request,
        "rooms/room.html#space-children",
        {"children": children, "space_room_id": room_id},
    )
