"""The one sanitizer: idempotent, inside the Matrix allowlist, and deaf to every corpus payload."""

import re
from html.parser import HTMLParser

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from rooms.rendering import ALLOWED_ATTRIBUTES, ALLOWED_TAGS, MAX_NESTING, sanitize_html
from tests.fixtures.xss_corpus import PAYLOADS


class _Collect(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.found: list[tuple[str, list[tuple[str, str | None]]]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.found.append((tag, attrs))


def elements(html: str) -> list[tuple[str, list[tuple[str, str | None]]]]:
    parser = _Collect()
    parser.feed(html)
    parser.close()
    return parser.found


# What a link may point at once sanitized: absolute http(s) with a host, or mailto; no whitespace.
SAFE_HREF = re.compile(r"(?:https?://[^\s/?#@\\]+(?:[/?#][^\s\\]*)?|mailto:\S+)", re.IGNORECASE)


def assert_inside_allowlist(html: str) -> None:
    for tag, attrs in elements(html):
        if tag == "a":
            # Every link opens in a new context that cannot reach back into the workspace.
            assert ("target", "_blank") in attrs, html
            assert ("rel", "noopener noreferrer") in attrs, html
        assert tag in ALLOWED_TAGS, (tag, html)
        for name, value in attrs:
            allowed = ALLOWED_ATTRIBUTES.get(tag, set()) | (
                {"rel", "target"} if tag == "a" else set()
            )
            assert name in allowed, (tag, name, html)
            assert not name.startswith(("on", "hx-", "data-hx")), html
            lowered = (value or "").strip().lower()
            assert not lowered.startswith(("javascript:", "vbscript:", "data:")), html
            if tag == "img" and name == "src":
                assert value.startswith("/media/"), html
            if name in ("color", "data-mx-color", "data-mx-bg-color"):
                assert re.fullmatch(r"#[0-9a-fA-F]{6}", value or ""), html
            if tag == "a" and name == "href":
                assert SAFE_HREF.fullmatch(value or ""), html
            if name in ("start", "width", "height"):
                assert re.fullmatch(r"-?[0-9]+", value or ""), html


@pytest.mark.parametrize("payload", PAYLOADS)
def test_corpus_payload_is_neutralised(payload):
    clean = sanitize_html(payload)
    assert_inside_allowlist(clean)
    assert "<script" not in clean.lower()


def test_links_get_noopener_and_reply_fallbacks_vanish():
    clean = sanitize_html(
        '<mx-reply><blockquote>old</blockquote></mx-reply><a href="https://x.org">x</a>'
    )
    assert "old" not in clean
    assert 'rel="noopener noreferrer"' in clean


def test_matrix_images_go_through_our_proxy_and_remote_ones_are_dropped():
    assert 'src="/media/avatar/hs.example/abc123"' in sanitize_html(
        '<img src="mxc://hs.example/abc123">'
    )
    assert "evil" not in sanitize_html('<img src="https://evil.example/x.png">')


def test_nesting_beyond_the_limit_becomes_text():
    deep = "<blockquote>" * (MAX_NESTING + 5) + "deep" + "</blockquote>" * (MAX_NESTING + 5)
    assert sanitize_html(deep) == "deep"
    shallow = "<blockquote>" * 3 + "ok" + "</blockquote>" * 3
    assert sanitize_html(shallow) == shallow


html_fragments = st.recursive(
    st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20),
    lambda inner: (
        st.builds(
            lambda tag, attr, value, body: f'<{tag} {attr}="{value}">{body}</{tag}>',
            st.sampled_from(
                sorted(
                    ALLOWED_TAGS
                    | {
                        "script",
                        "style",
                        "iframe",
                        "mx-reply",
                        "svg",
                        "math",
                        "x-y",
                        "font",
                        "a",
                        "img",
                    }
                )
            ),
            st.sampled_from(
                [
                    "href",
                    "src",
                    "onclick",
                    "hx-get",
                    "data-mx-color",
                    "color",
                    "class",
                    "style",
                    "start",
                    "target",
                    "data-hx-post",
                    "onerror",
                ]
            ),
            st.sampled_from(
                [
                    "javascript:alert(1)",
                    "#ff00ff",
                    "red",
                    "mxc://hs/id",
                    "https://a.b/",
                    "language-py",
                    "1",
                    "_blank",
                    'x" onclick="alert(1)',
                    "",
                    "//evil.invalid/x",
                    "/relative",
                    "https://a.b/\n",
                    "#ff00ff\n",
                    "1\n",
                    "mailto:a@b.c",
                    "ftp://a.b/",
                ]
            ),
            inner,
        )
        | st.lists(inner, max_size=3).map("".join)
    ),
    max_leaves=12,
)


@settings(max_examples=300, deadline=None)
@given(html_fragments)
# Found by Hypothesis: the cleaner serialised nested <h1>s that a browser reparses as siblings.
@example('<h1 href="javascript:alert(1)"><A</h1><h1 href="javascript:alert(1)"></h1>')
def test_sanitizing_is_idempotent_and_stays_inside_the_allowlist(fragment):
    once = sanitize_html(fragment)
    assert sanitize_html(once) == once
    assert_inside_allowlist(once)


def test_list_start_is_only_ever_a_number():
    # Found by Hypothesis.
    assert "start" not in sanitize_html('<ol start="javascript:alert(1)"><li>x</li></ol>')
    assert 'start="3"' in sanitize_html('<ol start="3"><li>x</li></ol>')


def test_link_target_is_only_ever_blank():
    # Found by Hypothesis: a scripted "target" must not survive.
    assert sanitize_html('<a href="https://x.org" target="javascript:alert(1)">x</a>') == (
        '<a href="https://x.org" target="_blank" rel="noopener noreferrer">x</a>'
    )
    assert 'target="_blank"' in sanitize_html('<a href="https://x.org">x</a>')


@pytest.mark.parametrize(
    "href",
    [
        "https://example.org/page?q=1#top",
        "http://example.org",
        "HTTPS://Example.org:8443/x",
        "https://matrix.to/#/@alice:example.org",
        "mailto:alice@example.org",
    ],
)
def test_absolute_web_mail_and_matrix_to_links_open_in_a_new_tab(href):
    assert sanitize_html(f'<a href="{href}">text</a>') == (
        f'<a href="{href}" target="_blank" rel="noopener noreferrer">text</a>'
    )


@pytest.mark.parametrize(
    "href",
    [
        "//evil.invalid/x",  # protocol-relative: would leave with our page's scheme, in our tab
        "/rooms/!x:hs/leave",  # relative: a request inside the workspace
        "rooms/elsewhere",
        "?next=//evil.invalid",
        "#ev-1",
        "https:evil.invalid",
        "https:///evil.invalid",
        "https://good.example\\@evil.invalid",
        "https://user@evil.invalid/",
        "https://example.org\n",  # a trailing newline must not pass an anchored check
        " https://example.org",
        "ftp://example.org/file",
        "magnet:?xt=urn:btih:abc",
        "mxc://hs.example/abc",
        "javascript:alert(1)",
        "data:text/html,<script>alert(1)</script>",
        "mailto:",
    ],
)
def test_other_links_lose_their_href_but_keep_their_text(href):
    clean = sanitize_html(f'<a href="{href}">keep me</a>')
    assert clean == '<a target="_blank" rel="noopener noreferrer">keep me</a>'


@pytest.mark.parametrize(
    ("fragment", "attribute"),
    [
        ('<font color="#ff00ff\n">x</font>', "color"),
        ('<span data-mx-color="#ff00ff\n">x</span>', "data-mx-color"),
        ('<code class="language-py\n">x</code>', "class"),
        ('<ol start="3\n"><li>x</li></ol>', "start"),
        ('<img src="mxc://hs.example/abc" width="10\n">', "width"),
        ('<img src="/media/avatar/hs.example/abc\n">', "src"),
    ],
)
def test_attribute_checks_are_anchored_so_a_trailing_newline_fails(fragment, attribute):
    assert f"{attribute}=" not in sanitize_html(fragment)
