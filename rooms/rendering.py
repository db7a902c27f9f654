"""Message HTML: Markdown from our composer, and every formatted_body through one sanitizer.

The allowlist is the Matrix spec's (client-server API, "m.room.message msgtypes", HTML subset)."""

import re
from html.parser import HTMLParser

import nh3
from django.urls import reverse
from django.utils.html import escape
from markdown_it import MarkdownIt

from accounts.matrix.media_api import parse_mxc

ALLOWED_TAGS = {
    "font",
    "del",
    "h1",
    "h2",
    "h3",
    "h4",
    "h5",
    "h6",
    "blockquote",
    "p",
    "a",
    "ul",
    "ol",
    "sup",
    "sub",
    "li",
    "b",
    "i",
    "u",
    "strong",
    "em",
    "s",
    "code",
    "hr",
    "br",
    "div",
    "table",
    "thead",
    "tbody",
    "tr",
    "th",
    "td",
    "caption",
    "pre",
    "span",
    "img",
    "details",
    "summary",
}
ALLOWED_ATTRIBUTES = {
    "span": {"data-mx-bg-color", "data-mx-color", "data-mx-spoiler", "data-mx-maths"},
    "font": {"data-mx-bg-color", "data-mx-color", "color"},
    "a": {"href"},  # every link gets target="_blank" below, whatever it asked for
    "img": {"width", "height", "alt", "title", "src"},
    "ol": {"start"},
    "code": {"class"},
    "div": {"data-mx-maths"},
}
# Removed with everything inside: a reply fallback repeats the quoted message.
DROPPED_WITH_CONTENT = {"script", "style", "mx-reply", "template", "noscript", "iframe", "object"}
# Links: only absolute http(s) (matrix.to included) and mailto. A relative or protocol-relative
# href ("//evil.invalid/x") would open inside the workspace's own origin and tab, so it is dropped.
LINK_SCHEMES = {"https", "http", "mailto"}
_LINK = re.compile(
    r"https?://(?:[^\s/?#@:\\\[\]]+|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?(?:[/?#][^\s\\]*)?"
    r"|mailto:[^\s/\\][^\s]*",
    re.IGNORECASE,
)
MAX_REPARSES = 4
MAX_NESTING = 100
# Every attribute pattern is used with fullmatch: "$" would let a trailing newline through.
_COLOUR = re.compile(r"#[0-9a-fA-F]{6}")
_CODE_CLASS = re.compile(r"language-[A-Za-z0-9_+-]{1,32}")
_PROXIED_MEDIA = re.compile(r"/media/avatar/(?P<server_name>[^/?#]+)/(?P<media_id>[^/?#]+)")
_LIST_START = re.compile(r"-?[0-9]{1,9}")
_DIMENSION = re.compile(r"[0-9]{1,4}")

_markdown = MarkdownIt("commonmark", {"html": False, "linkify": False, "breaks": True}).enable(
    "strikethrough"
)


def _attribute_filter(tag: str, attribute: str, value: str) -> str | None:
    if attribute in ("data-mx-color", "data-mx-bg-color", "color"):
        return value if _COLOUR.fullmatch(value) else None
    if tag == "code" and attribute == "class":
        return value if _CODE_CLASS.fullmatch(value) else None
    if tag == "img" and attribute == "src":
        return _media_url(value)
    if tag == "img" and attribute in ("width", "height"):
        return value if _DIMENSION.fullmatch(value) else None
    if tag == "a" and attribute == "href":
        return value if _LINK.fullmatch(value) else None  # the link's text stays
    if tag == "ol" and attribute == "start":
        return value if _LIST_START.fullmatch(value) else None
    return value


def _media_url(value: str) -> str | None:
    """Inline images only from Matrix media, through our authenticated proxy; never remote URLs.
    A source that already points at the proxy (cleaned before) is read back as the mxc it was."""
    proxied = _PROXIED_MEDIA.fullmatch(value)
    if proxied is not None:
        value = f"mxc://{proxied['server_name']}/{proxied['media_id']}"
    parsed = parse_mxc(value)
    if parsed is None:
        return None
    return reverse("rooms:avatar", kwargs={"server_name": parsed[0], "media_id": parsed[1]})


class _DepthMeter(HTMLParser):
    VOID = {"br", "hr", "img"}

    def __init__(self) -> None:
        super().__init__()
        self.depth = self.deepest = 0

    def handle_starttag(self, tag, attrs) -> None:
        if tag not in self.VOID:
            self.depth += 1
            self.deepest = max(self.deepest, self.depth)

    def handle_endtag(self, tag) -> None:
        if tag not in self.VOID:
            self.depth = max(0, self.depth - 1)


def nesting_depth(html: str) -> int:
    meter = _DepthMeter()
    meter.feed(html)
    meter.close()
    return meter.deepest


def sanitize_html(html: str) -> str:
    """Reduce untrusted HTML to the spec's allowlist. Links open safely in a new context; anything
    nested deeper than the spec's limit of 100 is shown as escaped text instead.

    The cleaner can serialise a tree that a browser parses differently (an ``<h1>`` inside an
    ``<h1>`` comes back as two siblings), so the result is cleaned again until it is stable: what
    we checked is then exactly what the browser builds."""
    clean = _clean_once(html)
    for _ in range(MAX_REPARSES):
        again = _clean_once(clean)
        if again == clean:
            break
        clean = again
    else:
        return escape(_text_of(clean))
    if nesting_depth(clean) > MAX_NESTING:
        return escape(_text_of(clean))
    return clean


def _clean_once(html: str) -> str:
    return nh3.clean(
        html,
        tags=ALLOWED_TAGS,
        clean_content_tags=DROPPED_WITH_CONTENT,
        attributes=ALLOWED_ATTRIBUTES,
        url_schemes=LINK_SCHEMES | {"mxc"},
        attribute_filter=_attribute_filter,
        link_rel="noopener noreferrer",
        set_tag_attribute_values={"a": {"target": "_blank"}},
        strip_comments=True,
    )


def _text_of(html: str) -> str:
    return nh3.clean(html, tags=set(), clean_content_tags=set())


def markdown_to_html(text: str) -> str | None:
    """The composer's Markdown as org.matrix.custom.html, or None when it is plain text."""
    html = _markdown.render(text).strip()
    plain = f"<p>{_escape(text.strip())}</p>".replace("\n", "<br />\n")
    if html in (plain, f"<p>{_escape(text.strip())}</p>"):
        return None
    return sanitize_html(html)


def _escape(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )
