"""The sign-in page asks the homeserver what it offers (real Synapse; the SSO round trip itself is
in tests/e2e/test_sso.py, with a real identity provider)."""

import pytest
from django.core.cache import cache

from webclient.embedded.synapse import free_port

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def _fresh_cache():
    cache.clear()
    yield
    cache.clear()


def test_a_homeserver_without_sso_gets_the_password_form_only(client, synapse):
    page = client.get("/accounts/login/").content.decode()
    assert 'name="password"' in page
    assert "sso-buttons" not in page
    assert "cannot be reached" not in page


def test_a_homeserver_that_is_down_still_renders_the_page_with_a_message(client, settings):
    settings.MATRIX_HOMESERVER_URL = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    response = client.get("/accounts/login/")
    assert response.status_code == 200
    page = response.content.decode()
    assert "The Matrix homeserver cannot be reached right now" in page
    assert 'name="password"' in page  # the person can still try; the form reports the outcome
    # Pressing a provider's button that the page could not show says why.
    response = client.get("/accounts/sso/oidc-corp/")
    assert response.status_code == 400
    assert "single sign-on is not available" in response.content.decode()


def test_a_provider_the_homeserver_does_not_offer_is_refused(client, synapse):
    response = client.get("/accounts/sso/oidc-nobody/")
    assert response.status_code == 400
    assert "not offered by the homeserver" in response.content.decode()
    assert "sso_pending" not in client.session


def test_a_return_without_a_nonce_asks_nothing_of_the_homeserver(client, homeserver_calls):
    client.get("/accounts/login/")  # the flows are cached from here on
    calls_before = list(homeserver_calls)
    response = client.get("/accounts/sso/return/?loginToken=syl_forged")
    assert response.status_code == 403
    assert "did not start in this browser" in response.content.decode()
    assert homeserver_calls == calls_before
    assert "_auth_user_id" not in client.session
