"""Writes about the account's Matrix device itself, not its rooms: cross-signing and key backup
state, the devices it encrypts for, withheld keys, and interactive verifications. The owning sync
host writes under its lease; views only record the person's answers for the host to carry out."""

import uuid

from django.db import transaction

from accounts.models import MatrixAccount
from rooms import authenticity, notify, selectors
from rooms.models import (
    BackedUpRoomKey,
    DeviceTrust,
    DeviceVerification,
    RestoredRoomKey,
    WithheldKey,
)
from rooms.services import LeaseHandle, MessageRejected, check_user_id, rerender_after_commit
from rooms.sync.leases import lease_check

# The account's device fields the owning host keeps: cross-signing and key backup private keys
# (encrypted at rest; saved before they are uploaded, so never lost) and where each stands.
DEVICE_FIELDS = {
    "cross_signing_keys",
    "cross_signing_state",
    "key_backup_key",
    "key_backup_version",
}


def device_fields_save(*, lease: LeaseHandle, **fields: str) -> None:
    """Write some of DEVICE_FIELDS for the lease's account, only while the lease is held."""
    unknown = set(fields) - DEVICE_FIELDS
    if unknown:
        raise ValueError(f"not a device field: {', '.join(sorted(unknown))}")
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        MatrixAccount.objects.filter(pk=lease.account_id).update(**fields)


def device_trust_save(*, lease: LeaseHandle, devices: list) -> None:
    """Replace the account's view of the devices it encrypts for (KnownDevice items); the marks
    on messages from a device whose trust changed follow it, live."""
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        before = {
            (user_id, device_id): verified or signed
            for user_id, device_id, verified, signed in DeviceTrust.objects.filter(
                account_id=lease.account_id
            ).values_list("user_id", "device_id", "verified", "cross_signed")
        }
        DeviceTrust.objects.filter(account_id=lease.account_id).delete()
        DeviceTrust.objects.bulk_create(
            [
                DeviceTrust(
                    account_id=lease.account_id,
                    user_id=d.user_id[:255],
                    device_id=d.device_id[:255],
                    ed25519=d.ed25519[:64],
                    verified=d.verified,
                    cross_signed=d.cross_signed,
                )
                for d in devices
            ]
        )
        after = {
            (d.user_id[:255], d.device_id[:255]): d.verified or d.cross_signed for d in devices
        }
        remarked = authenticity.marks_follow_trust(lease.account_id, before, after)
        if remarked:
            transaction.on_commit(rerender_after_commit(lease.account_id, remarked))


def keys_withheld_save(*, lease: LeaseHandle, withheld: list) -> None:
    """Remember why senders refused us room keys (Withheld items) and re-render the messages
    those keys would have unlocked, so they say why instead of "waiting"."""
    if not withheld:
        return
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        account_id = lease.account_id
        for notice in withheld:
            WithheldKey.objects.update_or_create(
                account_id=account_id,
                session_id=notice.session_id,
                defaults={"room_id": notice.room_id, "code": notice.code, "reason": notice.reason},
            )
        sessions = {notice.session_id for notice in withheld}
        affected = [
            envelope["event_id"]
            for _, envelope in selectors.events_awaiting_keys(
                account_id=account_id, session_ids=sessions, limit=2000
            )
        ]
        if affected:
            transaction.on_commit(rerender_after_commit(account_id, affected))


def verifications_record(
    *, lease: LeaseHandle, requests: list, views: list
) -> list[tuple[str, str, str, bool]]:
    """Store where the device's verifications stand (`requests`: IncomingRequest, `views`:
    SasView) and queue the steps that follow on their own: a start answering a request the person
    already accepted is accepted at once. Returns the verifications that just completed, as
    (transaction id, user, device, opened by a request: owes the other side a "done")."""
    changed = False
    finished = []
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        account_id = lease.account_id
        for request in requests:
            _, created = DeviceVerification.objects.get_or_create(
                account_id=account_id,
                transaction_id=request.transaction_id,
                defaults={
                    "other_user_id": request.user_id,
                    "other_device_id": request.device_id,
                    "state": DeviceVerification.REQUESTED,
                    "from_request": True,
                },
            )
            changed = changed or created
        for view in views:
            row = DeviceVerification.objects.filter(
                account_id=account_id, transaction_id=view.transaction_id
            ).first() or DeviceVerification(
                account_id=account_id,
                transaction_id=view.transaction_id,
                other_user_id=view.user_id,
                other_device_id=view.device_id,
                we_started=view.we_started,
            )
            state = view.state
            if row.state == DeviceVerification.READY and state == DeviceVerification.STARTED:
                row.wanted = DeviceVerification.ACCEPT  # they started after we said ready
            if row.state == DeviceVerification.CANCELLED and state != DeviceVerification.CANCELLED:
                continue  # cancelled here: nio may not know yet
            emojis = [list(pair) for pair in view.emojis]
            if row.pk is not None and (row.state, row.emojis) == (state, emojis):
                continue
            if state == DeviceVerification.VERIFIED:
                finished.append(
                    (row.transaction_id, row.other_user_id, row.other_device_id, row.from_request)
                )
            row.state, row.emojis = state, emojis
            row.reason = view.reason[:255]
            row.save()
            changed = True
        if changed:
            transaction.on_commit(lambda: notify.verifications_changed(account_id=account_id))
    return finished


