"""Sign-in throttling (django-axes): a person's account and an address each get a budget of failed
sign-ins, checked before the homeserver is asked. Without it one attacker could use up the
homeserver's own login limit, which sees every sign-in as coming from this server, for the whole
company.

Two limits, not axes' single one: SIGN_IN_FAILURES_PER_USER guards one account against guessing;
SIGN_IN_FAILURES_PER_ADDRESS, higher because colleagues share an office's address, stops one
address trying many accounts. A successful sign-in clears the person's own count (never the
address's, or a single valid account could keep an address's budget fresh)."""

from axes.handlers.database import AxesDatabaseHandler
from axes.handlers.proxy import AxesProxyHandler
from axes.models import AccessAttempt
from django.conf import settings
from django.contrib.auth.signals import user_login_failed
from django.db.models import Sum
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


def throttle_username(request: HttpRequest, credentials: dict | None) -> str | None:
    """One count per person however the name is typed: "Alice", "alice" and "@alice:hs" agree.
    (AXES_USERNAME_CALLABLE.)"""
    if credentials is not None:
        typed = credentials.get("username")
    else:
        typed = request.POST.get("username") if request is not None else None
    if not typed:
        return None
    return str(typed).strip().lower().removeprefix("@").split(":", 1)[0][:150] or None


def lockout_message() -> str:
    minutes = max(1, round(settings.AXES_COOLOFF_TIME.total_seconds() / 60))
    return (
        "Too many failed sign-ins for this account or from this address. Nothing was sent to the "
        f"homeserver. Wait {minutes} minutes and try again, or ask an admin to unlock it."
    )


class SignInThrottle(AxesDatabaseHandler):
    """axes' database handler with a limit per user and a separate one per address."""

    def is_locked(self, request, credentials: dict | None = None) -> bool:
        by_user, by_address = (
            attempts.aggregate(total=Sum("failures_since_start"))["total"] or 0
            for attempts in self.get_user_attempts(request, credentials)
        )
        return (
            by_user >= settings.SIGN_IN_FAILURES_PER_USER
            or by_address >= settings.SIGN_IN_FAILURES_PER_ADDRESS
        )

    def user_login_failed(self, sender, credentials: dict, request=None, **kwargs) -> None:
        super().user_login_failed(sender, credentials, request, **kwargs)
        if request is not None:
            # axes compared its single limit; the middleware acts on our two instead.
            request.axes_locked_out = self.is_locked(request, credentials)

    def user_logged_in(self, sender, request, user, **kwargs) -> None:
        super().user_logged_in(sender, request, user, **kwargs)
        names = {throttle_username(request, {"username": user.get_username()})}
        account = getattr(user, "matrix_account", None)
        if account is not None:
            names.add(throttle_username(request, {"username": account.mxid}))
        AccessAttempt.objects.filter(username__in=names - {None}).delete()


def sign_in_locked(request: HttpRequest, username: str) -> bool:
    return not AxesProxyHandler.is_allowed(request, {"username": username})


def sign_in_failed(request: HttpRequest, username: str) -> None:
    """Count a refused password, as Django's authenticate() would (axes listens to the signal)."""
    user_login_failed.send(sender=__name__, credentials={"username": username}, request=request)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: dict | None
) -> HttpResponse:
    """What a locked-out person sees on any login form (ours or the admin's): the sign-in page with
    the reason, not a bare error page (AXES_LOCKOUT_CALLABLE)."""
    from accounts.forms import SignInForm  # forms import this module

    form = SignInForm(request=request, initial={"username": request.POST.get("username", "")})
    return render(
        request,
        "accounts/login.html",
        {"form": form, "lockout": lockout_message()},
        status=settings.AXES_HTTP_RESPONSE_CODE,
    )
