"""Single sign-on end to end: our sign-in page -> the homeserver's m.login.sso -> a real OpenID
Connect provider's sign-in form -> the homeserver's callback -> back to us with a loginToken -> the
person's workspace. Two Synapses trust the provider: one also offers passwords, the other only SSO.
The workspace here is its web process alone (no sync hosts): signing in is all these tests need."""

import os
import sqlite3
import urllib.parse
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from accounts.matrix.http import matrix_request, quote
from accounts.matrix.synapse_admin import register_with_shared_secret
from tests.e2e.conftest import ROOT, _broker_url
from tests.e2e.test_content_security_policy import WATCH_VIOLATIONS
from tests.sso.oidc_provider import OidcProvider
from webclient.embedded.processes import ProcessGroup, free_port, manage, wait_http, web_command
from webclient.embedded.synapse import SynapseProcess, start_synapse

pytestmark = pytest.mark.e2e

PEOPLE = {
    "ada": {"password": "ada-pass-1815", "name": "Ada Lovelace", "email": "ada@example.com"},
    "grace": {"password": "grace-pass-1906", "name": "Grace Hopper", "email": "grace@example.com"},
    "linus": {
        "password": "linus-pass-1969",
        "name": "Linus Torvalds",
        "email": "linus@example.com",
    },
}
CLIENT_SECRET = "synapse-client-secret-for-tests-only"
PROVIDER_NAME = "Example Corp"
IDP = "oidc-corp"  # Synapse prefixes the configured idp_id with "oidc-"


@dataclass
class SsoStack:
    provider: OidcProvider
    synapse: SynapseProcess
    url: str  # the workspace on the Synapse that offers SSO and passwords
    sso_only_url: str  # the same workspace's web process on the SSO-only Synapse
    database: Path


def sso_config(issuer: str, workspace_url: str) -> dict:
    """What an operator adds to homeserver.yaml (README: "Single sign-on")."""
    return {
        "oidc_providers": [
            {
                "idp_id": "corp",
                "idp_name": PROVIDER_NAME,
                "issuer": issuer,
                "discover": True,
                "skip_verification": True,  # loopback http; a real provider speaks https
                "client_id": "synapse",
                "client_secret": CLIENT_SECRET,
                "scopes": ["openid", "profile", "email"],
                "user_profile_method": "userinfo_endpoint",
                "user_mapping_provider": {
                    "config": {
                        "localpart_template": "{{ user.preferred_username }}",
                        "display_name_template": "{{ user.name }}",
                        "email_template": "{{ user.email }}",
                    }
                },
            }
        ],
        # Back to the workspace without Synapse's "Continue to your account" page.
        "sso": {"client_whitelist": [workspace_url + "/"]},
    }


def _web(root: Path, name: str, synapse: SynapseProcess, redis_url: str, database: Path):
    """The environment of a web process of the workspace on `synapse` (one database for both)."""
    env = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "webclient.settings.embedded",
        "WEBCLIENT_DATA_DIR": str(root),
        "DATABASE_URL": f"sqlite:///{database}",
        "REDIS_URL": redis_url,
        "CELERY_BROKER_URL": _broker_url(redis_url),
        "CHANNELS_PREFIX": f"sso-{uuid.uuid4().hex[:8]}",
        "MATRIX_HOMESERVER_URL": synapse.url,
        "MATRIX_REGISTRATION_SHARED_SECRET": synapse.shared_secret,
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1,localhost",
    }
    return ProcessGroup(cwd=ROOT, env=env, log_dir=root / f"logs-{name}")


@pytest.fixture(scope="module")
def sso_stack(tmp_path_factory, redis_url) -> Iterator[SsoStack]:
    root = tmp_path_factory.mktemp("sso")
    web_port, only_web_port, hs_port, only_hs_port, idp_port = (free_port() for _ in range(5))
    provider = OidcProvider.start(
        root / "provider",
        port=idp_port,
        clients=[
            {
                "client_id": "synapse",
                "client_secret": CLIENT_SECRET,
                "redirect_uris": [
                    f"http://127.0.0.1:{port}/_synapse/client/oidc/callback"
                    for port in (hs_port, only_hs_port)
                ],
            }
        ],
        accounts=PEOPLE,
    )
    started: list = [provider]
    try:
        synapse = start_synapse(
            root / "synapse",
            port=hs_port,
            for_tests=True,
            extra_config=sso_config(provider.issuer, f"http://127.0.0.1:{web_port}"),
        )
        started.append(synapse)
        sso_only = start_synapse(
            root / "synapse-sso-only",
            port=only_hs_port,
            for_tests=True,
            extra_config={
                **sso_config(provider.issuer, f"http://127.0.0.1:{only_web_port}"),
                "password_config": {"enabled": False},
            },
        )
        started.append(sso_only)
        database = root / "workspace.sqlite3"
        group = _web(root, "sso", synapse, redis_url, database)
        started.append(group)
        group.run(*manage("migrate", "-v0"))
        group.run(*manage("collectstatic", "--noinput", "-v0"))
        web = group.start("web", *web_command("127.0.0.1", web_port))
        only_group = _web(root, "sso-only", sso_only, redis_url, database)
        started.append(only_group)
        only_web = only_group.start("web", *web_command("127.0.0.1", only_web_port))
        url, only_url = f"http://127.0.0.1:{web_port}", f"http://127.0.0.1:{only_web_port}"
        wait_http(url + "/accounts/login/", web)
        wait_http(only_url + "/accounts/login/", only_web)
        yield SsoStack(provider, synapse, url, only_url, database)
    finally:
        for thing in reversed(started):
            thing.stop()
        for name in ("logs-sso/web.log", "logs-sso-only/web.log", "provider/oidc-provider.log"):
            path = root / name
            if path.exists():
                print(f"--- {name} (tail) ---\n{path.read_text(errors='replace')[-3000:]}")


