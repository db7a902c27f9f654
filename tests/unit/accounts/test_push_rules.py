"""Reading levels and keywords out of a push rule set, as Element writes them."""

import pytest

from accounts.matrix.push_rules import settings_from_ruleset
from rooms.notification_settings import SettingRejected, check_keyword

ROOM = "!a:hs"


def test_levels_and_keywords_from_element_style_rules():
    ruleset = {
        "override": [
            {"rule_id": ".m.rule.master", "enabled": False, "actions": [], "conditions": []},
            {
                "rule_id": ROOM,
                "enabled": True,
                "actions": [],
                "conditions": [{"kind": "event_match", "key": "room_id", "pattern": ROOM}],
            },
        ],
        "room": [
            {"rule_id": "!b:hs", "enabled": True, "actions": ["dont_notify"]},
            {"rule_id": "!c:hs", "enabled": True, "actions": ["notify"]},
            {"rule_id": ROOM, "enabled": True, "actions": []},
        ],
        "content": [
            {"rule_id": ".m.rule.contains_user_name", "pattern": "alice", "actions": ["notify"]},
            {"rule_id": "deploy", "pattern": "deploy", "enabled": True, "actions": ["notify"]},
            {"rule_id": "paused", "pattern": "paused", "enabled": False, "actions": ["notify"]},
        ],
    }
    settings = settings_from_ruleset(ruleset)
    assert settings.level(ROOM) == "off"  # the override wins over the leftover room rule
    assert settings.level("!b:hs") == "mentions"
    assert settings.level("!c:hs") == "all"
    assert settings.level("!unknown:hs") == "all"
    assert settings.keywords == ["deploy"]


def test_a_malformed_rule_set_reads_as_defaults():
    settings = settings_from_ruleset({"override": "nope", "room": [None, {"x": 1}]})
    assert settings.levels == {} and settings.keywords == []


def test_keywords_are_tidied_or_refused_with_a_reason():
    assert check_keyword("  release   train ") == "release train"
    for typed, reason in [("", "Type"), ("x" * 101, "at most"), (".a", "dot"), ("a*", "*")]:
        with pytest.raises(SettingRejected, match=reason.replace("*", r"\*")):
            check_keyword(typed)
