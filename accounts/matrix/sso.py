"""Single sign-on through the homeserver (m.login.sso, then m.login.token).

The homeserver talks to the company's identity provider; we only send the browser to the
homeserver's redirect endpoint and exchange the loginToken it hands back for a device. Any homeserver
that speaks the spec works, not only Synapse."""

import urllib.parse
from dataclasses import dataclass

from accounts.matrix.client_api import Session, _session_from
from accounts.matrix.errors import AccountDeactivated, MatrixError
from accounts.matrix.http import endpoint_url, matrix_request, quote


class LoginTokenRefused(MatrixError):
    default_message = (
        "The homeserver did not accept this sign-in (the link was already used, has expired, or "
        "did not come from it). Nothing was signed in: start again with your company's button."
    )


@dataclass(frozen=True)
class IdentityProvider:
    id: str
    name: str


@dataclass(frozen=True)
class LoginFlows:
    """What the homeserver's GET /login offers."""

    password: bool
    sso: bool
    providers: tuple[IdentityProvider, ...]

    @property
    def sso_only(self) -> bool:
        return self.sso and not self.password


def login_flows(homeserver_url: str, *, timeout: float = 5.0) -> LoginFlows:
    """The sign-in methods the homeserver offers, with its identity providers' names.

    Icons are left out on purpose: they are mxc:// URIs that only an authenticated media request
    could fetch, and the sign-in page fetches nothing from another host."""
    reply = matrix_request(homeserver_url, "GET", "/_matrix/client/v3/login", timeout=timeout)
    flows = [f for f in reply.get("flows") or [] if isinstance(f, dict)]
    kinds = {f.get("type") for f in flows}
    providers: list[IdentityProvider] = []
    for flow in flows:
        if flow.get("type") != "m.login.sso":
            continue
        for idp in flow.get("identity_providers") or []:
            if isinstance(idp, dict) and isinstance(idp.get("id"), str) and idp["id"]:
                name = idp.get("name") if isinstance(idp.get("name"), str) else ""
                providers.append(IdentityProvider(id=idp["id"], name=(name or idp["id"])[:80]))
    return LoginFlows(
        password="m.login.password" in kinds,
        sso="m.login.sso" in kinds,
        providers=tuple(providers),
    )


def sso_redirect_url(homeserver_public_url: str, *, idp_id: str, redirect_url: str) -> str:
    """Where the browser goes to sign in with `idp_id`; the homeserver comes back to `redirect_url`
    with a loginToken added to its query. An empty `idp_id` lets the homeserver choose (a server
    with one provider, or its own picker)."""
    path = "/_matrix/client/v3/login/sso/redirect"
    if idp_id:
        path += f"/{quote(idp_id)}"
    query = urllib.parse.urlencode({"redirectUrl": redirect_url})
    return f"{endpoint_url(homeserver_public_url, path)}?{query}"


def token_login(
    homeserver_url: str, *, token: str, device_name: str = "webclient", timeout: float = 15.0
) -> Session:
    """Exchange a loginToken (single use, short-lived) for a new device of its person."""
    body = {
        "type": "m.login.token",
        "token": token,
        "initial_device_display_name": device_name,
    }
    try:
        reply = matrix_request(
            homeserver_url, "POST", "/_matrix/client/v3/login", body=body, timeout=timeout
        )
    except AccountDeactivated:
        raise
    except MatrixError as error:
        if error.status in (400, 401, 403):
            raise LoginTokenRefused(errcode=error.errcode, status=error.status) from None
        raise
    return _session_from(homeserver_url, reply)
