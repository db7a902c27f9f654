"""Run one sync host in the foreground, outside Celery: under a process supervisor (systemd), for
debugging, tests and benchmarks. Its accounts move to the other hosts when it stops or dies."""

import asyncio
import signal

from django.core.management.base import BaseCommand

from accounts import log_context
from rooms import metrics
from rooms.sync.host import SyncHost


class Command(BaseCommand):
    help = "Run a sync host until SIGINT/SIGTERM: it claims accounts whose lease is free."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--capacity", type=int, default=None)
        parser.add_argument("--host-id", default=None)

    def handle(self, *args, capacity: int | None, host_id: str | None, **options) -> None:
        asyncio.run(self._run(capacity, host_id))

    async def _run(self, capacity: int | None, host_id: str | None) -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signum, stop.set)
        host = SyncHost(host_id=host_id, capacity=capacity)
        log_context.bind(host=host.host_id)
        port = metrics.serve_host_metrics()
        served = f", metrics on port {port}" if port else ""
        self.stdout.write(f"sync host {host.host_id} running{served}", ending="\n")
        self.stdout.flush()
        try:
            await host.run(stop)
        finally:
            metrics.host_stopped(host.host_id)
