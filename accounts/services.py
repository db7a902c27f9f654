"""Every write about people and their Matrix accounts.

The rule that keeps both sides whole: the homeserver call comes first and the local rows are written
only after it succeeded, inside one transaction; if the local write still fails after a remote creation,
the remote account is deactivated again, so there is never a Django user without its Matrix account or
the other way round.
"""

import logging
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass, field

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.views.decorators.debug import sensitive_variables

from accounts import live
from accounts.matrix import client_api, sso, synapse_admin
from accounts.matrix.client_api import Session
from accounts.matrix.errors import (
    AccountDeactivated,
    InvalidUsername,
    MatrixError,
    NotConfigured,
    TokenInvalid,
    UsernameTaken,
)
from accounts.models import MatrixAccount, ServiceCredential

log = logging.getLogger(__name__)

LOCALPART_RE = re.compile(r"^[a-z0-9._\-]{1,64}$")
ADMIN_CREDENTIAL = "synapse-admin"


@dataclass(frozen=True)
class HomeserverConfig:
    url: str
    shared_secret: str = field(repr=False)  # never in a repr, a log line or a traceback
    admin_token: str = field(repr=False)
    timeout: float


def homeserver_config() -> HomeserverConfig:
    if not settings.MATRIX_HOMESERVER_URL:
        raise NotConfigured("Set MATRIX_HOMESERVER_URL: no Matrix homeserver is configured.")
    return HomeserverConfig(
        url=settings.MATRIX_HOMESERVER_URL,
        shared_secret=settings.MATRIX_REGISTRATION_SHARED_SECRET,
        admin_token=settings.MATRIX_ADMIN_TOKEN,
        timeout=settings.MATRIX_HTTP_TIMEOUT,
    )


# --- checks: validate what a person typed, with a clear message, before anything is written ---


def check_new_localpart(username: str) -> str:
    """A username the admin typed must be a valid Matrix localpart and free in the workspace."""
    localpart = username.strip()
    if not LOCALPART_RE.match(localpart):
        raise InvalidUsername()
    if get_user_model().objects.filter(username__iexact=localpart).exists():
        raise UsernameTaken("A person with that user name already exists in this workspace.")
    # The homeserver's own verdict (taken, invalid) comes from the registration call itself:
    # /register/available is closed on servers with open registration off.
    return localpart


# --- the Synapse admin the workspace uses for provisioning ---


@sensitive_variables()
def synapse_admin_token() -> str:
    """The admin token: configured, stored from an earlier run, or created through the shared secret."""
    config = homeserver_config()
    if config.admin_token:
        return config.admin_token
    stored = ServiceCredential.objects.filter(
        name=ADMIN_CREDENTIAL, homeserver_url=config.url
    ).first()
    if stored is not None:
        return stored.secret
    if not config.shared_secret:
        raise NotConfigured(
            "Managing Matrix accounts needs MATRIX_ADMIN_TOKEN or MATRIX_REGISTRATION_SHARED_SECRET."
        )
    session = synapse_admin.register_with_shared_secret(
        config.url,
        shared_secret=config.shared_secret,
        localpart=f"{settings.MATRIX_ADMIN_LOCALPART}-{secrets.token_hex(4)}",
        password=secrets.token_urlsafe(32),
        admin=True,
        displayname="Workspace administration",
        timeout=config.timeout,
    )
    ServiceCredential.objects.create(
        name=ADMIN_CREDENTIAL,
        homeserver_url=config.url,
        user_id=session.user_id,
        secret=session.access_token,
    )
    return session.access_token


# --- provisioning from the admin console ---


@sensitive_variables()  # Django's error reports show none of its locals
def account_register_on_homeserver(
    *, localpart: str, password: str, displayname: str = ""
) -> Session:
    """Create the Matrix account and its first device. Nothing local is written here."""
    config = homeserver_config()
    if not config.shared_secret:
        raise NotConfigured(
            "Creating Matrix accounts needs MATRIX_REGISTRATION_SHARED_SECRET "
            "(Synapse's registration_shared_secret)."
        )
    return synapse_admin.register_with_shared_secret(
        config.url,
        shared_secret=config.shared_secret,
        localpart=localpart,
        password=password,
        displayname=displayname or None,
        timeout=config.timeout,
    )


