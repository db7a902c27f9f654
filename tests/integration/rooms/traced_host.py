"""`manage.py sync_host`, recording below every fence what the process does to the crypto store
and the homeserver (for tests/integration/rooms/test_fencing.py).

Each line of the file named by FENCING_TRACE is either `sql <statement>` for a statement SQLite
itself ran on the crypto store that writes (SQLite's trace callback on nio's store connections,
so nothing above it can hide a write), or `http <METHOD> <path>` for every request the process
starts (aiohttp's own request method, under nio and our boundary alike).

Run as `python -m tests.integration.rooms.traced_host [sync_host options]` from the project root.
"""

import os
import sys
from urllib.parse import urlsplit

import aiohttp
import peewee

TRACE = open(os.environ["FENCING_TRACE"], "a", buffering=1)  # noqa: SIM115 - lives as long as we do
WRITES = ("INSERT", "UPDATE", "DELETE", "REPLACE")

_connect = peewee.SqliteDatabase._connect


def _traced_connect(self):
    connection = _connect(self)

    def trace(statement: str) -> None:
        if statement.lstrip()[:7].upper().startswith(WRITES):
            TRACE.write(f"sql {' '.join(statement.split())[:200]}\n")

    connection.set_trace_callback(trace)
    return connection


_request = aiohttp.ClientSession._request


async def _traced_request(self, method, url, *args, **kwargs):
    TRACE.write(f"http {method.upper()} {urlsplit(str(url)).path}\n")
    return await _request(self, method, url, *args, **kwargs)


peewee.SqliteDatabase._connect = _traced_connect
aiohttp.ClientSession._request = _traced_request

if __name__ == "__main__":
    from django.core.management import execute_from_command_line

    execute_from_command_line(["manage.py", "sync_host", *sys.argv[1:]])
