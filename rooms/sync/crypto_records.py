"""The records of one device's crypto store in the project database (accounts.CryptoStoreRecord),
for accounts/matrix/crypto_store.py: nothing a sync host needs stays on its own disk.

Every write runs in one transaction that first locks the account's lease row and checks it is still
ours (owner, fencing token, unexpired), exactly as ingest does: a host that lost its lease, even
one frozen between a check and the write, has its write refused (LeaseLost) and rolled back.

nio calls its store synchronously from the event loop, so each call runs on a thread of its own
(`crypto-store`) and the loop waits for it: Django refuses database work on the loop's thread, and
one thread means one connection per host process, whatever the number of accounts.
"""

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

from django.db import transaction

from accounts.models import CryptoStoreRecord
from rooms.sync.fence import LeaseFence, run_on_own_connection

_STORE_THREAD = ThreadPoolExecutor(max_workers=1, thread_name_prefix="crypto-store")


def _on_store_thread[T](function: Callable[[], T]) -> T:
    return _STORE_THREAD.submit(run_on_own_connection, function).result()


class DatabaseRecords:
    """One device's records (`account_id`, `device_id`); writes fenced by `fence` when given."""

    def __init__(self, account_id: int, device_id: str, fence: LeaseFence | None) -> None:
        self.account_id = account_id
        self.device_id = device_id
        self.fence = fence
        # Every record of the device, read in one query before the store is opened (opening reads
        # every kind, each read holding up the host's loop): kind -> key -> value. Dropped at the
        # first write and once the device is open, so no read ever sees a stale value.
        self._preloaded: dict[str, dict[str, str]] | None = None

    def _rows(self):
        return CryptoStoreRecord.objects.filter(
            account_id=self.account_id, device_id=self.device_id
        )

    async def preload(self) -> None:
        """Read the device's records in one query, off the event loop (see `_preloaded`)."""

        def read() -> dict[str, dict[str, str]]:
            found: dict[str, dict[str, str]] = {}
            for kind, key, value in self._rows().values_list("kind", "key", "value"):
                found.setdefault(kind, {})[key] = value
            return found

        loop = asyncio.get_running_loop()
        self._preloaded = await loop.run_in_executor(_STORE_THREAD, run_on_own_connection, read)

    def preload_done(self) -> None:
        self._preloaded = None

    def load(self, kind: str) -> dict[str, str]:
        if self._preloaded is not None:
            return dict(self._preloaded.get(kind, {}))
        return _on_store_thread(
            lambda: dict(self._rows().filter(kind=kind).values_list("key", "value"))
        )

    def get(self, kind: str, key: str) -> str | None:
        if self._preloaded is not None:
            return self._preloaded.get(kind, {}).get(key)
        return _on_store_thread(
            lambda: self._rows().filter(kind=kind, key=key).values_list("value", flat=True).first()
        )

    def write(
        self, put: list[tuple[str, str, str]], delete: list[tuple[str, str]] | None = None
    ) -> None:
        self._preloaded = None
        if self.fence is not None:
            self.fence.check()  # no I/O: a host frozen past its lease stops here
        _on_store_thread(lambda: self._write(put, delete or []))

    def _write(self, put: list[tuple[str, str, str]], delete: list[tuple[str, str]]) -> None:
        with transaction.atomic():
            if self.fence is not None:
                self.fence.hold()  # locks our lease row until this transaction ends
            for kind, key in delete:
                self._rows().filter(kind=kind, key=key).delete()
            if put:
                latest = {(kind, key): value for kind, key, value in put}  # last write wins
                CryptoStoreRecord.objects.bulk_create(
                    [
                        CryptoStoreRecord(
                            account_id=self.account_id,
                            device_id=self.device_id,
                            kind=kind,
                            key=key,
                            value=value,
                        )
                        for (kind, key), value in latest.items()
                    ],
                    batch_size=200,
                    update_conflicts=True,
                    unique_fields=["account", "device_id", "kind", "key"],
                    update_fields=["value"],
                )