def account_link(*, user: AbstractBaseUser, session: Session, provisioned: bool) -> MatrixAccount:
    """Store the device for a user. Matrix-backed people have no Django password: the homeserver
    checks it, so a password changed in Element is the password here too."""
    if user.has_usable_password():
        user.set_unusable_password()
        user.save(update_fields=["password"])
    account, _ = MatrixAccount.objects.update_or_create(
        user=user,
        defaults={
            "homeserver_url": session.homeserver_url,
            "mxid": session.user_id,
            "device_id": session.device_id,
            "access_token": session.access_token,
            "provisioned": provisioned,
            "is_active": True,
            "deactivated_at": None,
        },
    )
    return account


@sensitive_variables()  # Django's error reports show none of its locals
def account_provision(
    *,
    username: str,
    password: str,
    email: str = "",
    first_name: str = "",
    last_name: str = "",
    is_staff: bool = False,
    is_superuser: bool = False,
    on_created: Callable[[AbstractBaseUser], None] | None = None,
) -> AbstractBaseUser:
    """Create a person: the Matrix account first, then the Django user and its link, atomically.

    `on_created(user)` runs inside that transaction (the caller's audit entry, for one)."""
    localpart = check_new_localpart(username)
    displayname = f"{first_name} {last_name}".strip() or localpart
    session = account_register_on_homeserver(
        localpart=localpart, password=password, displayname=displayname
    )
    try:
        with transaction.atomic():
            user = get_user_model().objects.create_user(
                username=localpart,
                email=email,
                first_name=first_name,
                last_name=last_name,
                is_staff=is_staff,
                is_superuser=is_superuser,
            )
            account_link(user=user, session=session, provisioned=True)
            if on_created is not None:
                on_created(user)
    except Exception:
        account_unregister_on_homeserver(session=session)
        raise
    return user


def account_unregister_on_homeserver(*, session: Session) -> None:
    """The local write failed after the homeserver created the account: take the account back."""
    try:
        config = homeserver_config()
        synapse_admin.deactivate(
            config.url,
            admin_token=synapse_admin_token(),
            user_id=session.user_id,
            erase=True,
            timeout=config.timeout,
        )
    except MatrixError:
        log.exception("Could not deactivate orphaned Matrix account %s", session.user_id)


# --- signing in with an existing Matrix account ---


@sensitive_variables()  # Django's error reports show none of its locals
def account_sign_in(*, username: str, password: str) -> AbstractBaseUser:
    """Check the password with the homeserver and return the linked Django user, creating it on the
    first sign-in. A known device is reused, so its encryption keys and history stay with the person."""
    config = homeserver_config()
    login_name = username.strip()
    known = _known_account(login_name)
    if known is not None and not known.is_active:
        raise AccountDeactivated()
    session = client_api.password_login(
        config.url,
        user=login_name,
        password=password,
        device_id=known.device_id if known else None,
        device_name=settings.MATRIX_DEVICE_NAME,
        timeout=config.timeout,
    )
    with transaction.atomic():
        account = MatrixAccount.objects.select_for_update().filter(mxid=session.user_id).first()
        if account is not None:
            if not account.user.is_active:
                raise MatrixError("This person has been deactivated in the workspace.")
            account.device_id = session.device_id
            account.access_token = session.access_token
            account.save(update_fields=["device_id", "access_token", "updated_at"])
            return account.user
        user = get_user_model().objects.create_user(username=_free_username(session.user_id))
        account_link(user=user, session=session, provisioned=False)
        return user


@sensitive_variables()  # Django's error reports show none of its locals
def account_sign_in_with_token(*, login_token: str) -> AbstractBaseUser:
    """Single sign-on's last step: exchange the homeserver's loginToken and return the person.

    m.login.token cannot name our stored device (whose token it is is known only after the
    exchange), so the exchange always makes a new device. A first sign-in keeps it, as the password
    sign-in's first time does. A returning person keeps the device they have, with its encryption
    keys and history, like the password sign-in: the new device only proved who signed in and is
    logged out at once. Only when the homeserver has revoked the stored device's token does the
    new device take its place."""
    config = homeserver_config()
    session = sso.token_login(
        config.url,
        token=login_token,
        device_name=settings.MATRIX_DEVICE_NAME,
        timeout=config.timeout,
    )
    try:
        user, kept_new_device = _sso_person(session)
    except Exception:
        _logout_quietly(session)
        raise
    if not kept_new_device:
        _logout_quietly(session)
    return user


