"""Sign-in throttling against the real Synapse: limits per person and per address, checked before
the homeserver is asked, shown as a message on the sign-in page, and reset by a good sign-in."""

import pytest
from axes.models import AccessAttempt

pytestmark = pytest.mark.django_db
LOCKED = "Too many failed sign-ins"
PROXY = "10.0.0.5"


@pytest.fixture(autouse=True)
def limits(settings):
    """Small limits for speed, and a clean slate: no test inherits another's failures."""
    settings.SIGN_IN_FAILURES_PER_USER = 3
    settings.SIGN_IN_FAILURES_PER_ADDRESS = 5
    AccessAttempt.objects.all().delete()
    yield settings
    AccessAttempt.objects.all().delete()


def sign_in(client, username: str, password: str, address: str = "198.51.100.7", **extra):
    return client.post(
        "/accounts/login/",
        {"username": username, "password": password},
        REMOTE_ADDR=address,
        **extra,
    )


def logins(calls: list[str]) -> list[str]:
    return [call for call in calls if call.endswith("/_matrix/client/v3/login")]


def test_a_person_is_locked_out_after_their_limit_without_the_homeserver_asked(
    client, matrix_user_factory, homeserver_calls
):
    alice = matrix_user_factory()
    for _ in range(2):
        assert "do not match" in sign_in(client, alice.localpart, "wrong guess").content.decode()
    third = sign_in(client, alice.localpart, "wrong guess")
    assert third.status_code == 429 and LOCKED in third.content.decode()
    assert len(logins(homeserver_calls)) == 3
    attempt = AccessAttempt.objects.get()
    assert "wrong guess" not in attempt.post_data  # the record an admin sees keeps no password
    homeserver_calls.clear()

    # Even the right password is not tried now: the homeserver hears nothing.
    locked = sign_in(client, alice.localpart, alice.password)
    page = locked.content.decode()
    assert locked.status_code == 429
    assert LOCKED in page and "Wait 15 minutes" in page
    assert '<form method="post"' in page and 'name="password"' in page  # the sign-in page itself
    assert homeserver_calls == []
    assert "_auth_user_id" not in client.session
    # The full Matrix ID is the same person: no fresh budget.
    assert sign_in(client, alice.user_id, alice.password).status_code == 429
    assert homeserver_calls == []


def test_the_lockout_is_per_person_not_for_everyone(client, matrix_user_factory):
    alice, bob = matrix_user_factory(), matrix_user_factory()
    for _ in range(3):
        sign_in(client, alice.localpart, "wrong guess")
    assert sign_in(client, alice.localpart, alice.password).status_code == 429
    assert sign_in(client, bob.localpart, bob.password).status_code == 302


def test_one_address_trying_many_accounts_is_stopped(client, matrix_user_factory, homeserver_calls):
    victims = [matrix_user_factory() for _ in range(3)]
    for victim in victims:  # 2 guesses each: under the per-person limit, 6 from one address
        for _ in range(2):
            sign_in(client, victim.localpart, "wrong guess", address="203.0.113.66")
    homeserver_calls.clear()
    newcomer = matrix_user_factory()
    refused = sign_in(client, newcomer.localpart, newcomer.password, address="203.0.113.66")
    assert refused.status_code == 429 and LOCKED in refused.content.decode()
    assert logins(homeserver_calls) == []
    # The same person from their own address is fine: the address was the problem.
    assert sign_in(client, newcomer.localpart, newcomer.password).status_code == 302


def test_a_successful_sign_in_resets_the_persons_count(client, matrix_user_factory):
    alice = matrix_user_factory()
    for _ in range(2):
        sign_in(client, alice.localpart, "wrong guess")
    assert sign_in(client, alice.localpart, alice.password).status_code == 302
    client.post("/accounts/logout/")
    for _ in range(2):  # without the reset this would be failures 3 and 4: locked
        assert sign_in(client, alice.localpart, "wrong guess").status_code == 400
    assert sign_in(client, alice.localpart, alice.password).status_code == 302


def test_a_homeserver_that_is_down_costs_nobody_their_budget(client, settings):
    settings.MATRIX_HOMESERVER_URL = "http://127.0.0.1:9"
    for _ in range(4):
        response = sign_in(client, "alice", "secret password")
        assert response.status_code == 400 and "cannot be reached" in response.content.decode()
    assert not AccessAttempt.objects.exists()


def test_people_behind_one_trusted_proxy_are_counted_by_their_own_address(
    client, settings, matrix_user_factory
):
    settings.TRUSTED_PROXIES = [PROXY]
    victims = [matrix_user_factory() for _ in range(3)]
    for victim in victims:
        for _ in range(2):
            sign_in(
                client, victim.localpart, "wrong guess", PROXY, HTTP_X_FORWARDED_FOR="203.0.113.66"
            )
    colleague = matrix_user_factory()
    behind = {"address": PROXY, "HTTP_X_FORWARDED_FOR": "198.51.100.20"}
    assert sign_in(client, colleague.localpart, colleague.password, **behind).status_code == 302
    client.post("/accounts/logout/")
    attacker = {"address": PROXY, "HTTP_X_FORWARDED_FOR": "203.0.113.66"}
    assert sign_in(client, colleague.localpart, colleague.password, **attacker).status_code == 429


def test_the_admin_login_is_throttled_too_and_explains_itself(
    client, matrix_user_factory, homeserver_calls
):
    alice = matrix_user_factory()
    for _ in range(3):
        client.post(
            "/admin/login/?next=/admin/",
            {"username": alice.localpart, "password": "wrong guess"},
            REMOTE_ADDR="198.51.100.7",
        )
    homeserver_calls.clear()
    response = client.post(
        "/admin/login/?next=/admin/",
        {"username": alice.localpart, "password": alice.password},
        REMOTE_ADDR="198.51.100.7",
    )
    assert response.status_code == 429
    assert LOCKED in response.content.decode()
    assert homeserver_calls == []
