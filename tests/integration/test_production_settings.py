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


def production_setting(expression: str, **env: str) -> str:
    result = manage(
        "shell",
        "-c",
        f"from django.conf import settings; print({expression})",
        env={**PRODUCTION_ENV, **env},
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip().splitlines()[-1]


def test_hsts_subdomains_and_preload_are_opt_in():
    flags = "(settings.SECURE_HSTS_INCLUDE_SUBDOMAINS, settings.SECURE_HSTS_PRELOAD)"
    assert production_setting(flags) == "(False, False)"
    chosen = production_setting(flags, DJANGO_HSTS_INCLUDE_SUBDOMAINS="1", DJANGO_HSTS_PRELOAD="1")
    assert chosen == "(True, True)"
    opted_in = {**PRODUCTION_ENV, "DJANGO_HSTS_INCLUDE_SUBDOMAINS": "1", "DJANGO_HSTS_PRELOAD": "1"}
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=opted_in)
    assert result.returncode == 0, result.stdout + result.stderr


def test_forwarded_proto_is_read_only_when_proxies_are_configured():
    assert production_setting("settings.SECURE_PROXY_SSL_HEADER") == "None"
    header = production_setting(
        "settings.SECURE_PROXY_SSL_HEADER", WEBCLIENT_TRUSTED_PROXIES="10.0.0.5, 10.1.0.0/16"
    )
    assert header == "('HTTP_X_FORWARDED_PROTO', 'https')"


def test_a_malformed_proxy_address_stops_the_start():
    result = manage("check", env={**PRODUCTION_ENV, "WEBCLIENT_TRUSTED_PROXIES": "10.0.0.300"})
    assert result.returncode != 0
    assert "WEBCLIENT_TRUSTED_PROXIES" in result.stderr


def test_postgresql_connections_come_from_a_pool():
    pool = "settings.DATABASES['default']['OPTIONS']['pool']"
    sized = (
        f"({pool}['min_size'], {pool}['max_size'], settings.DATABASES['default']['CONN_MAX_AGE'])"
    )
    assert production_setting(sized) == "(2, 20, 0)"
    assert production_setting(sized, DATABASE_POOL_MAX_SIZE="40") == "(2, 40, 0)"
    # Django builds the pool (psycopg-pool is installed; connections open in the background).
    opened = production_setting(
        "__import__('django.db').db.connection.pool is not None",
        DATABASE_URL=os.environ.get("DATABASE_URL", "postgres://postgres@127.0.0.1:5432/postgres"),
    )
    assert opened == "True"