def _sso_person(session: Session) -> tuple[AbstractBaseUser, bool]:
    """The person `session` signed in as, created the first time; True when `session`'s device
    became (or stays) their device."""
    account = MatrixAccount.objects.select_related("user").filter(mxid=session.user_id).first()
    if account is None:
        with transaction.atomic():
            user = get_user_model().objects.create_user(username=_free_username(session.user_id))
            account_link(user=user, session=session, provisioned=False)
        return user, True
    if not account.is_active:
        raise AccountDeactivated()
    if not account.user.is_active:
        raise MatrixError("This person has been deactivated in the workspace.")
    if account.access_token and _token_works(account):
        return account.user, False
    with transaction.atomic():
        account = MatrixAccount.objects.select_for_update().get(pk=account.pk)
        account.device_id = session.device_id
        account.access_token = session.access_token
        account.save(update_fields=["device_id", "access_token", "updated_at"])
    return account.user, True


def _token_works(account: MatrixAccount) -> bool:
    """False only when the homeserver says the token is gone; when in doubt, keep the device."""
    try:
        client_api.whoami(
            account.homeserver_url,
            access_token=account.access_token,
            timeout=homeserver_config().timeout,
        )
    except TokenInvalid:
        return False
    except MatrixError:
        return True
    return True


def _logout_quietly(session: Session) -> None:
    """A device made only to prove who signed in: delete it, or it lingers in the person's list."""
    try:
        client_api.logout(session.homeserver_url, access_token=session.access_token)
    except MatrixError:
        log.warning(
            "Could not log out the sign-in device %s of %s", session.device_id, session.user_id
        )


def _known_account(login_name: str) -> MatrixAccount | None:
    if login_name.startswith("@"):
        return MatrixAccount.objects.select_related("user").filter(mxid=login_name).first()
    return (
        MatrixAccount.objects.select_related("user")
        .filter(mxid__startswith=f"@{login_name}:", homeserver_url=settings.MATRIX_HOMESERVER_URL)
        .first()
    )


def _free_username(user_id: str) -> str:
    """A Django username for a Matrix user: the localpart, suffixed when a local person has it."""
    base = re.sub(r"[^\w.+-]", "_", user_id[1:].split(":", 1)[0])[:140] or "matrix-user"
    candidate, number = base, 1
    users = get_user_model().objects
    while users.filter(username__iexact=candidate).exists():
        number += 1
        candidate = f"{base}-{number}"
    return candidate


def account_session_end(*, account_id: int, rejected_token: str) -> tuple[bool, bool]:
    """The homeserver refused `rejected_token`. Forget it if it is still the stored one, so no host
    claims the account until the person signs in again. Returns (session over, token cleared now);
    the session is not over when a sign-in stored a new token meanwhile."""
    with transaction.atomic():
        account = MatrixAccount.objects.select_for_update().filter(pk=account_id).first()
        if account is None or not account.access_token:
            return True, False
        if account.access_token != rejected_token:
            return False, False
        account.access_token = ""
        account.save(update_fields=["access_token", "updated_at"])
        return True, True


# --- changes from the admin console ---


@sensitive_variables()  # Django's error reports show none of its locals
def account_set_password(*, account: MatrixAccount, password: str) -> None:
    """Change the password on the homeserver; the person signs in with it everywhere."""
    config = homeserver_config()
    synapse_admin.reset_password(
        account.homeserver_url,
        admin_token=synapse_admin_token(),
        user_id=account.mxid,
        new_password=password,
        timeout=config.timeout,
    )


def account_deactivate(*, account: MatrixAccount, erase: bool) -> None:
    """Deactivate on the homeserver (which logs out every device), then stop using the device here.

    The homeserver goes first: if it refuses, nothing changes locally and the admin sees why."""
    account_deactivate_on_homeserver(account=account, erase=erase)
    account_mark_deactivated(account=account)


def account_deactivate_on_homeserver(*, account: MatrixAccount, erase: bool) -> None:
    """The homeserver half of a deactivation (for callers that write more in the local half)."""
    config = homeserver_config()
    synapse_admin.deactivate(
        account.homeserver_url,
        admin_token=synapse_admin_token(),
        user_id=account.mxid,
        erase=erase,
        timeout=config.timeout,
    )


def account_mark_deactivated(*, account: MatrixAccount) -> None:
    """Local half of a deactivation: the sync host drops the account at its next heartbeat, and
    every open page of the account is closed (its sessions no longer authenticate)."""
    with transaction.atomic():
        transaction.on_commit(lambda: live.pages_close_for_account(account.pk))
        account.is_active = False
        account.deactivated_at = timezone.now()
        account.access_token = ""
        account.save(update_fields=["is_active", "deactivated_at", "access_token", "updated_at"])
        user = account.user
        if user.is_active:
            user.is_active = False
            user.save(update_fields=["is_active"])
