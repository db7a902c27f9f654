"""Sign in and out. Thin: the form calls the sign-in service, errors come back as form errors."""

from django.contrib.auth import login, logout
from django.db import transaction
from django.http import HttpRequest, HttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.cache import never_cache
from django.views.decorators.debug import sensitive_post_parameters, sensitive_variables
from django.views.decorators.http import require_GET, require_http_methods, require_POST

from accounts import live, page_session, services, single_sign_on
from accounts.forms import SignInForm
from accounts.matrix.errors import HomeserverUnreachable, MatrixError


@sensitive_post_parameters("password")
@require_http_methods(["GET", "POST"])
def sign_in(request: HttpRequest) -> HttpResponse:
    if request.user.is_authenticated and not _session_ended(request.user):
        return redirect("rooms:home")
    form = SignInForm(request.POST or None, request=request)
    if request.method == "POST" and form.is_valid():
        return _signed_in(request, form.user, request.GET.get("next", ""))
    status = 200
    if request.method == "POST":
        status = 429 if form.locked_out else 400
    return _login_page(request, form, status=status)


def _login_page(request: HttpRequest, form: SignInForm, *, status: int, sso_error: str = ""):
    return render(
        request,
        "accounts/login.html",
        {
            "form": form,
            "options": single_sign_on.login_options(),
            "sso_error": sso_error,
            "next": request.GET.get("next", ""),
        },
        status=status,
    )


def _signed_in(request: HttpRequest, user, target: str) -> HttpResponse:
    # One transaction for what signing in writes here (the session, its sign-in records): one
    # wait for the database's write lock, not one per small write (session_store.py).
    with transaction.atomic():
        login(request, user, backend="accounts.backends.MatrixPasswordBackend")
        account = getattr(user, "matrix_account", None)
        if account is not None:  # the first page then has nothing to write
            page_session.session_keep(request, account_id=account.pk)
        request.session.save()
    if not url_has_allowed_host_and_scheme(target, {request.get_host()}, request.is_secure()):
        target = ""
    return redirect(target or "rooms:home")


@never_cache
@require_GET
def sso_begin(request: HttpRequest, idp_id: str) -> HttpResponse:
    """Send the browser to the homeserver's single sign-on with `idp_id`, holding a fresh nonce.

    A GET link rather than a form: the page's Content-Security-Policy allows forms to post only to
    us, and browsers apply form-action to the redirect that follows a post too."""
    options = single_sign_on.login_options()
    if idp_id not in {provider.id for provider in options.providers}:
        message = (
            "The homeserver cannot be reached right now, so single sign-on is not available. "
            "Try again shortly."
            if options.unreachable
            else "That sign-in provider is not offered by the homeserver (any more). Use one of "
            "the buttons below."
        )
        return _login_page(request, SignInForm(request=request), status=400, sso_error=message)
    location = single_sign_on.sso_begin(
        request.session,
        idp_id=idp_id,
        return_url=request.build_absolute_uri(reverse("accounts:sso_return")),
        next_url=request.GET.get("next", ""),
    )
    return redirect(location)


@never_cache
@require_GET
@sensitive_variables("login_token")
def sso_return(request: HttpRequest) -> HttpResponse:
    """The homeserver sends the browser back here with a loginToken: check the nonce (one use),
    then exchange the token for the person's device and sign this browser in."""
    login_token = request.GET.get("loginToken", "")
    try:
        target = single_sign_on.sso_nonce_use(
            request.session, request.GET.get(single_sign_on.NONCE_PARAM, "")
        )
    except single_sign_on.SsoRefused as refused:
        return _login_page(request, SignInForm(request=request), status=403, sso_error=str(refused))
    if not login_token:
        message = "The homeserver came back without a sign-in. Nothing was signed in: start again."
        return _login_page(request, SignInForm(request=request), status=400, sso_error=message)
    try:
        user = services.account_sign_in_with_token(login_token=login_token)
    except MatrixError as error:
        status = 503 if isinstance(error, HomeserverUnreachable) else 403
        return _login_page(
            request, SignInForm(request=request), status=status, sso_error=error.message
        )
    return _signed_in(request, user, target)


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
