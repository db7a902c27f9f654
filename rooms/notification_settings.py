"""The person's notification level per room and their keywords.

Nothing is stored here: the homeserver's push rules are the record (they drive the counts it
computes and follow the person to their other apps), so every read asks it and every change is
one rule write through accounts/matrix/push_rules.
"""

from accounts.matrix import push_rules
from accounts.models import MatrixAccount

LEVEL_CHOICES = [
    (push_rules.ALL, "All messages"),
    (push_rules.MENTIONS, "Mentions and keywords"),
    (push_rules.OFF, "Off"),
]
KEYWORD_MAX = 100
# A keyword is a glob pattern on the homeserver and a rule id in a URL path: these would change
# what it matches or where it is stored, so they are refused rather than silently altered.
_KEYWORD_FORBIDDEN = set("*?[]/\\")


class SettingRejected(Exception):
    """The person asked for something we will not write; the message says why."""


def current(*, account: MatrixAccount) -> push_rules.PushSettings:
    return push_rules.read(account.homeserver_url, access_token=account.access_token)


def room_level(*, account: MatrixAccount, room_id: str) -> str:
    return current(account=account).level(room_id)


def room_level_set(*, account: MatrixAccount, room_id: str, level: str) -> None:
    if level not in push_rules.LEVELS:
        raise SettingRejected("Choose all messages, mentions and keywords, or off.")
    push_rules.set_room_level(
        account.homeserver_url, access_token=account.access_token, room_id=room_id, level=level
    )


def check_keyword(text: str) -> str:
    keyword = " ".join((text or "").split())
    if not keyword:
        raise SettingRejected("Type a word to be notified about.")
    if len(keyword) > KEYWORD_MAX:
        raise SettingRejected(f"A keyword can be at most {KEYWORD_MAX} characters long.")
    if keyword.startswith("."):
        raise SettingRejected("A keyword cannot start with a dot.")
    bad = sorted(_KEYWORD_FORBIDDEN.intersection(keyword))
    if bad:
        raise SettingRejected(f"A keyword cannot contain {' '.join(bad)}.")
    return keyword


def keyword_add(*, account: MatrixAccount, text: str) -> str:
    keyword = check_keyword(text)
    push_rules.add_keyword(
        account.homeserver_url, access_token=account.access_token, keyword=keyword
    )
    return keyword


def keyword_remove(*, account: MatrixAccount, keyword: str) -> None:
    if not keyword or keyword.startswith("."):  # dot ids are the homeserver's own rules
        raise SettingRejected("That is not one of your keywords.")
    push_rules.remove_keyword(
        account.homeserver_url, access_token=account.access_token, keyword=keyword
    )
