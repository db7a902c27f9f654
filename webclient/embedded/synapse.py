"""An embedded Synapse on loopback: SQLite in a data folder, registration by shared secret only.

Nobody can sign up on it by themselves (open registration stays off): accounts are made by the admin
console through `registration_shared_secret`, which lives in the data folder with mode 0600. It does
not federate (client listener only, empty key-server and federation lists).
"""

import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

from webclient.embedded.processes import free_port, log_tail, popen, stop_process

__all__ = ["SynapseProcess", "free_port", "start_synapse", "write_synapse_config"]

HIGH = {"per_second": 10000, "burst_count": 100000}
# Synapse's defaults throttle a busy office (and a test suite); the homeserver is ours and local.
# Only keys Synapse 1.163's config/ratelimiting.py reads (unknown keys would be silently ignored).
PRIVATE_RANGES = [
    "127.0.0.0/8",
    "10.0.0.0/8",
    "172.16.0.0/12",
    "192.168.0.0/16",
    "100.64.0.0/10",
    "192.0.0.0/24",
    "169.254.0.0/16",
    "192.88.99.0/24",
    "198.18.0.0/15",
    "192.0.2.0/24",
    "198.51.100.0/24",
    "203.0.113.0/24",
    "224.0.0.0/4",
    "::1/128",
    "fe80::/10",
    "fc00::/7",
    "2001:db8::/32",
    "ff00::/8",
    "fec0::/10",
]
RATE_LIMITS = {
    "rc_message": HIGH,
    "rc_registration": HIGH,
    "rc_registration_token_validity": HIGH,
    "rc_login": {"address": HIGH, "account": HIGH, "failed_attempts": HIGH},
    "rc_joins": {"local": HIGH, "remote": HIGH},
    "rc_joins_per_room": HIGH,
    "rc_invites": {"per_room": HIGH, "per_user": HIGH, "per_issuer": HIGH},
    "rc_room_creation": HIGH,
    "rc_key_requests": HIGH,
    "rc_media_create": HIGH,
    "rc_presence": {"per_user": HIGH},
    "rc_3pid_validation": HIGH,
    "rc_admin_redaction": HIGH,
    "rc_user_directory": HIGH,
    "rc_profile": HIGH,
    "rc_delayed_event_mgmt": HIGH,
    "rc_reports": HIGH,
    "rc_third_party_invite": HIGH,
}


def _secret(path: Path) -> str:
    """A secret created once with owner-only permissions and reused on every start."""
    if path.exists():
        path.chmod(0o600)
        return path.read_text().strip()
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    return value