def sso_sign_in(
    page, stack: SsoStack, login: str, *, start: str = "/accounts/login/", landing: str = "/"
) -> None:
    """Click the provider's button, sign in at its form, allow access if it asks, and land."""
    page.goto(stack.url + start)
    page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").click()
    page.wait_for_selector("input[name=login]")  # the provider's own page
    assert page.url.startswith(stack.provider.issuer)
    page.fill("input[name=login]", login)
    page.fill("input[name=password]", PEOPLE[login]["password"])
    page.click("button[type=submit]")
    page.wait_for_url(lambda url: url == stack.url + landing or "/interaction/" in url)
    if page.url != stack.url + landing:
        allow = page.get_by_role("button", name="Allow")
        allow.wait_for()
        allow.click()
    page.wait_for_url(stack.url + landing)


def workspace_people(database: Path, login: str) -> list[tuple[str, str, str]]:
    """(Django username, Matrix ID, device) of the workspace's people signed in as `login`."""
    with sqlite3.connect(database) as db:
        return db.execute(
            "SELECT u.username, a.mxid, a.device_id FROM auth_user u "
            "JOIN accounts_matrixaccount a ON a.user_id = u.id WHERE a.mxid LIKE ?",
            (f"@{login}:%",),
        ).fetchall()


def _admin_token(synapse: SynapseProcess) -> str:
    return register_with_shared_secret(
        synapse.url,
        shared_secret=synapse.shared_secret,
        localpart=f"admin-{uuid.uuid4().hex[:8]}",
        password=uuid.uuid4().hex,
        admin=True,
    ).access_token


def homeserver_devices(synapse: SynapseProcess, user_id: str) -> list[str]:
    reply = matrix_request(
        synapse.url,
        "GET",
        f"/_synapse/admin/v2/users/{quote(user_id)}/devices",
        token=_admin_token(synapse),
    )
    return sorted(device["device_id"] for device in reply["devices"])


def test_first_sign_in_creates_the_person_and_the_next_one_keeps_their_device(
    browser, sso_stack, artifacts
):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.add_init_script(WATCH_VIOLATIONS)  # our pages keep their Content-Security-Policy
    page = context.new_page()
    try:
        page.goto(sso_stack.url + "/accounts/login/")
        button = page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}")
        assert button.is_visible()
        assert page.locator("#id_password").is_visible()  # this homeserver offers passwords too
        assert page.evaluate("window.__csp") == []
        page.screenshot(path=str(artifacts / "sso-login.png"))

        sso_sign_in(page, sso_stack, "ada")
        assert page.locator(".me-id").inner_text() == "@ada:localhost"
        assert page.evaluate("window.__csp") == []
        people = workspace_people(sso_stack.database, "ada")
        assert [(name, mxid) for name, mxid, _ in people] == [("ada", "@ada:localhost")]
        device = people[0][2]
    finally:
        context.close()

    # Another browser (the provider signs Ada in again): the same person, with the same device.
    context = browser.new_context()
    page = context.new_page()
    try:
        sso_sign_in(page, sso_stack, "ada")
        assert page.locator(".me-id").inner_text() == "@ada:localhost"
    finally:
        context.close()
    assert workspace_people(sso_stack.database, "ada") == [("ada", "@ada:localhost", device)]
    # The device made by the second exchange only proved who signed in: it is gone again.
    assert homeserver_devices(sso_stack.synapse, "@ada:localhost") == [device]


def test_a_device_the_homeserver_revoked_is_replaced_at_the_next_sign_in(browser, sso_stack):
    context = browser.new_context()
    try:
        sso_sign_in(context.new_page(), sso_stack, "linus")
    finally:
        context.close()
    ((_, _, revoked),) = workspace_people(sso_stack.database, "linus")
    matrix_request(  # an admin (or the person, in another client) removes the device
        sso_stack.synapse.url,
        "DELETE",
        f"/_synapse/admin/v2/users/{quote('@linus:localhost')}/devices/{quote(revoked)}",
        token=_admin_token(sso_stack.synapse),
    )
    context = browser.new_context()
    try:
        page = context.new_page()
        sso_sign_in(page, sso_stack, "linus")
        assert page.locator(".me-id").inner_text() == "@linus:localhost"
    finally:
        context.close()
    ((name, _, device),) = workspace_people(sso_stack.database, "linus")
    assert name == "linus" and device != revoked
    assert homeserver_devices(sso_stack.synapse, "@linus:localhost") == [device]


def _refusal(page) -> str:
    return page.locator("[role=alert]").inner_text()


def test_a_login_token_needs_the_nonce_of_the_browser_that_set_out(browser, sso_stack, artifacts):
    returns: list[str] = []
    first = browser.new_context()
    page = first.new_page()
    page.on(
        "request",
        lambda request: (
            returns.append(request.url) if "/accounts/sso/return/" in request.url else None
        ),
    )
    other = browser.new_context()
    stranger = other.new_page()
    try:
        sso_sign_in(page, sso_stack, "grace")
        (return_url,) = returns
        query = urllib.parse.parse_qs(urllib.parse.urlsplit(return_url).query)
        used_token = query["loginToken"][0]
        assert query["sso_state"][0]

        # Another browser cannot use the address (login CSRF): its session never held the nonce.
        response = stranger.goto(return_url)
        assert response.status == 403
        assert "did not start in this browser" in _refusal(stranger)
        stranger.screenshot(path=str(artifacts / "sso-refused.png"))
        # A loginToken without any nonce is refused before the homeserver hears of it.
        response = stranger.goto(sso_stack.url + "/accounts/sso/return/?loginToken=" + used_token)
        assert response.status == 403
        # The browser that set out cannot replay it either: the nonce was used up.
        response = page.goto(return_url)
        assert response.status == 403
        assert "already used" in _refusal(page)

        # A nonce of its own, but a forged token, then the used one: the homeserver refuses both.
        for token in ("forged-" + uuid.uuid4().hex, used_token):
            redirect_url = _fresh_return_address(stranger, sso_stack)
            response = stranger.goto(f"{redirect_url}&loginToken={urllib.parse.quote(token)}")
            assert response.status == 403
            assert "did not accept this sign-in" in _refusal(stranger)
        stranger.goto(sso_stack.url + "/")
        assert stranger.url.startswith(sso_stack.url + "/accounts/login/")  # never signed in
    finally:
        first.close()
        other.close()


def _fresh_return_address(page, stack: SsoStack) -> str:
    """Follow the provider's button only as far as the homeserver: the redirectUrl (our return
    address with this browser's fresh nonce) the homeserver would come back to. The context's own
    request client shares the browser's cookies, so the nonce lands in this browser's session."""
    page.goto(stack.url + "/accounts/login/")
    href = page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").get_attribute("href")
    response = page.request.get(stack.url + href, max_redirects=0)
    assert response.status == 302
    held = response.headers["location"]
    assert held.startswith(f"{stack.synapse.url}/_matrix/client/v3/login/sso/redirect/{IDP}?")
    return urllib.parse.parse_qs(urllib.parse.urlsplit(held).query)["redirectUrl"][0]


def test_a_homeserver_that_offers_only_sso_gets_no_password_form(browser, sso_stack, artifacts):
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    page = context.new_page()
    try:
        page.goto(sso_stack.sso_only_url + "/accounts/login/")
        assert page.get_by_role("link", name=f"Sign in with {PROVIDER_NAME}").is_visible()
        assert page.locator("form input[type=password]").count() == 0
        assert page.locator("text=Matrix user name").count() == 0
        page.screenshot(path=str(artifacts / "sso-only-login.png"))
    finally:
        context.close()


def test_staff_reach_the_admin_through_single_sign_on(browser, sso_stack, artifacts):
    """On an SSO-only homeserver the admin's password form cannot let staff in: its login page
    offers the provider too, and the round trip comes back to the admin."""
    context = browser.new_context()
    try:
        sso_sign_in(context.new_page(), sso_stack, "grace")  # the first sign-in creates Grace
    finally:
        context.close()
    with sqlite3.connect(sso_stack.database) as db:
        db.execute("UPDATE auth_user SET is_staff = 1, is_superuser = 1 WHERE username = 'grace'")
    context = browser.new_context(viewport={"width": 1100, "height": 760})
    context.add_init_script(WATCH_VIOLATIONS)
    page = context.new_page()
    try:
        page.goto(sso_stack.url + "/admin/login/?next=/admin/")
        assert page.evaluate("window.__csp") == []
        page.screenshot(path=str(artifacts / "sso-admin-login.png"))
        sso_sign_in(page, sso_stack, "grace", start="/admin/login/?next=/admin/", landing="/admin/")
        assert page.get_by_role("heading", name="Administration").is_visible()
    finally:
        context.close()
