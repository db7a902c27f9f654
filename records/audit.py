"""Writing the audit log. Every admin action and every export calls `record_action`, inside the
action's own transaction where there is one, so an action that rolls back leaves no entry and an
entry never exists without its action."""

from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.http import HttpRequest

from records.models import AuditEntry
from webclient.proxies import client_ip


def record_action(
    *,
    action: str,
    target: str = "",
    actor: AbstractBaseUser | AnonymousUser | None = None,
    request: HttpRequest | None = None,
    details: dict[str, Any] | None = None,
) -> AuditEntry:
    """Append one entry. `request` supplies the actor and address when given; `actor` alone is for
    actions without a request (a management command, a scheduled job: actor None means the system)."""
    if request is not None and actor is None:
        actor = getattr(request, "user", None)
    if actor is not None and not actor.is_authenticated:
        actor = None
    return AuditEntry.objects.create(
        actor=actor,
        actor_name=actor.get_username() if actor is not None else "",
        ip=(client_ip(request) or None) if request is not None else None,
        action=action[:64],
        target=target[:512],
        details=details or {},
    )
