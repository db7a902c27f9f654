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
    "MATRIX_REGISTRATION_SHARED_SECRET": "shared-" + Fernet.generate_key().decode(),
    "REDIS_URL": "redis://redis.example.org:6379/0",
    "DATABASE_URL": "postgres://webclient@127.0.0.1:5432/webclient",
    "DJANGO_ALLOWED_HOSTS": "chat.example.org",
}


def manage_env(env: dict[str, str] = PRODUCTION_ENV) -> dict[str, str]:
    """The test process's environment without anything the settings read, then `env`."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("DJANGO_", "WEBCLIENT_", "MATRIX_", "REDIS_", "CELERY_"))
    }
    return {**clean, **env}


def manage(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=manage_env(env),
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_deploy_checks_are_clean():
    result = manage("check", "--deploy", "--fail-level", "WARNING", env=PRODUCTION_ENV)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "no issues" in result.stdout


# One interpreter tries each case (a subprocess per case costs seconds each): the settings modules
# are imported afresh with one variable missing, and the error they raise is printed.
EACH_MISSING = """
import importlib, os, sys
from django.core.exceptions import ImproperlyConfigured
import webclient.settings.base as base
for name in sys.argv[1:]:
    saved = os.environ.pop(name)
    try:
        importlib.reload(base)
        sys.modules.pop("webclient.settings.production", None)
        importlib.import_module("webclient.settings.production")
        print(name, "started anyway")
    except ImproperlyConfigured as error:
        print(name, error)
    os.environ[name] = saved
"""
REQUIRED = [
    "WEBCLIENT_SECRET_KEYS",
    # Without it base.py would quietly use a Redis on 127.0.0.1: the wrong broker and layer.
    "REDIS_URL",
    "MATRIX_HOMESERVER_URL",
    "MATRIX_REGISTRATION_SHARED_SECRET",
    "DATABASE_URL",
    "DJANGO_SECRET_KEY",
]


def test_each_missing_address_or_secret_stops_the_start():
    clean = {k: v for k, v in manage_env().items() if k != "DJANGO_SETTINGS_MODULE"}
    result = subprocess.run(
        [sys.executable, "-c", EACH_MISSING, *REQUIRED],
        cwd=ROOT,
        env=clean,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    said = dict(line.split(" ", 1) for line in result.stdout.strip().splitlines())
    assert said == {name: f"Set {name} in the environment for production." for name in REQUIRED}


def test_missing_master_key_stops_manage_py():
    env = {k: v for k, v in PRODUCTION_ENV.items() if k != "WEBCLIENT_SECRET_KEYS"}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "WEBCLIENT_SECRET_KEYS" in result.stderr


def test_the_given_redis_carries_the_broker_and_the_channel_layer():
    layer = "settings.CHANNEL_LAYERS['default']['CONFIG']['hosts'][0]['address']"
    assert production_setting(f"({layer}, settings.CELERY_BROKER_URL)") == (
        "('redis://redis.example.org:6379/0', 'redis://redis.example.org:6379/0')"
    )


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
