"""Link previews come from the homeserver's preview API and appear under the message, live."""

import http.server
import threading

import pytest

from tests.e2e.conftest import open_shared_room

pytestmark = pytest.mark.e2e

PAGE = b"""<!doctype html><html><head>
<meta property="og:title" content="Quarterly plan &amp; budget">
<meta property="og:description" content="What we ship next quarter, and what it costs.">
<meta property="og:site_name" content="Intranet">
<title>ignored</title></head><body>plan</body></html>"""


@pytest.fixture
def intranet_page():
    """A web page on loopback with Open Graph tags (the test Synapse may preview 127.0.0.1)."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/html; charset=utf-8")
            self.send_header("Content-Length", str(len(PAGE)))
            self.end_headers()
            self.wfile.write(PAGE)

        def log_message(self, *args):
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}/plan"
    server.shutdown()


def test_link_in_a_message_gets_the_homeservers_preview(
    page, workspace, matrix_user_factory, bob, intranet_page
):
    alice = matrix_user_factory()
    room_id = open_shared_room(page, workspace, alice, bob, "Planning")
    bob.send(room_id, f"The plan is at {intranet_page}.")
    page.wait_for_selector(f"ol.timeline >> text={intranet_page}")
    card = page.wait_for_selector(".link-preview:has-text('Quarterly plan & budget')")
    assert "What we ship next quarter" in card.inner_text()
    assert card.get_attribute("href") == intranet_page
    assert card.get_attribute("rel") == "noopener noreferrer nofollow"
    assert page.errors == []
