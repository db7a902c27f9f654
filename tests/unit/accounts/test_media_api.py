"""mxc:// references are checked by the spec's grammar before any request leaves for the homeserver."""

import pytest

from accounts.matrix import media_api
from accounts.matrix.media_api import parse_mxc, valid_server_name

GOOD = [
    ("mxc://example.org/abc123", ("example.org", "abc123")),
    ("mxc://localhost/A-b_C", ("localhost", "A-b_C")),
    ("mxc://matrix.example.org:8448/x", ("matrix.example.org:8448", "x")),
    ("mxc://1.2.3.4/x", ("1.2.3.4", "x")),
    ("mxc://1.2.3.4:1/x", ("1.2.3.4:1", "x")),
    ("mxc://[::1]/x", ("[::1]", "x")),
    ("mxc://[2001:db8::7]:65535/x", ("[2001:db8::7]:65535", "x")),
    ("mxc://a-b.c-d.example/x", ("a-b.c-d.example", "x")),
]

BAD = [
    "mxc://../abcdef",  # the proxy would ask for /download/../abcdef (CVE-2024-50336's shape)
    "mxc://./abcdef",
    "mxc://-/abcdef",
    "mxc://-example.org/x",
    "mxc://example-.org/x",
    "mxc://example..org/x",
    "mxc://.example.org/x",
    "mxc://example.org./x",
    "mxc://example.org:99999/x",
    "mxc://example.org:0/x",
    "mxc://example.org:/x",
    "mxc://example.org:08/x",
    "mxc://example.org:80:80/x",
    "mxc://[::1/x",
    "mxc://[::1]x/x",
    "mxc://[not:an:ip]/x",
    "mxc://[1.2.3.4]/x",
    "mxc:///x",
    "mxc://example.org/",
    "mxc://example.org/..",
    "mxc://example.org/a.b",
    "mxc://example.org/a/b",
    "mxc://example.org/a%2F..",
    "mxc://example.org/abc\n",  # "$" in a regex would let the newline through
    "mxc://example.org\n/abc",
    "mxc://exa mple.org/abc",
    "mxc://user@example.org/abc",
    "mxc://example.org/" + "a" * 256,
    "mxc://" + "a" * 256 + "/x",
    "https://example.org/abc",
    "",
]


@pytest.mark.parametrize(("uri", "parts"), GOOD)
def test_well_formed_references_parse(uri, parts):
    assert parse_mxc(uri) == parts


@pytest.mark.parametrize("uri", BAD)
def test_malformed_references_are_refused(uri):
    assert parse_mxc(uri) is None


@pytest.mark.parametrize(
    "server_name", ["..", ".", "-", "example.org:99999", "a\n", "[::1]:0", "", None, 5]
)
def test_malformed_server_names_never_reach_the_homeserver(server_name, monkeypatch):
    def no_request(*args, **kwargs):
        raise AssertionError("a request was made")

    monkeypatch.setattr(media_api.urllib.request, "urlopen", no_request)
    monkeypatch.setattr(media_api, "matrix_fetch_bytes", no_request)
    assert not valid_server_name(server_name)
    for call in (media_api.open_download, media_api.fetch_thumbnail):
        kwargs = {"size": 96} if call is media_api.fetch_thumbnail else {}
        with pytest.raises(ValueError, match="malformed media reference"):
            call(
                "http://127.0.0.1:9",
                access_token="t",
                server_name=server_name,
                media_id="abcdef",
                **kwargs,
            )


@pytest.mark.parametrize("media_id", ["..", "a/b", "a.b", "", "abc\n", "x" * 256])
def test_malformed_media_ids_never_reach_the_homeserver(media_id):
    with pytest.raises(ValueError, match="malformed media reference"):
        media_api.check_media("example.org", media_id)
