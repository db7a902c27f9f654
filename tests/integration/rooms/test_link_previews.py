"""Link previews from the homeserver's preview API (a real Synapse fetching a loopback page)."""

import pytest

from accounts.matrix import media_api
from rooms import previews
from rooms.models import Event, LinkPreview, Room
from tests.e2e.test_link_previews import intranet_page  # noqa: F401 (fixture)
from tests.integration.rooms.helpers import signed_in_account

pytestmark = pytest.mark.django_db(transaction=True)


def stored_message(room_id: str, event_id: str, body: str) -> None:
    """A text message from someone else, as ingest would have stored it."""
    Event.objects.create(
        event_id=event_id,
        room=Room.objects.create(room_id=room_id),
        sender="@bob:localhost",
        event_type="m.room.message",
        raw={"type": "m.room.message", "content": {"msgtype": "m.text", "body": body}},
    )


def test_homeserver_previews_a_link_and_we_keep_it(
    client,
    synapse,
    matrix_user_factory,
    intranet_page,  # noqa: F811
):
    account = signed_in_account(client, matrix_user_factory())
    og = media_api.preview_url(
        account.homeserver_url, access_token=account.access_token, url=intranet_page
    )
    assert og.get("og:title") == "Quarterly plan & budget", og
    stored_message("!previews:localhost", "$with-link", f"see {intranet_page}.")
    assert previews.fetch(account_id=account.pk, event_ids=["$with-link"]) == 1
    preview = LinkPreview.objects.get(url=intranet_page)
    assert preview.title == "Quarterly plan & budget" and not preview.failed
    assert previews.fetch(account_id=account.pk, event_ids=["$with-link"]) == 0  # kept


def test_private_addresses_are_refused_by_the_homeserver(client, synapse, matrix_user_factory):
    account = signed_in_account(client, matrix_user_factory())
    stored_message("!private:localhost", "$private-link", "http://10.1.2.3/admin")
    previews.fetch(account_id=account.pk, event_ids=["$private-link"])
    assert LinkPreview.objects.get(url="http://10.1.2.3/admin").failed
