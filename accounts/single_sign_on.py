"""Single sign-on around the homeserver's m.login.sso: what the sign-in page offers, and the
one-time nonce that ties a returning loginToken to the browser that set out.

Login CSRF: without the nonce, anyone could send a victim's browser to our return address with the
attacker's own loginToken and sign the victim in as the attacker (who would then read what the
victim writes). The nonce rides in the redirectUrl's query, is kept in the browser's session, and is
used up by the first return that shows it, whatever the outcome."""

import secrets
import time
from dataclasses import dataclass

from django.conf import settings
from django.contrib.sessions.backends.base import SessionBase
from django.core.cache import cache

from accounts.matrix import sso
from accounts.matrix.errors import MatrixError
from accounts.matrix.sso import IdentityProvider, LoginFlows

PENDING_KEY = "sso_pending"
NONCE_PARAM = "sso_state"
NONCE_SECONDS = 15 * 60  # time to sign in at the provider, including a forgotten password
MAX_PENDING = 5  # a few tabs started at once; older ones are dropped, the session stays small
FLOWS_SECONDS = 60  # a provider added on the homeserver shows here within a minute
FLOWS_DOWN_SECONDS = 10  # a homeserver that is down is asked again soon, not at every page load
FLOWS_TIMEOUT = 5.0  # the sign-in page renders even when the homeserver hangs


class SsoRefused(Exception):
    """A return from the homeserver that cannot be trusted; the message says what to do."""


@dataclass(frozen=True)
class LoginOptions:
    """What the sign-in page shows. Without an answer from the homeserver the password form stays
    (the person can still try; the form reports the homeserver's state)."""

    password: bool
    providers: tuple[IdentityProvider, ...]
    unreachable: bool = False


def login_options() -> LoginOptions:
    """The homeserver's sign-in methods, cached briefly in this process."""
    url = settings.MATRIX_HOMESERVER_URL
    key = f"accounts:login-flows:{url}"
    cached = cache.get(key)
    if cached is None:
        try:
            flows: LoginFlows | None = sso.login_flows(
                url, timeout=min(FLOWS_TIMEOUT, settings.MATRIX_HTTP_TIMEOUT)
            )
        except MatrixError:
            flows = None
        cached = {"flows": flows}
        cache.set(key, cached, FLOWS_SECONDS if flows is not None else FLOWS_DOWN_SECONDS)
    flows = cached["flows"]
    if flows is None:
        return LoginOptions(password=True, providers=(), unreachable=True)
    providers = flows.providers if flows.sso else ()
    if flows.sso and not providers:  # the spec lets a homeserver name none: it picks at its end
        providers = (IdentityProvider(id="", name="single sign-on"),)
    return LoginOptions(password=flows.password or not flows.sso, providers=providers)


def homeserver_public_url() -> str:
    """The homeserver's address as browsers reach it (the server may use an internal one)."""
    return settings.MATRIX_HOMESERVER_PUBLIC_URL or settings.MATRIX_HOMESERVER_URL


def sso_begin(session: SessionBase, *, idp_id: str, return_url: str, next_url: str) -> str:
    """Remember a fresh nonce in the session and return where to send the browser.

    `return_url` is our return view's absolute address; the nonce is added to its query."""
    nonce = secrets.token_urlsafe(32)
    now = int(time.time())
    pending = {
        key: entry
        for key, entry in _pending(session).items()
        if now - entry.get("at", 0) < NONCE_SECONDS
    }
    pending[nonce] = {"at": now, "next": next_url}
    while len(pending) > MAX_PENDING:
        pending.pop(min(pending, key=lambda key: pending[key]["at"]))
    session[PENDING_KEY] = pending
    separator = "&" if "?" in return_url else "?"
    return sso.sso_redirect_url(
        homeserver_public_url(),
        idp_id=idp_id,
        redirect_url=f"{return_url}{separator}{NONCE_PARAM}={nonce}",
    )


def sso_nonce_use(session: SessionBase, nonce: str) -> str:
    """Use up the nonce a return brought; returns where the person was going. Refused when the
    nonce is missing, unknown to this browser, used already or too old."""
    pending = _pending(session)
    entry = pending.pop(nonce, None) if nonce else None
    if pending or PENDING_KEY in session:
        session[PENDING_KEY] = pending
    if entry is None:
        raise SsoRefused(
            "This sign-in did not start in this browser, or was already used. Nothing was signed "
            "in. To sign in, use your company's button below."
        )
    if int(time.time()) - entry.get("at", 0) >= NONCE_SECONDS:
        raise SsoRefused(
            "This sign-in took too long and has expired. Nothing was signed in. Start again with "
            "your company's button below."
        )
    return str(entry.get("next") or "")


def _pending(session: SessionBase) -> dict[str, dict]:
    value = session.get(PENDING_KEY)
    return dict(value) if isinstance(value, dict) else {}
