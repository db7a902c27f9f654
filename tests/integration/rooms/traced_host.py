"""`manage.py sync_host`, recording below every fence what the process does to the crypto store
and the homeserver (for tests/integration/rooms/test_fencing.py).

Each line of the file named by FENCING_TRACE is either `sql <records>` for a crypto-store write
that committed (recorded after the store's own fenced transaction returned, so nothing above it
can hide a write), or `http <METHOD> <path> @<unix time> <device>` for every request the process
starts (aiohttp's own request method, under nio and our boundary alike), where <device> is a short
hash of the access token it carries ("-" for none): which device the request used, and when.
`<FENCING_TRACE>.done` gets `<METHOD> <path>` when a request ends, so a test can tell whether a
/sync long-poll is open.

Run as `python -m tests.integration.rooms.traced_host [sync_host options]` from the project root.
"""

import hashlib
import os
import sys
import time
from urllib.parse import urlsplit

import aiohttp

TRACE = open(os.environ["FENCING_TRACE"], "a", buffering=1)  # noqa: SIM115 - lives as long as we do
# Requests that ended, in a file of their own: a late answer never changes what the trace says
# the process started.
DONE = open(os.environ["FENCING_TRACE"] + ".done", "a", buffering=1)  # noqa: SIM115


def _trace_store_writes() -> None:
    from rooms.sync.crypto_records import DatabaseRecords

    write = DatabaseRecords._write

    def traced(self, put, delete):
        write(self, put, delete)  # the transaction committed: the write happened
        kinds = sorted({kind for kind, _key, _value in put} | {kind for kind, _key in delete})
        TRACE.write(f"sql account {self.account_id}: {' '.join(kinds)}\n")

    DatabaseRecords._write = traced


_request = aiohttp.ClientSession._request


def _device(headers) -> str:
    bearer = dict(headers or {}).get("Authorization", "")
    return hashlib.sha256(bearer.encode()).hexdigest()[:12] if bearer else "-"


async def _traced_request(self, method, url, *args, **kwargs):
    path, device = urlsplit(str(url)).path, _device(kwargs.get("headers"))
    TRACE.write(f"http {method.upper()} {path} @{time.time():.3f} {device}\n")
    try:
        return await _request(self, method, url, *args, **kwargs)
    finally:  # answered (headers in), failed or cancelled: no longer open
        DONE.write(f"{method.upper()} {path}\n")


aiohttp.ClientSession._request = _traced_request

if __name__ == "__main__":
    import django
    from django.core.management import execute_from_command_line

    django.setup()
    _trace_store_writes()
    execute_from_command_line(["manage.py", "sync_host", *sys.argv[1:]])
