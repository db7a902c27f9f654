"""Every admin action on people, each written to the audit log inside the transaction that makes
it real locally. Homeserver calls come first (as in accounts/services.py): when the homeserver
refuses, nothing changes here and no entry claims that it did."""

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.contrib.sessions.models import Session
from django.db import transaction
from django.http import HttpRequest
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts import services as accounts
from accounts.models import MatrixAccount
from console import leavers
from records.audit import record_action
from rooms import notify


@sensitive_variables()
def person_create(
    *,
    username: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    request: HttpRequest | None = None,
    via: str = "admin",
) -> AbstractBaseUser:
    """A password account on the homeserver and the person here; joins follow (console.joiners)."""

    def audit(user: AbstractBaseUser) -> None:
        record_action(
            action="person.create",
            target=user.matrix_account.mxid,
            request=request,
            details={"username": user.get_username(), "via": via},
        )

    return accounts.account_provision(
        username=username,
        password=password,
        email=email,
        first_name=first_name,
        last_name=last_name,
        on_created=audit,
    )


def person_deactivate(
    *,
    user: AbstractBaseUser,
    erase: bool = False,
    hand_over_to: str = "",
    request: HttpRequest | None = None,
) -> list[str]:
    """A leaver: their rooms handed over first (when a colleague is named), then the account
    deactivated on the homeserver (optionally erased), the sync host told to stop it now, and
    every sign-in ended. Returns the rooms handed over. A failed handover stops here: the
    account stays active so that nothing is left without an admin."""
    account = MatrixAccount.objects.filter(user=user).first()
    handed: list[str] = []
    if account is not None and account.is_active and hand_over_to:
        handed = leavers.rooms_hand_over(account=account, colleague=hand_over_to, request=request)
    if account is not None and account.is_active:
        accounts.account_deactivate_on_homeserver(account=account, erase=erase)
    with transaction.atomic():
        if account is not None and account.is_active:
            accounts.account_mark_deactivated(account=account)
            transaction.on_commit(notify.hosts_claim_now)  # the owner drops it at once
        elif user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
        ended = sessions_end(user=user)
        record_action(
            action="person.deactivate",
            target=account.mxid if account is not None else user.get_username(),
            request=request,
            details={
                "username": user.get_username(),
                "erase": erase,
                "handed_over_to": hand_over_to,
                "rooms_handed_over": len(handed),
                "sessions_ended": ended,
            },
        )
    return handed


def sessions_end(*, user: AbstractBaseUser) -> int:
    """Delete every stored sign-in of the person (database sessions), so no browser stays signed
    in even for the moment before the next request is refused. Returns how many ended."""
    doomed = []
    user_pk = str(user.pk)
    sessions = Session.objects.filter(expire_date__gt=timezone.now())
    for session in sessions.iterator(chunk_size=500):
        if str(session.get_decoded().get("_auth_user_id")) == user_pk:
            doomed.append(session.session_key)
    Session.objects.filter(session_key__in=doomed).delete()
    return len(doomed)


def person_by_username(username: str) -> AbstractBaseUser | None:
    return get_user_model().objects.filter(username=username).first()
