"""Pages: thin views that call a selector and render. Every htmx link keeps a real href."""

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from accounts.matrix.errors import MatrixError
from rooms import media, selectors


def _account_or_404(request: HttpRequest):
    account = getattr(request.user, "matrix_account", None)
    if account is None or not account.is_active:
        raise Http404("This person has no active Matrix account.")
    return account


@login_required
@require_GET
def home(request: HttpRequest) -> HttpResponse:
    account = _account_or_404(request)
    request.session["matrix_account_id"] = account.pk
    return render(
        request,
        "rooms/home.html",
        {
            "account": account,
            "room_list": selectors.room_list(account=account),
            "current_room_id": None,
        },
    )


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
    request.session["matrix_account_id"] = account.pk
    view = selectors.room_view(account=account, room_id=room_id)
    if view is None:
        raise Http404("You are not in this room.")
    return render(
        request,
        "rooms/room.html",
        {
            "account": account,
            "room_list": selectors.room_list(account=account),
            "room": view,
            "current_room_id": room_id,
        },
    )


@login_required
@require_GET
def avatar(request: HttpRequest, server_name: str, media_id: str) -> HttpResponse:
    """A small avatar thumbnail fetched with the person's own access (authenticated media)."""
    account = _account_or_404(request)
    try:
        thumbnail = media.avatar_thumbnail(
            account=account, server_name=server_name, media_id=media_id
        )
    except (MatrixError, ValueError):
        raise Http404("No such avatar.") from None
    response = HttpResponse(thumbnail.body, content_type=thumbnail.content_type)
    response["Cache-Control"] = "private, max-age=86400"
    response["Content-Security-Policy"] = "sandbox; default-src 'none'"
    response["X-Content-Type-Options"] = "nosniff"
    return response
