"""`manage.py workspace`: the whole workspace in one command, on embedded defaults.

Starts Redis (unless REDIS_URL is set) and Synapse (unless MATRIX_HOMESERVER_URL is set), migrates,
creates the first admin, then runs the web, sync, worker and beat processes until Ctrl-C or SIGTERM.
Every step runs as a child process with the addresses in its environment, so each one reads the same
settings a production deployment would.
"""

import os
import signal
import socket
import time
from pathlib import Path

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from webclient.embedded.processes import ProcessGroup, free_port, manage, wait_port
from webclient.embedded.redis import redis_reachable, start_redis
from webclient.embedded.synapse import start_synapse


class Stopping(Exception):
    """Raised by the signal handler so a Ctrl-C interrupts any step, even a slow start."""


class Command(BaseCommand):
    help = "Run the whole workspace (Redis, Synapse, web, sync, worker, beat) until Ctrl-C."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--host", default=os.environ.get("WEBCLIENT_HOST", "127.0.0.1"))
        parser.add_argument("--port", type=int, default=int(os.environ.get("WEBCLIENT_PORT", 8000)))
        parser.add_argument(
            "--sync-threads",
            type=int,
            default=int(os.environ.get("WEBCLIENT_SYNC_THREADS", 8)),
            help="sync hosts (threads, each an asyncio loop of many accounts) in the sync worker",
        )

    def handle(self, *args, host: str, port: int, sync_threads: int, **options) -> None:
        if not _port_free(host, port):
            raise CommandError(f"{host}:{port} is in use; choose another with --port.")
        data_dir = Path(settings.DATA_DIR)
        data_dir.mkdir(parents=True, exist_ok=True)
        env = {
            **os.environ,
            "WEBCLIENT_DATA_DIR": str(data_dir),
            "DJANGO_SETTINGS_MODULE": os.environ.get(
                "DJANGO_SETTINGS_MODULE", "webclient.settings.embedded"
            ),
        }
        services: list = []  # Redis and Synapse, stopped after everything that uses them
        group = ProcessGroup(cwd=Path(settings.BASE_DIR), env=env, log_dir=data_dir / "logs")

        def on_signal(signum, frame) -> None:
            raise Stopping()

        previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGINT, signal.SIGTERM)}
        try:
            env["REDIS_URL"] = self._redis(data_dir, services)
            env.setdefault("CELERY_BROKER_URL", env["REDIS_URL"])
            self._homeserver(data_dir, env, services)
            self.stdout.write("Preparing the database and static files…")
            group.run(*manage("migrate", "--noinput", "-v0"))
            group.run(*manage("collectstatic", "--noinput", "-v0"))
            group.run(*manage("ensure_admin"))
            web = group.start_workspace(
                host=host, port=port, sync_threads=sync_threads, name=f"{port}"
            )
            wait_port(host, port, web)
            self.stdout.write(
                self.style.SUCCESS(
                    f"webclient is running at http://{host}:{port}/ (admin at /admin/)\n"
                    f"Logs in {data_dir / 'logs'}. Ctrl-C stops everything."
                )
            )
            while True:
                dead = group.exited()
                if dead:
                    raise CommandError(f"{', '.join(dead)} stopped; see {data_dir / 'logs'}")
                time.sleep(0.5)
        except Stopping:
            pass
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        finally:
            # A second Ctrl-C must not cut the clean-up short; SIGKILL after a timeout bounds it.
            for sig in previous:
                signal.signal(sig, signal.SIG_IGN)
            self.stdout.write("Stopping…")
            group.stop()
            for service in reversed(services):
                service.stop()
            for sig, handler in previous.items():
                signal.signal(sig, handler)
            self.stdout.write("Stopped.")

    def _redis(self, data_dir: Path, services: list) -> str:
        configured = os.environ.get("REDIS_URL")
        if configured:
            if not redis_reachable(configured):
                raise CommandError(
                    f"REDIS_URL={configured} does not answer. Start that Redis, or unset REDIS_URL "
                    "to use an embedded one."
                )
            return configured
        redis = start_redis(data_dir / "redis")
        services.append(redis)
        self.stdout.write(f"Redis (embedded) at {redis.url}")
        return redis.url

    def _homeserver(self, data_dir: Path, env: dict, services: list) -> None:
        if os.environ.get("MATRIX_HOMESERVER_URL"):
            self.stdout.write(f"Homeserver: {env['MATRIX_HOMESERVER_URL']}")
            return
        self.stdout.write("Starting the embedded Synapse…")
        synapse = start_synapse(data_dir / "synapse", port=_synapse_port())
        services.append(synapse)
        env["MATRIX_HOMESERVER_URL"] = synapse.url
        env["MATRIX_REGISTRATION_SHARED_SECRET"] = synapse.shared_secret
        self.stdout.write(f"Synapse (embedded) at {synapse.url}, data in {synapse.data_dir}")


def _port_free(host: str, port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def _synapse_port() -> int:
    """8008 (where Matrix apps look first) unless taken or WEBCLIENT_SYNAPSE_PORT says otherwise."""
    wanted = int(os.environ.get("WEBCLIENT_SYNAPSE_PORT", "8008"))
    return wanted if _port_free("127.0.0.1", wanted) else free_port()
