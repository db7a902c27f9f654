"""The person's notification settings, kept as Matrix push rules on the homeserver.

The homeserver computes the unread and mention counts from these rules, and every client of the
person (Element on their phone included) reads the same rules, so a level chosen here follows them.
We write rules the way Element does, so each app shows the other's choice:
- "off": an `override` rule named after the room, matching the room id, with no actions;
- "mentions" (mentions and keywords): a `room` rule named after the room with no actions (override
  and content rules, which carry mentions and keywords, run before room rules);
- "all": neither rule (the default rules notify for every message).
Keywords are `content` rules named after the keyword that notify and highlight.
"""

from dataclasses import dataclass

from accounts.matrix.errors import MatrixError
from accounts.matrix.http import matrix_request, quote

ALL, MENTIONS, OFF = "all", "mentions", "off"
LEVELS = (ALL, MENTIONS, OFF)
KEYWORD_ACTIONS = ["notify", {"set_tweak": "highlight"}, {"set_tweak": "sound", "value": "default"}]
_BASE = "/_matrix/client/v3/pushrules/global"


@dataclass(frozen=True)
class PushSettings:
    """What the person's rules say: a level per room that has one (others are "all"), keywords."""

    levels: dict[str, str]
    keywords: list[str]

    def level(self, room_id: str) -> str:
        return self.levels.get(room_id, ALL)


def read(homeserver_url: str, *, access_token: str, timeout: float = 15.0) -> PushSettings:
    """The person's levels and keywords, from one read of their global rule set."""
    ruleset = matrix_request(
        homeserver_url, "GET", f"{_BASE}/", token=access_token, timeout=timeout
    )
    return settings_from_ruleset(ruleset.get("global", ruleset))


def settings_from_ruleset(ruleset: dict) -> PushSettings:
    """Levels and keywords out of a `global` rule set (pure: unit-testable)."""
    levels: dict[str, str] = {}
    for rule in _rules(ruleset, "room"):
        if rule.get("enabled", True) and not _notifies(rule):
            levels[rule["rule_id"]] = MENTIONS
    for rule in _rules(ruleset, "override"):
        rule_id = rule["rule_id"]
        if rule.get("enabled", True) and not _notifies(rule) and _matches_room(rule, rule_id):
            levels[rule_id] = OFF  # off wins over a leftover room rule, as on the homeserver
    keywords = [
        rule.get("pattern", rule["rule_id"])
        for rule in _rules(ruleset, "content")
        if not rule["rule_id"].startswith(".") and rule.get("enabled", True)
    ]
    return PushSettings(levels=levels, keywords=keywords)


def set_room_level(
    homeserver_url: str, *, access_token: str, room_id: str, level: str, timeout: float = 15.0
) -> None:
    """Make the room's rules say `level`: clear both of ours, then write the one it needs."""
    if level not in LEVELS:
        raise ValueError(level)
    for kind in ("override", "room"):
        _delete(homeserver_url, access_token, f"{_BASE}/{kind}/{quote(room_id)}", timeout)
    if level == OFF:
        body = {
            "actions": [],
            "conditions": [{"kind": "event_match", "key": "room_id", "pattern": room_id}],
        }
        matrix_request(
            homeserver_url,
            "PUT",
            f"{_BASE}/override/{quote(room_id)}",
            token=access_token,
            body=body,
            timeout=timeout,
        )
    elif level == MENTIONS:
        matrix_request(
            homeserver_url,
            "PUT",
            f"{_BASE}/room/{quote(room_id)}",
            token=access_token,
            body={"actions": []},
            timeout=timeout,
        )


def add_keyword(
    homeserver_url: str, *, access_token: str, keyword: str, timeout: float = 15.0
) -> None:
    """A content rule that notifies and highlights when a message contains `keyword`."""
    matrix_request(
        homeserver_url,
        "PUT",
        f"{_BASE}/content/{quote(keyword)}",
        token=access_token,
        body={"pattern": keyword, "actions": KEYWORD_ACTIONS},
        timeout=timeout,
    )


def remove_keyword(
    homeserver_url: str, *, access_token: str, keyword: str, timeout: float = 15.0
) -> None:
    _delete(homeserver_url, access_token, f"{_BASE}/content/{quote(keyword)}", timeout)


def _delete(homeserver_url: str, access_token: str, path: str, timeout: float) -> None:
    """Delete a rule; one that is not there is already what we want."""
    try:
        matrix_request(homeserver_url, "DELETE", path, token=access_token, timeout=timeout)
    except MatrixError as error:
        if error.errcode != "M_NOT_FOUND" and error.status != 404:
            raise


def _rules(ruleset: dict, kind: str) -> list[dict]:
    rules = ruleset.get(kind)
    if not isinstance(rules, list):
        return []
    return [r for r in rules if isinstance(r, dict) and isinstance(r.get("rule_id"), str)]


def _notifies(rule: dict) -> bool:
    return "notify" in (rule.get("actions") or [])


def _matches_room(rule: dict, room_id: str) -> bool:
    return any(
        c.get("kind") == "event_match" and c.get("key") == "room_id" and c.get("pattern") == room_id
        for c in rule.get("conditions") or []
        if isinstance(c, dict)
    )
