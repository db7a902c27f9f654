"""The single sign-on nonce (login CSRF) and the reading of the homeserver's sign-in methods."""

import urllib.parse

import pytest
from django.contrib.sessions.backends.signed_cookies import SessionStore

from accounts import single_sign_on
from accounts.matrix import sso
from accounts.single_sign_on import NONCE_PARAM, SsoRefused, sso_begin, sso_nonce_use

RETURN = "https://chat.example.com/accounts/sso/return/"


@pytest.fixture(autouse=True)
def _homeserver(settings):
    settings.MATRIX_HOMESERVER_URL = "http://hs.internal:8008"
    settings.MATRIX_HOMESERVER_PUBLIC_URL = "https://matrix.example.com"


def begin(session, next_url: str = "") -> str:
    """Press the button; returns the nonce carried in the homeserver redirect's redirectUrl."""
    location = sso_begin(session, idp_id="oidc-corp", return_url=RETURN, next_url=next_url)
    parts = urllib.parse.urlsplit(location)
    assert f"{parts.scheme}://{parts.netloc}{parts.path}" == (
        "https://matrix.example.com/_matrix/client/v3/login/sso/redirect/oidc-corp"
    )
    (redirect_url,) = urllib.parse.parse_qs(parts.query)["redirectUrl"]
    assert redirect_url.startswith(RETURN + "?")
    return urllib.parse.parse_qs(urllib.parse.urlsplit(redirect_url).query)[NONCE_PARAM][0]


def test_a_nonce_is_used_once_and_only_in_its_own_session():
    session, other = SessionStore(), SessionStore()
    nonce = begin(session, next_url="/rooms/!a:hs/")
    with pytest.raises(SsoRefused, match="did not start in this browser"):
        sso_nonce_use(other, nonce)
    assert sso_nonce_use(session, nonce) == "/rooms/!a:hs/"
    with pytest.raises(SsoRefused, match="already used"):
        sso_nonce_use(session, nonce)


@pytest.mark.parametrize("nonce", ["", "guess", " "])
def test_a_missing_or_unknown_nonce_is_refused(nonce):
    session = SessionStore()
    begin(session)
    with pytest.raises(SsoRefused):
        sso_nonce_use(session, nonce)


def test_an_old_nonce_has_expired(monkeypatch):
    session = SessionStore()
    nonce = begin(session)
    later = single_sign_on.time.time() + single_sign_on.NONCE_SECONDS + 1
    monkeypatch.setattr(single_sign_on.time, "time", lambda: later)
    with pytest.raises(SsoRefused, match="expired"):
        sso_nonce_use(session, nonce)
    with pytest.raises(SsoRefused, match="already used"):  # and it is gone
        sso_nonce_use(session, nonce)


def test_several_tabs_may_set_out_but_the_session_stays_small(monkeypatch):
    session = SessionStore()
    clock = iter(range(1_000_000, 1_000_100))
    monkeypatch.setattr(single_sign_on.time, "time", lambda: next(clock))
    nonces = [begin(session) for _ in range(single_sign_on.MAX_PENDING + 2)]
    assert len(session[single_sign_on.PENDING_KEY]) == single_sign_on.MAX_PENDING
    with pytest.raises(SsoRefused):
        sso_nonce_use(session, nonces[0])  # the oldest were dropped
    assert sso_nonce_use(session, nonces[-1]) == ""


def test_login_flows_read_providers_and_sso_only(monkeypatch):
    reply = {
        "flows": [
            {
                "type": "m.login.sso",
                "identity_providers": [
                    {"id": "oidc-corp", "name": "Example Corp", "icon": "mxc://hs/abc"},
                    {"id": "saml"},
                    {"name": "no id"},
                    "junk",
                ],
            },
            {"type": "m.login.token"},
        ]
    }
    monkeypatch.setattr(sso, "matrix_request", lambda *args, **kwargs: reply)
    flows = sso.login_flows("http://hs")
    assert flows.sso_only
    assert [(p.id, p.name) for p in flows.providers] == [
        ("oidc-corp", "Example Corp"),
        ("saml", "saml"),
    ]
    reply["flows"].append({"type": "m.login.password"})
    assert not sso.login_flows("http://hs").sso_only


@pytest.mark.parametrize(
    ("kinds", "password", "buttons"),
    [
        (["m.login.password"], True, []),
        (["m.login.password", "m.login.sso"], True, [("oidc-corp", "Example Corp")]),
        (["m.login.sso", "m.login.token"], False, [("oidc-corp", "Example Corp")]),
    ],
)
def test_login_options_follow_the_homeserver(monkeypatch, kinds, password, buttons):
    providers = (sso.IdentityProvider("oidc-corp", "Example Corp"),)
    flows = sso.LoginFlows(
        password="m.login.password" in kinds, sso="m.login.sso" in kinds, providers=providers
    )
    monkeypatch.setattr(sso, "login_flows", lambda *args, **kwargs: flows)
    single_sign_on.cache.clear()
    options = single_sign_on.login_options()
    assert options.password is password
    assert [(p.id, p.name) for p in options.providers] == buttons


def test_a_homeserver_naming_no_provider_gets_one_button_it_resolves(monkeypatch):
    flows = sso.LoginFlows(password=False, sso=True, providers=())
    monkeypatch.setattr(sso, "login_flows", lambda *args, **kwargs: flows)
    single_sign_on.cache.clear()
    options = single_sign_on.login_options()
    assert [(p.id, p.name) for p in options.providers] == [("", "single sign-on")]
    assert not options.password
    assert sso.sso_redirect_url("https://hs", idp_id="", redirect_url="https://c/r?x=1") == (
        "https://hs/_matrix/client/v3/login/sso/redirect?redirectUrl=https%3A%2F%2Fc%2Fr%3Fx%3D1"
    )
