"""Link previews from the homeserver's preview API (a real Synapse fetching a loopback page)."""

import http.server
import re
import threading
import urllib.request
import uuid
from dataclasses import dataclass, field

import pytest

from accounts.matrix import media_api
from rooms import previews
from rooms.models import Event, LinkPreview, Room
from tests.e2e.test_link_previews import PAGE, intranet_page  # noqa: F401 (fixture)
from tests.integration.rooms.helpers import (
    create_room,
    join,
    send_event,
    signed_in_account,
    sync_and_ingest,
    text,
)

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


@dataclass
class RecordingSite:
    """The same page served on two loopback addresses, recording every request it gets.

    127.0.0.1 is the one address the test homeserver may preview (its whitelist); 127.0.0.2 is as
    reachable (all of 127/8 is loopback) but private, like any address on a company network."""

    port: int
    fetched: list[str] = field(default_factory=list)

    def url(self, host: str, path: str) -> str:
        return f"http://{host}:{self.port}{path}"


@pytest.fixture
def recording_site():
    site = RecordingSite(port=0)

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            site.fetched.append(f"{self.headers['Host']}{self.path}")
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    public = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    site.port = public.server_address[1]
    private = http.server.ThreadingHTTPServer(("127.0.0.2", site.port), Handler)
    servers = [public, private]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    yield site
    for server in servers:
        server.shutdown()
        server.server_close()


def test_a_link_to_a_private_address_is_never_fetched_nor_previewed(
    client, synapse, matrix_user_factory, recording_site, monkeypatch
):
    """Bob posts two links to the same page: one on the address the homeserver may preview, one on
    a private address. Only the first is fetched and previewed; the private page never sees a
    request, though it answers anyone who asks."""
    queued: list[list[str]] = []
    monkeypatch.setattr(previews, "_enqueue", lambda account_id, ids: queued.append(ids))
    alice, bob = matrix_user_factory(), matrix_user_factory()
    account = signed_in_account(client, alice)
    room_id = create_room(bob, invite=[alice.user_id], name="Links")
    join(account, room_id)
    tag = uuid.uuid4().hex[:8]  # the homeserver caches previews by URL: fresh ones per run
    allowed = recording_site.url("127.0.0.1", f"/allowed-{tag}")
    private = recording_site.url("127.0.0.2", f"/private-{tag}")
    with urllib.request.urlopen(private, timeout=5) as response:
        assert b"Quarterly plan" in response.read()  # reachable: only a refusal keeps it out
    recording_site.fetched.clear()
    send_event(bob, room_id, text(f"The plan: {allowed}"))
    send_event(bob, room_id, text(f"The admin page: {private}"))

    sync_and_ingest(account)
    assert len(queued) == 1 and len(queued[0]) == 2, queued  # both links were asked about
    assert previews.fetch(account_id=account.pk, event_ids=queued[0]) == 2

    assert recording_site.fetched == [allowed.removeprefix("http://")]
    assert not LinkPreview.objects.get(url=allowed).failed
    assert LinkPreview.objects.get(url=private).failed
    page = client.get(f"/rooms/{room_id}/").content.decode()
    cards = re.findall(r'<a class="link-preview" href="([^"]+)"', page)
    assert cards == [allowed]
    assert "Quarterly plan &amp; budget" in page
