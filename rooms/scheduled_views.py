""" "Send later" pages: schedule from the composer, and the room's Scheduled panel (edit, cancel).

Every answer is the panel itself, re-rendered, with the reason on top when something was refused,
so the person sees at once what is waiting and nothing they typed is lost (the form keeps it)."""

from django.contrib.auth.decorators import login_required
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.html import escape
from django.views.decorators.http import require_GET, require_POST

from rooms import reminders, scheduled
from rooms.views import _joined_or_404


def _panel(request: HttpRequest, account, membership, *, error: str = "") -> HttpResponse:
    if not request.htmx:
        if error:
            return HttpResponse(error, status=400, content_type="text/plain; charset=utf-8")
        return redirect("rooms:room", room_id=membership.room.room_id)
    if error:
        # Only the reason is swapped in (above the panel): the forms keep what the person typed.
        response = HttpResponse(escape(error))
        response["HX-Retarget"] = f"#scheduled-error-{membership.room.dom_id}"
        response["HX-Reswap"] = "innerHTML"
        return response
    rows = scheduled.scheduled_in_room(account_id=account.pk, room=membership.room)
    return render(
        request, "rooms/scheduled.html#panel", {"scheduled": rows, "room": membership.room}
    )


@login_required
@require_GET
def panel(request: HttpRequest, room_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    return _panel(request, account, membership)


@login_required
@require_POST
def schedule(request: HttpRequest, room_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    if membership.membership != membership.JOIN:
        return _panel(request, account, membership, error="Join the room before writing in it.")
    try:
        send_at = scheduled.parse_send_at(
            request.POST.get("send_at", ""), request.POST.get("tz_offset", "")
        )
        scheduled.schedule_message(
            account_id=account.pk,
            room=membership.room,
            body=request.POST.get("body", ""),
            send_at=send_at,
        )
    except scheduled.ScheduleRejected as error:
        return _panel(request, account, membership, error=str(error))
    response = _panel(request, account, membership)
    response["HX-Trigger"] = "scheduled"  # app.js empties the composer
    return response


@login_required
@require_POST
def edit(request: HttpRequest, room_id: str, txn_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    try:
        send_at = scheduled.parse_send_at(
            request.POST.get("send_at", ""), request.POST.get("tz_offset", "")
        )
        scheduled.scheduled_edit(
            account_id=account.pk,
            room=membership.room,
            txn_id=txn_id,
            body=request.POST.get("body", ""),
            send_at=send_at,
        )
    except scheduled.ScheduleRejected as error:
        return _panel(request, account, membership, error=str(error))
    return _panel(request, account, membership)


@login_required
@require_POST
def cancel(request: HttpRequest, room_id: str, txn_id: str) -> HttpResponse:
    account, membership = _joined_or_404(request, room_id)
    try:
        scheduled.scheduled_cancel(account_id=account.pk, room=membership.room, txn_id=txn_id)
    except scheduled.ScheduleRejected as error:
        return _panel(request, account, membership, error=str(error))
    return _panel(request, account, membership)


@login_required
@require_POST
def remind(request: HttpRequest, room_id: str) -> HttpResponse:
    """ "Remind me about this message": the answer is the line under the menu's form."""
    account, membership = _joined_or_404(request, room_id)
    try:
        remind_at = scheduled.parse_send_at(
            request.POST.get("send_at", ""), request.POST.get("tz_offset", "")
        )
        reminders.reminder_set(
            account_id=account.pk,
            room=membership.room,
            event_id=request.POST.get("event_id", ""),
            remind_at=remind_at,
        )
    except scheduled.ScheduleRejected as error:
        return HttpResponse(f'<span class="error">{escape(str(error))}</span>')
    when = remind_at.isoformat()
    return HttpResponse(f'Reminder set for <time datetime="{when}" data-local>{when}</time>.')
