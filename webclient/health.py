"""Liveness and readiness for load balancers and supervisors.

Liveness says only that the process answers (no database: a database outage must not get every web
process restarted). Readiness checks what a request needs (the database, Redis, the homeserver)
and reports how many active accounts have a sync host right now. The checks run side by side, each
bounded by HEALTH_TIMEOUT, so a probe answers within about that time even when something hangs.
Reported details name the check and the kind of failure, never an address or a credential.
"""

import time
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import asdict, dataclass, field
from typing import Any

import redis
from django.conf import settings
from django.db import connections
from django.db.models import Count, Q
from django.utils import timezone

from accounts.matrix import client_api
from accounts.models import MatrixAccount

# A few threads: a hung check keeps one busy until its own timeout, the next probe gets another.
_CHECKS = ThreadPoolExecutor(max_workers=8, thread_name_prefix="readiness")


@dataclass
class Check:
    ok: bool
    detail: str = ""
    seconds: float = 0.0
    data: dict[str, Any] = field(default_factory=dict)


@dataclass
class Readiness:
    ready: bool
    checks: dict[str, Check]

    def as_json(self) -> dict[str, Any]:
        checks = {}
        for name, check in self.checks.items():
            entry = asdict(check)
            entry.update(entry.pop("data"))
            entry["seconds"] = round(check.seconds, 4)
            checks[name] = entry
        return {"status": "ready" if self.ready else "not ready", "checks": checks}


def sync_ownership() -> dict[str, Any]:
    """Active accounts (with a token, as `sync reconcile` counts them) and how many of them have a
    lease with a live owner: owner set and not expired."""
    counts = (
        MatrixAccount.objects.filter(is_active=True)
        .exclude(access_token="")
        .aggregate(
            active=Count("id"),
            owned=Count(
                "id",
                filter=Q(sync_lease__expires_at__gt=timezone.now()) & ~Q(sync_lease__owner=""),
            ),
        )
    )
    active, owned = counts["active"], counts["owned"]
    return {"active": active, "owned": owned, "share": round(owned / active, 4) if active else 1.0}


def _database() -> Check:
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
        return Check(ok=True, data={"sync": sync_ownership()})
    finally:
        connections.close_all()  # this pool thread keeps no connection between probes


def _redis() -> Check:
    timeout = settings.HEALTH_TIMEOUT
    client = redis.Redis.from_url(
        settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout
    )
    try:
        client.ping()
    finally:
        client.close()
    return Check(ok=True)


def _homeserver() -> Check:
    client_api.server_versions(settings.MATRIX_HOMESERVER_URL, timeout=settings.HEALTH_TIMEOUT)
    return Check(ok=True)


PROBES = {"database": _database, "redis": _redis, "homeserver": _homeserver}


def _timed(probe) -> Check:
    started = time.monotonic()
    try:
        check = probe()
    except Exception as error:  # any failure is "not ready"; its kind, never its message
        check = Check(ok=False, detail=type(error).__name__)
    check.seconds = time.monotonic() - started
    return check


def readiness() -> Readiness:
    """Run every check at once; ready when each passed and the share of active accounts with a
    live sync host is at least READY_MIN_OWNED_SHARE (0 by default: reported, not required, since
    taking web processes out of rotation would not bring a sync host back)."""
    futures: dict[str, Future] = {name: _CHECKS.submit(_timed, p) for name, p in PROBES.items()}
    deadline = time.monotonic() + settings.HEALTH_TIMEOUT + 0.5
    checks: dict[str, Check] = {}
    for name, future in futures.items():
        try:
            checks[name] = future.result(timeout=max(0.0, deadline - time.monotonic()))
        except FutureTimeout:
            checks[name] = Check(ok=False, detail="timeout", seconds=settings.HEALTH_TIMEOUT)
    sync = checks["database"].data.pop("sync", None)
    if sync is not None:
        enough = sync["share"] >= settings.READY_MIN_OWNED_SHARE
        checks["sync"] = Check(
            ok=enough, detail="" if enough else "too few accounts have a sync host", data=sync
        )
    return Readiness(ready=all(check.ok for check in checks.values()), checks=checks)
