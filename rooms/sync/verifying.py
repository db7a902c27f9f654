"""The owning host's side of interactive verification: record what arrived, carry out answers."""

import logging

from asgiref.sync import sync_to_async

from accounts.matrix.crypto import CryptoDevice
from accounts.matrix.errors import MatrixError
from accounts.matrix.verification import (
    IncomingRequest,
    Verifier,
    incoming_requests,
    start_events,
)
from rooms import devices, selectors
from rooms.models import DeviceVerification
from rooms.services import LeaseHandle

log = logging.getLogger(__name__)


class VerificationDriver:
    def __init__(self, lease: LeaseHandle, crypto: CryptoDevice, on_own_device_verified=None):
        self.lease = lease
        self.verifier = Verifier(crypto.client)
        self.device_id = crypto.device_id
        self.user_id = crypto.user_id
        # Awaited with the device id when the person verified another device of their own.
        self.on_own_device_verified = on_own_device_verified

    async def after_sync(self, raw: dict) -> None:
        """Note new requests and the progress nio made with this sync's to-device messages."""
        self.verifier.replay_dropped_starts(start_events(raw))
        await self.record(incoming_requests(raw, self.device_id))

    async def record(self, requests: list[IncomingRequest] = ()) -> None:
        finished = await sync_to_async(devices.verifications_record)(
            lease=self.lease, requests=list(requests), views=self.verifier.views()
        )
        for txn, user_id, device_id, from_request in finished:
            try:
                if from_request:
                    await self.verifier.send_done(txn, user_id, device_id)
                if user_id == self.user_id and self.on_own_device_verified is not None:
                    await self.on_own_device_verified(device_id)
            except MatrixError as error:
                log.info("verification %s: follow-up failed: %s", txn, error.message)

    async def perform(self) -> None:
        """Carry out the person's answers (accept, the emoji match or not, cancel, start)."""
        wanted = await sync_to_async(selectors.verifications_wanted)(
            account_id=self.lease.account_id
        )
        for row in wanted:
            try:
                outcome = await self._carry_out(row)
            except MatrixError as error:
                outcome = {"state": DeviceVerification.CANCELLED, "reason": error.message}
            await sync_to_async(devices.verification_step_done)(
                lease=self.lease, verification_id=row.pk, **outcome
            )
        if wanted:
            await self.record()

    async def _carry_out(self, row: DeviceVerification) -> dict:
        request = IncomingRequest(row.transaction_id, row.other_user_id, row.other_device_id)
        txn = row.transaction_id
        match (row.wanted, row.state):
            case (DeviceVerification.START, _):
                started = await self.verifier.start(row.other_user_id, row.other_device_id)
                return {"state": DeviceVerification.STARTED, "transaction_id": started}
            case (DeviceVerification.ACCEPT, DeviceVerification.REQUESTED):
                await self.verifier.send_ready(request)
                return {"state": DeviceVerification.READY}
            case (DeviceVerification.ACCEPT, _):
                await self.verifier.accept(txn)
                return {"state": DeviceVerification.ACCEPTED}
            case (DeviceVerification.CONFIRM, _):
                await self.verifier.confirm(txn)
                return {"state": DeviceVerification.CONFIRMED}
            case (DeviceVerification.MISMATCH, _):
                await self.verifier.cancel(txn, mismatch=True)
                return {"state": DeviceVerification.CANCELLED, "reason": "The emoji did not match."}
            case (
                DeviceVerification.CANCEL,
                DeviceVerification.REQUESTED | DeviceVerification.READY,
            ):
                await self.verifier.cancel_request(request, "Declined")
                return {"state": DeviceVerification.CANCELLED, "reason": "Declined."}
            case (DeviceVerification.CANCEL, _):
                await self.verifier.cancel(txn)
                return {"state": DeviceVerification.CANCELLED, "reason": "Cancelled here."}
        return {}
