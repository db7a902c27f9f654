"""Sign in and out. Thin: the form calls the sign-in service, errors come back as form errors."""

from django.contrib.auth import login, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.debug import sensitive_post_parameters
from django.views.decorators.http import require_http_methods, require_POST

from accounts import live, page_session
from accounts.forms import SignInForm


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and not _session_ended(request.user):
        return redirect("rooms:home")
    form = SignInForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        # One transaction for what signing in writes here (the session, its sign-in records):
        # one wait for the database's write lock, not one per small write (session_store.py).
        with transaction.atomic():
            login(request, form.user, backend="accounts.backends.MatrixPasswordBackend")
            account = getattr(form.user, "matrix_account", None)
            if account is not None:  # the first page then has nothing to write
                page_session.session_keep(request, account_id=account.pk)
            request.session.save()
        target = request.GET.get("next", "")
        if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
            target = ""
        return redirect(target or "rooms:home")
    status = 200
    if request.method == "POST":
        status = 429 if form.locked_out else 400
    return render(request, "accounts/login.html", {"form": form}, status=status)


def _session_ended(user) -> bool:
    """Signed in here, but the homeserver revoked the device's token: signing in again renews it."""
    account = getattr(user, "matrix_account", None)
    return account is not None and account.session_ended


@require_POST
def sign_out(request: HttpRequest) -> HttpResponse:
    """Sign this browser out and close its open pages' websockets (other sign-ins stay open)."""
    session_key = request.session.session_key
    logout(request)
    if session_key:
        live.pages_close_for_session(session_key)
    return redirect("accounts:login")
