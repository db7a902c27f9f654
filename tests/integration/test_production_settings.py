"""Production settings pass Django's deployment checks and refuse to start without their keys."""

import os
import subprocess
import sys
from pathlib import Path

from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parents[2]
PRODUCTION_ENV = {
    "DJANGO_SETTINGS_MODULE": "webclient.settings.production",
    "DJANGO_SECRET_KEY": "x" * 20 + Fernet.generate_key().decode(),
    "WEBCLIENT_SECRET_KEYS": Fernet.generate_key().decode(),
    "MATRIX_HOMESERVER_URL": "https://matrix.example.org",
    "DATABASE_URL": "postgres://webclient@127.0.0.1:5432/webclient",
    "DJANGO_ALLOWED_HOSTS": "chat.example.org",
}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "WEBCLIENT_"))}
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env={**clean, **env},
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_checks_are_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


def test_missing_master_key_stops_the_start():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "WEBCLIENT_SECRET_KEYS"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "WEBCLIENT_SECRET_KEYS" in result.stderr
