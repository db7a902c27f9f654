"""The search page and a message in context: validate, call the selector, render."""

from datetime import date

from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_GET

from rooms import search
from rooms.models import Membership
from rooms.timeline_context import timeline_around
from rooms.views import _account_or_404, _shell


def _day(value: str, label: str, errors: list[str]) -> date | None:
    if not value:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        errors.append(f"{label} must be a date (YYYY-MM-DD).")
        return None


def _filters(request: HttpRequest, errors: list[str]) -> search.SearchFilters:
    since = _day(request.GET.get("since", ""), "From", errors)
    until = _day(request.GET.get("until", ""), "To", errors)
    if since and until and since > until:
        errors.append("The first day comes after the last.")
    sender = request.GET.get("sender", "").strip()
    if sender and not (sender.startswith("@") and ":" in sender):
        errors.append("Sender must be a Matrix ID like @alice:example.org.")
    return search.SearchFilters(
        room_id=request.GET.get("room", "").strip(),
        sender=sender,
        since=since,
        until=until,
        has_file=request.GET.get("has_file") == "on",
    )


@login_required
@require_GET
def search_page(request: HttpRequest) -> HttpResponse:
    """Search every room the person can read; htmx asks for just the results as they type."""
    account = _account_or_404(request)
    query = request.GET.get("q", "").strip()
    errors: list[str] = []
    filters = _filters(request, errors)
    try:
        before = int(request.GET["before"]) if request.GET.get("before") else None
    except ValueError:
        errors.append("That page of results does not exist.")
        before = None
    page = None
    if query and not errors:
        try:
            page = search.search_messages(
                account=account, query=query, filters=filters, before=before
            )
        except search.SearchQueryError as failure:
            errors.append(str(failure))
    more_query = request.GET.copy()
    more_query.pop("before", None)
    context = {
        "query": query,
        "filters": filters,
        "page": page,
        "errors": errors,
        "more_query": more_query,
    }
    if request.htmx and request.GET.get("before"):
        return render(request, "rooms/search.html#hits", context)
    if request.htmx:
        return render(request, "rooms/search.html#results", context)
    rooms = (
        Membership.objects.filter(account=account, membership=Membership.JOIN)
        .select_related("room")
        .order_by("display_name")
    )
    return _shell(request, account, "rooms/search.html", rooms=rooms, **context)


@login_required
@require_GET
def message_context(request: HttpRequest, room_id: str, stream_id: int) -> HttpResponse:
    """One of the person's messages with the timeline around it (from a search result)."""
    account = _account_or_404(request)
    context = timeline_around(account=account, room_id=room_id, stream_id=stream_id)
    if context is None:
        raise Http404("That message is not in your timeline.")
    return _shell(
        request,
        account,
        "rooms/context.html",
        context=context,
        room=context.membership.room,
        current_room_id=room_id,
        query=request.GET.get("q", "")[:200],
    )
