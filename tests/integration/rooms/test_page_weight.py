"""What each message weighs on the room page: DOM nodes and compressed bytes (issue 9's targets,
≤ 40 nodes and ≤ 800 gzip bytes per message). No homeserver is needed: the room is filled in the
database as ingest would fill it (bench/page_weight.py: half the messages our own, some formatted,
some with reactions and replies, random event ids), and the page fetched as a browser would.

bench/page_weight.py prints the same figures (with Chromium's own node count) for the README."""

import gzip

import pytest
from django.contrib.auth import get_user_model
from django.test import Client

from accounts.models import MatrixAccount
from bench.page_weight import fill_room, timeline_nodes

pytestmark = pytest.mark.django_db

MAX_NODES_PER_MESSAGE = 40
MAX_GZIP_BYTES_PER_MESSAGE = 800


@pytest.fixture
def heavy_room_page() -> tuple[bytes, bytes]:
    """(plain HTML, gzip body) of a room page showing the latest messages of 500."""
    user = get_user_model().objects.create_user(username="weigher")
    account = MatrixAccount.objects.create(
        user=user,
        homeserver_url="http://127.0.0.1:9",
        mxid="@weigher:hs",
        device_id="D",
        access_token="t",
    )
    room = fill_room(account, 500)
    client = Client()
    client.force_login(user)
    url = f"/rooms/{room.room_id}/"
    plain = client.get(url)
    packed = client.get(url, HTTP_ACCEPT_ENCODING="gzip")
    assert plain.status_code == packed.status_code == 200
    assert packed["Content-Encoding"] == "gzip"
    return plain.content, packed.content


def test_each_message_stays_under_40_dom_nodes(heavy_room_page):
    html, _ = heavy_room_page
    counter = timeline_nodes(html.decode())
    assert counter.messages >= 40, "the page shows a page of messages"
    per_message = counter.nodes / counter.messages
    assert per_message <= MAX_NODES_PER_MESSAGE, f"{per_message:.1f} nodes per message"


def test_each_message_stays_under_800_compressed_bytes(heavy_room_page):
    html, packed = heavy_room_page
    assert b"data-events-url" in gzip.decompress(packed)
    counter = timeline_nodes(html.decode())
    # The whole page, shell included, divided by the messages it shows.
    per_message = len(packed) / counter.messages
    assert per_message <= MAX_GZIP_BYTES_PER_MESSAGE, f"{per_message:.0f} bytes per message"


def test_the_compressed_page_keeps_breach_padding(heavy_room_page):
    """Django pads each gzip body with random bytes (the header's FNAME field) against BREACH:
    a random-length field no attacker can predict."""
    _, packed = heavy_room_page
    flags = packed[3]
    assert flags & 0x08, "gzip header carries the random FNAME padding"