def verification_step_done(
    *,
    lease: LeaseHandle,
    verification_id: int,
    state: str = "",
    transaction_id: str = "",
    reason: str = "",
) -> None:
    """The host carried out the person's answer: clear it and note the new state."""
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        row = DeviceVerification.objects.filter(
            pk=verification_id, account_id=lease.account_id
        ).first()
        if row is None:
            return
        row.wanted = ""
        row.state = state or row.state
        row.transaction_id = transaction_id or row.transaction_id
        row.reason = reason[:255] or row.reason
        row.save()
        account_id = lease.account_id
        transaction.on_commit(lambda: notify.verifications_changed(account_id=account_id))


ANSWERS = {
    DeviceVerification.REQUESTED: {DeviceVerification.ACCEPT, DeviceVerification.CANCEL},
    DeviceVerification.STARTED: {DeviceVerification.ACCEPT, DeviceVerification.CANCEL},
    DeviceVerification.READY: {DeviceVerification.CANCEL},
    DeviceVerification.ACCEPTED: {DeviceVerification.CANCEL},
    DeviceVerification.KEYS: {
        DeviceVerification.CONFIRM,
        DeviceVerification.MISMATCH,
        DeviceVerification.CANCEL,
    },
    DeviceVerification.CONFIRMED: {DeviceVerification.CANCEL},
}


def verification_answer(*, account: MatrixAccount, verification_id: int, answer: str) -> None:
    """The person accepts, confirms that the emoji match, says they do not, or cancels."""
    with transaction.atomic():
        row = (
            DeviceVerification.objects.select_for_update()
            .filter(pk=verification_id, account=account)
            .first()
        )
        if row is None:
            raise MessageRejected("That verification no longer exists.")
        if answer not in ANSWERS.get(row.state, set()):
            raise MessageRejected("That verification has moved on; the page shows where it stands.")
        row.wanted = answer
        row.save(update_fields=["wanted", "updated_at"])
    transaction.on_commit(lambda: notify.verification_nudge(account_id=account.pk))


def verification_start(*, account: MatrixAccount, user_id: str, device_id: str) -> None:
    """Ask to verify another device (one of ours, or a colleague's) with emoji."""
    user_id = check_user_id(user_id)
    device_id = device_id.strip()
    if not device_id or len(device_id) > 255:
        raise MessageRejected("Choose a device to verify.")
    if user_id == account.mxid and device_id == account.device_id:
        raise MessageRejected("That is this device.")
    DeviceVerification.objects.create(
        account=account,
        transaction_id=f"pending-{uuid.uuid4().hex}",
        other_user_id=user_id,
        other_device_id=device_id,
        state=DeviceVerification.REQUESTED,
        we_started=True,
        wanted=DeviceVerification.START,
    )
    transaction.on_commit(lambda: notify.verification_nudge(account_id=account.pk))


def backup_uploaded(*, account_id: int, version: str) -> set[str]:
    """Session ids the account's backup `version` already holds, as recorded by its owners."""
    return set(
        BackedUpRoomKey.objects.filter(account_id=account_id, version=version).values_list(
            "session_id", flat=True
        )
    )


def backup_record(*, lease: LeaseHandle, version: str, session_ids: list[str]) -> None:
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        BackedUpRoomKey.objects.bulk_create(
            [
                BackedUpRoomKey(account_id=lease.account_id, version=version, session_id=s[:255])
                for s in session_ids
            ],
            ignore_conflicts=True,
        )


def backup_restored(*, account_id: int) -> set[str]:
    """Session ids the account's device took from the key backup (not vouched for)."""
    return set(
        RestoredRoomKey.objects.filter(account_id=account_id).values_list("session_id", flat=True)
    )


def backup_restored_record(*, lease: LeaseHandle, session_id: str) -> None:
    """Remember that a room key came from the backup, before the crypto store takes it."""
    with transaction.atomic():
        lease_check(account_id=lease.account_id, owner=lease.owner, token=lease.token)
        RestoredRoomKey.objects.get_or_create(
            account_id=lease.account_id, session_id=session_id[:255]
        )