def write_synapse_config(
    data_dir: Path,
    *,
    port: int,
    server_name: str = "localhost",
    for_tests: bool = False,
    python: str = sys.executable,
    extra_config: dict | None = None,
) -> Path:
    """Write homeserver.yaml (JSON is valid YAML) and return its path; secrets are kept across calls.

    The rate limits are lifted for every use, not only tests: the only clients are our own server
    and the people of one company, and Synapse's defaults (a message per 5 s) would throttle a sync
    host acting for many accounts from one address.

    `extra_config` adds or replaces top-level keys (tests configure single sign-on with it)."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "media").mkdir(exist_ok=True)
    log_config = data_dir / "log.config"
    log_config.write_text(
        json.dumps(
            {
                "version": 1,
                "formatters": {
                    "plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}
                },
                "handlers": {
                    "file": {
                        "class": "logging.FileHandler",
                        "formatter": "plain",
                        "filename": str(data_dir / "homeserver.log"),
                    }
                },
                "root": {"level": "WARNING", "handlers": ["file"]},
                "disable_existing_loggers": False,
            }
        )
    )
    config = {
        "server_name": server_name,
        "pid_file": str(data_dir / "homeserver.pid"),
        "public_baseurl": f"http://127.0.0.1:{port}/",
        "listeners": [
            {
                "port": port,
                "bind_addresses": ["127.0.0.1"],
                "type": "http",
                "tls": False,
                "x_forwarded": False,
                "resources": [{"names": ["client"], "compress": False}],
            }
        ],
        "database": {"name": "sqlite3", "args": {"database": str(data_dir / "homeserver.db")}},
        "media_store_path": str(data_dir / "media"),
        "signing_key_path": str(data_dir / "signing.key"),
        "log_config": str(log_config),
        "registration_shared_secret": _secret(data_dir / "registration_shared_secret"),
        "macaroon_secret_key": _secret(data_dir / "macaroon_secret_key"),
        "form_secret": _secret(data_dir / "form_secret"),
        "enable_registration": False,
        "report_stats": False,
        "trusted_key_servers": [],
        "suppress_key_server_warning": True,
        "federation_domain_whitelist": [],
        # Link previews come from the homeserver (we never fetch other sites); never from private
        # networks, which it could otherwise be made to probe.
        "url_preview_enabled": True,
        "url_preview_ip_range_blacklist": PRIVATE_RANGES,
        "enable_authenticated_media": True,
        "user_directory": {"enabled": True, "search_all_users": True},
        # A company homeserver: colleagues may list rooms in the directory (Synapse lets only
        # server admins do so by default).
        "room_list_publication_rules": [{"action": "allow"}],
        "presence": {"enabled": False},
        **RATE_LIMITS,
    }
    if for_tests:
        config["url_preview_ip_range_whitelist"] = ["127.0.0.1"]  # the tests' own pages
        config["bcrypt_rounds"] = 4
        config["max_upload_size"] = "5M"  # small enough to test the limit quickly
    config.update(extra_config or {})
    path = data_dir / "homeserver.yaml"
    path.touch(mode=0o600)  # it holds the secrets: owner-only before anything is written
    path.chmod(0o600)
    path.write_text(json.dumps(config, indent=2))
    signing_key = data_dir / "signing.key"
    if not signing_key.exists():
        ensure_signing_key(path, python=python)
    signing_key.chmod(0o600)  # Synapse writes it 0640; it is the server's identity
    return path


@dataclass
class SynapseProcess:
    url: str
    server_name: str
    shared_secret: str = field(repr=False)
    data_dir: Path
    process: subprocess.Popen = field(repr=False)

    def stop(self, timeout: float = 15.0) -> None:
        """SIGTERM, then SIGKILL; safe to call twice."""
        stop_process(self.process, timeout)


def _log_tail(data_dir: Path) -> str:
    return "\n".join(
        tail for name in ("homeserver.out", "homeserver.log") if (tail := log_tail(data_dir / name))
    )


def ensure_signing_key(config: Path, *, python: str = sys.executable) -> None:
    """Let Synapse write its own signing key (and anything else missing) the first time."""
    result = subprocess.run(
        [python, "-m", "synapse.app.homeserver", "-c", str(config), "--generate-keys"],
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise RuntimeError(f"Synapse could not generate its keys:\n{result.stdout}{result.stderr}")


def start_synapse(
    data_dir: Path,
    *,
    port: int | None = None,
    server_name: str = "localhost",
    for_tests: bool = False,
    python: str = sys.executable,
    timeout: float = 60.0,
    extra_config: dict | None = None,
) -> SynapseProcess:
    """Start Synapse on 127.0.0.1 and wait until its client API answers."""
    port = port or free_port()
    config = write_synapse_config(
        data_dir,
        port=port,
        server_name=server_name,
        for_tests=for_tests,
        python=python,
        extra_config=extra_config,
    )
    process = popen(
        [python, "-m", "synapse.app.homeserver", "-c", str(config)],
        log=data_dir / "homeserver.out",
        cwd=data_dir,
    )
    url = f"http://127.0.0.1:{port}"
    synapse = SynapseProcess(
        url, server_name, _secret(data_dir / "registration_shared_secret"), data_dir, process
    )
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"Synapse exited with {process.returncode}:\n{_log_tail(data_dir)}")
        try:
            with urllib.request.urlopen(f"{url}/_matrix/client/versions", timeout=2):  # noqa: S310
                return synapse
        except OSError:
            time.sleep(0.1)
    synapse.stop()
    raise RuntimeError(f"Synapse did not answer within {timeout:.0f}s:\n{_log_tail(data_dir)}")
