"""Interactive device verification (SAS, emoji) over to-device messages, on a crypto device.

matrix-nio runs the SAS exchange itself (start, accept, key, mac). It knows nothing of the request
flow newer clients open with (m.key.verification.request -> ready -> start ... -> done), so this
module adds those messages around it. The person compares the emoji in our UI; each step they take
arrives here through the owning sync host, the only user of the device's crypto state.
"""

import contextlib
import logging
import secrets
import time
from dataclasses import dataclass
from typing import Any

from nio import KeyVerificationStart, LocalProtocolError, ToDeviceError
from nio.crypto.sas import SasState
from nio.event_builders import ToDeviceMessage

from accounts.matrix.crypto import to_device_events
from accounts.matrix.errors import MatrixError

log = logging.getLogger(__name__)

SAS_METHOD = "m.sas.v1"
REQUEST = "m.key.verification.request"
READY = "m.key.verification.ready"
START = "m.key.verification.start"
DONE = "m.key.verification.done"
CANCEL = "m.key.verification.cancel"
REQUEST_LIFETIME_MS = 10 * 60 * 1000  # the spec: ignore requests older than ten minutes


@dataclass(frozen=True)
class IncomingRequest:
    """Someone asks to verify with us (the request flow); nothing starts until the person agrees."""

    transaction_id: str
    user_id: str
    device_id: str


@dataclass(frozen=True)
class SasView:
    """Where one SAS exchange stands, as plain data for the database and the page."""

    transaction_id: str
    user_id: str
    device_id: str
    state: str  # started, accepted, keys, confirmed, verified, cancelled
    emojis: tuple[tuple[str, str], ...]
    we_started: bool
    reason: str


def incoming_requests(raw_sync: dict[str, Any], own_device_id: str) -> list[IncomingRequest]:
    """Fresh m.key.verification.request messages for our device in a /sync body."""
    found = []
    now = time.time() * 1000
    for event in to_device_events(raw_sync):
        if event["type"] != REQUEST:
            continue
        content = event["content"]
        txn, device = content.get("transaction_id"), content.get("from_device")
        sent = content.get("timestamp")
        methods = content.get("methods")
        if not (isinstance(txn, str) and isinstance(device, str) and isinstance(methods, list)):
            continue
        if SAS_METHOD not in methods:
            continue
        if isinstance(sent, int) and not (now - REQUEST_LIFETIME_MS < sent < now + 5 * 60_000):
            continue
        found.append(IncomingRequest(txn[:255], event["sender"], device[:255]))
    return found


def start_events(raw_sync: dict[str, Any]) -> list[dict]:
    """m.key.verification.start messages in a /sync body (kept to replay those nio dropped
    because it did not know the sender's device yet)."""
    return [e for e in to_device_events(raw_sync) if e["type"] == START]


class Verifier:
    """SAS verification on one device's nio client (shared with its CryptoDevice)."""

    def __init__(self, client) -> None:
        self._client = client

    def views(self) -> list[SasView]:
        return [self._view(txn, sas) for txn, sas in self._client.key_verifications.items()]

    def _view(self, txn: str, sas) -> SasView:
        if sas.canceled or sas.timed_out:
            state = "cancelled"
        elif sas.verified:
            state = "verified"
        elif sas.state in (SasState.key_received, SasState.mac_received):
            state = "confirmed" if sas.sas_accepted else "keys"
        elif sas.state == SasState.accepted:
            state = "accepted"
        else:
            state = "started"
        emojis = tuple(sas.get_emoji()) if state in ("keys", "confirmed", "verified") else ()
        return SasView(
            transaction_id=txn,
            user_id=sas.other_olm_device.user_id,
            device_id=sas.other_olm_device.id,
            state=state,
            emojis=emojis,
            we_started=bool(sas.we_started_it),
            reason=str(getattr(sas, "cancel_reason", "") or ""),
        )

    def replay_dropped_starts(self, starts: list[dict]) -> None:
        """nio drops a start from a device it has not fetched keys for; once the keys are in,
        hand it the start again."""
        olm = self._client.olm
        for raw in starts:
            txn = raw["content"].get("transaction_id")
            if not isinstance(txn, str) or txn in self._client.key_verifications:
                continue
            event = KeyVerificationStart.from_dict(raw)
            if isinstance(event, KeyVerificationStart):
                olm.handle_key_verification(event)

    async def send_ready(self, request: IncomingRequest) -> None:
        await self._send(
            READY,
            request.user_id,
            request.device_id,
            {
                "from_device": self._client.device_id,
                "methods": [SAS_METHOD],
                "transaction_id": request.transaction_id,
            },
        )

    async def accept(self, txn: str) -> None:
        await self._checked(self._client.accept_key_verification(txn))

    async def confirm(self, txn: str) -> None:
        await self._checked(self._client.confirm_short_auth_string(txn))

    async def cancel(self, txn: str, *, mismatch: bool = False) -> None:
        with contextlib.suppress(LocalProtocolError):  # already over
            await self._checked(self._client.cancel_key_verification(txn, reject=mismatch))

    async def cancel_request(self, request: IncomingRequest, reason: str) -> None:
        await self._send(
            CANCEL,
            request.user_id,
            request.device_id,
            {"transaction_id": request.transaction_id, "code": "m.user", "reason": reason},
        )

    async def send_done(self, txn: str, user_id: str, device_id: str) -> None:
        await self._send(DONE, user_id, device_id, {"transaction_id": txn})

    async def start(self, user_id: str, device_id: str) -> str:
        """Start SAS with another device (ours or someone else's); returns its transaction id."""
        device = self._client.device_store[user_id].get(device_id)
        if device is None:  # not someone we share an encrypted room with: fetch their keys
            self._client.olm.users_for_key_query.add(user_id)
            await self._client.keys_query()
            device = self._client.device_store[user_id].get(device_id)
        if device is None:
            raise MatrixError("That device has no published keys, so it cannot be verified.")
        await self._checked(self._client.start_key_verification(device))
        active = self._client.olm.get_active_sas(user_id, device_id)
        return active.transaction_id if active is not None else ""

    async def _send(self, event_type: str, user_id: str, device_id: str, content: dict) -> None:
        message = ToDeviceMessage(event_type, user_id, device_id, content)
        await self._checked(self._client.to_device(message, secrets.token_hex(8)))

    async def _checked(self, call) -> None:
        response = await call
        if isinstance(response, ToDeviceError):
            raise MatrixError(f"The verification message was not delivered: {response.message}")
