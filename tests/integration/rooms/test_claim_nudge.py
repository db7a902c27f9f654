"""Hosts are nudged to claim an account at once when it needs an owner, and only then: a
returning sign-in of an account a host owns changes its token, and that host picks it up."""

import pytest
from django.contrib.auth import get_user_model

from accounts.models import MatrixAccount
from rooms import notify
from rooms.sync.leases import lease_claim, lease_release

pytestmark = pytest.mark.django_db(transaction=True)


def test_only_an_account_without_a_live_owner_nudges_the_hosts(monkeypatch):
    nudges: list[None] = []
    monkeypatch.setattr(notify, "hosts_claim_now", lambda: nudges.append(None))
    user = get_user_model().objects.create_user(username="nudged")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@nudged:hs",
        device_id="D",
        access_token="syt_1",
    )
    assert len(nudges) == 1  # a new account

    token = lease_claim(account_id=account.pk, owner="host-a", seconds=30)
    account.access_token = "syt_2"
    account.save(update_fields=["access_token"])
    assert len(nudges) == 1  # host-a owns it and picks the new token up

    lease_release(account_id=account.pk, owner="host-a", token=token)
    account.access_token = "syt_3"
    account.save(update_fields=["access_token"])
    assert len(nudges) == 2  # nobody owns it: claim it now
