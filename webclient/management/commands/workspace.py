"""`manage.py workspace`: the whole workspace in one command, on embedded defaults.

Starts Redis (unless REDIS_URL is set) and Synapse (unless MATRIX_HOMESERVER_URL is set), migrates,
creates the first admin, then runs the web, sync, worker and beat processes until Ctrl-C.
"""

import os
import signal
import socket
import sys
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webclient.embedded.processes import ProcessGroup, manage, wait_http
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import free_port, start_synapse

ROOT = Path(settings.BASE_DIR)


class Command(BaseCommand):
    help = "Run the whole workspace (Redis, Synapse, web, sync, worker, beat) until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("WEBCLIENT_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("WEBCLIENT_PORT", 8000)))

    def handle(self, *args, host: str, port: int, **options) -> None:
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        services: list = []
        env = {
            **os.environ,
            "WEBCLIENT_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "webclient.settings.embedded"
            ),
        }
        group = ProcessGroup(cwd=ROOT, env=env, log_dir=data_dir / "logs")
        stopping = False

        def stop(signum, frame) -> None:
            nonlocal stopping
            stopping = True

        signal.signal(signal.SIGINT, stop)
        signal.signal(signal.SIGTERM, stop)
        try:
            env["REDIS_URL"] = self._redis(data_dir, services)
            env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
            self._homeserver(data_dir, env, services)
            group.run(*manage("migrate", "--noinput", "-v0"))
            group.run(*manage("collectstatic", "--noinput", "-v0"))
            group.run(*manage("ensure_admin"))
            web = group.start_workspace(host=host, port=port, sync_threads=8, name="main")
            wait_http(f"http://{host}:{port}/accounts/login/", web)
            self.stdout.write(
                self.style.SUCCESS(
                    f"webclient is running at http://{host}:{port}/ (admin at /admin/). "
                    f"Logs: {data_dir / 'logs'}. Ctrl-C stops everything."
                )
            )
            while not stopping:
                dead = group.exited()
                if dead:
                    raise CommandError(f"{', '.join(dead)} stopped; see {data_dir / 'logs'}")
                time.sleep(0.5)
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        finally:
            self.stdout.write("Stopping…")
            group.stop()
            for service in reversed(services):
                service.stop()
            sys.stdout.flush()

    def _redis(self, data_dir: Path, services: list) -> str:
        configured = os.environ.get("REDIS_URL")
        if configured:
            if not redis_reachable(configured):
                raise CommandError(f"REDIS_URL={configured} does not answer.")
            return configured
        redis = start_redis(data_dir / "redis")
        services.append(redis)
        self.stdout.write(f"Redis (embedded) at {redis.url}")
        return redis.url

    def _homeserver(self, data_dir: Path, env: dict, services: list) -> None:
        if os.environ.get("MATRIX_HOMESERVER_URL"):
            self.stdout.write(f"Homeserver: {env['MATRIX_HOMESERVER_URL']}")
            return
        synapse = start_synapse(data_dir / "synapse", port=_synapse_port())
        services.append(synapse)
        env["MATRIX_HOMESERVER_URL"] = synapse.url
        env["MATRIX_REGISTRATION_SHARED_SECRET"] = synapse.shared_secret
        self.stdout.write(f"Synapse (embedded) at {synapse.url}, data in {synapse.data_dir}")


def _synapse_port() -> int:
    """8008 (where Matrix apps look first) unless taken or WEBCLIENT_SYNAPSE_PORT says otherwise."""
    wanted = int(os.environ.get("WEBCLIENT_SYNAPSE_PORT", "8008"))
    with socket.socket() as probe:
        try:
            probe.bind(("127.0.0.1", wanted))
        except OSError:
            return free_port()
    return wanted
