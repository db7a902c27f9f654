"""Pages for notification settings: the person's keywords (and browser notifications), and the
level of one room (a fragment on the room's settings page). Logic lives in notification_settings."""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.views.decorators.http import require_http_methods

from accounts.matrix.errors import MatrixError
from rooms import notification_settings
from rooms.views import _account_or_404, _joined_or_404, _shell

PAGE = "rooms/notifications.html"


@login_required
@require_http_methods(["GET", "POST"])
def notifications(request: HttpRequest) -> HttpResponse:
    """The person's keywords: add one or remove one (each a push rule on the homeserver)."""
    account = _account_or_404(request)
    error, typed = "", ""
    if request.method == "POST":
        typed = request.POST.get("keyword", "")
        try:
            if request.POST.get("action") == "remove":
                notification_settings.keyword_remove(account=account, keyword=typed)
                done = f"You will no longer be notified about “{typed}”."
            else:
                added = notification_settings.keyword_add(account=account, text=typed)
                done = f"You will be notified about “{added}”."
        except (notification_settings.SettingRejected, MatrixError) as failure:
            error = str(failure)
        else:
            messages.success(request, done)
            return redirect("rooms:notifications")
    try:
        keywords = notification_settings.current(account=account).keywords
    except MatrixError as failure:
        keywords, error = [], error or failure.message
    return _shell(
        request,
        account,
        PAGE,
        keywords=keywords,
        typed=typed,
        error=error,
        status=400 if error and request.method == "POST" else 200,
    )


@login_required
@require_http_methods(["GET", "POST"])
def room_level(request: HttpRequest, room_id: str) -> HttpResponse:
    """The room's level as a small form (loaded into the room settings page), and its change."""
    account, membership = _joined_or_404(request, room_id)
    error, level, status = "", "", 200
    if request.method == "POST":
        level = request.POST.get("level", "")
        try:
            notification_settings.room_level_set(account=account, room_id=room_id, level=level)
        except (notification_settings.SettingRejected, MatrixError) as failure:
            error, status = str(failure), 400
        else:
            if not request.htmx:
                messages.success(request, "Notification level saved.")
                return redirect("rooms:settings", room_id=room_id)
    if not level or error:
        try:
            level = notification_settings.room_level(account=account, room_id=room_id)
        except MatrixError as failure:
            error = error or failure.message
    context = {
        "membership": membership,
        "level": level,
        "choices": notification_settings.LEVEL_CHOICES,
        "error": error,
        "saved": request.method == "POST" and not error,
    }
    return render(request, f"{PAGE}#room-level", context, status=status)
