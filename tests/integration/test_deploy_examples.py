"""The deploy/ examples are valid for the tools that will read them: Debian's nginx (`nginx -t`)
and systemd (`systemd-analyze verify`), and they agree with the app (upload limit, entry points,
static files)."""

import datetime
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from rooms.media import DEFAULT_UPLOAD_LIMIT

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
SITE = DEPLOY / "nginx" / "webclient.conf"
UNITS = DEPLOY / "systemd"
NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
CERTIFICATE = "/etc/letsencrypt/live/chat.example.org/fullchain.pem"
PRIVATE_KEY = "/etc/letsencrypt/live/chat.example.org/privkey.pem"


def self_signed(folder: Path) -> tuple[Path, Path]:
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "chat.example.org")])
    now = datetime.datetime.now(datetime.UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(1)
        .not_valid_before(now)
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(certificate.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def nginx_test(site_text: str, folder: Path) -> subprocess.CompletedProcess:
    """`nginx -t` on a throwaway main config (own prefix, pid and temp paths, no root-only
    paths) that includes the site as Debian's nginx.conf includes sites-enabled/."""
    cert, key = self_signed(folder)
    site = folder / "site.conf"
    site.write_text(site_text.replace(CERTIFICATE, str(cert)).replace(PRIVATE_KEY, str(key)))
    temp = "\n".join(
        f"    {kind}_temp_path {folder / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    main = folder / "nginx.conf"
    main.write_text(
        f"pid {folder / 'nginx.pid'};\n"
        f"error_log {folder / 'error.log'};\n"
        "events {}\n"
        "http {\n"
        "    include /etc/nginx/mime.types;\n"
        "    access_log off;\n"
        f"{temp}\n"
        f"    include {site};\n"
        "}\n"
    )
    return subprocess.run(
        [NGINX, "-t", "-q", "-p", str(folder), "-c", str(main)],
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(scope="module")
def nginx() -> str:
    if not Path(NGINX).exists():
        pytest.fail("Debian's nginx is needed: apt-get install -y nginx (bin/test installs it)")
    return NGINX


def test_the_nginx_site_passes_nginx_t(nginx, tmp_path):
    result = nginx_test(SITE.read_text(), tmp_path)
    # -q leaves only warnings and errors: there must be none.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_nginx_t_refuses_a_broken_site(nginx, tmp_path):
    """The check can fail: a misspelt directive is an error, not a silent pass."""
    broken = SITE.read_text().replace("proxy_read_timeout 1h;", "proxy_read_timeuot 1h;")
    result = nginx_test(broken, tmp_path)
    assert result.returncode != 0
    assert "proxy_read_timeuot" in result.stderr


def directives(name: str) -> list[str]:
    return re.findall(rf"^\s*{name}\s+([^;]+);", SITE.read_text(), re.MULTILINE)


def test_the_site_matches_the_app():
    # Uploads up to the app's own limit pass, with a little room for the multipart form.
    (size,) = directives("client_max_body_size")
    limit = int(size.rstrip("m")) * 1024 * 1024
    assert DEFAULT_UPLOAD_LIMIT < limit <= DEFAULT_UPLOAD_LIMIT + 2 * 1024 * 1024
    # The websocket route of webclient/routing.py, upgraded.
    websocket = SITE.read_text().split("location /ws/ {")[1].split("}")[0]
    assert "proxy_set_header Upgrade $http_upgrade;" in websocket
    assert "proxy_http_version 1.1;" in websocket
    # Static files where collectstatic writes them (STATIC_ROOT = WEBCLIENT_DATA_DIR/staticfiles).
    assert directives("alias") == ["/var/lib/webclient/staticfiles/"]
    env = (DEPLOY / "webclient.env.example").read_text()
    assert "WEBCLIENT_DATA_DIR=/var/lib/webclient\n" in env
    assert "WEBCLIENT_TRUSTED_PROXIES=127.0.0.1\n" in env  # so the forwarded headers count


def verify(units: dict[str, str], folder: Path) -> subprocess.CompletedProcess:
    """`systemd-analyze verify` the units, pointed at this checkout (its .venv holds daphne,
    celery and python, which verify requires to exist); templates are checked as an instance."""
    names = []
    for name, text in units.items():
        (folder / name).write_text(text.replace("/opt/webclient", str(ROOT)))
        if name.endswith("@.service"):
            instance = name.replace("@.service", "@1.service")
            (folder / instance).symlink_to(folder / name)
            name = instance
        names.append(str(folder / name))
    return subprocess.run(
        ["systemd-analyze", "verify", *names],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=folder,
    )


def unit_files() -> dict[str, str]:
    return {path.name: path.read_text() for path in sorted(UNITS.iterdir())}


@pytest.fixture(scope="module")
def systemd_analyze() -> None:
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed here")
    probe = subprocess.run(
        ["systemd-analyze", "verify", "/dev/null"], capture_output=True, text=True, timeout=30
    )
    if "Failed to" in probe.stderr and "systemd" in probe.stderr and "bus" in probe.stderr:
        pytest.skip(f"systemd-analyze cannot run here: {probe.stderr.strip()}")


def test_the_systemd_units_verify(systemd_analyze, tmp_path):
    units = unit_files()
    assert {"webclient-web@.service", "webclient-worker.service", "webclient-beat.service"} <= set(
        units
    )
    assert "webclient-sync@.service" in units
    result = verify(units, tmp_path)
    # Unknown keys are only warnings to systemd: any output at all fails the check.
    assert result.returncode == 0 and not result.stderr.strip(), result.stderr


def test_systemd_analyze_refuses_a_broken_unit(systemd_analyze, tmp_path):
    units = unit_files()
    units["webclient-worker.service"] = units["webclient-worker.service"].replace(
        "ExecStart=", "ExecStrat="
    )
    result = verify(units, tmp_path)
    assert result.returncode != 0 or result.stderr.strip()
    assert "ExecStrat" in result.stderr


def test_the_units_start_what_the_app_provides():
    units = unit_files()
    commands = {
        name: re.search(r"^ExecStart=(.+)$", text, re.MULTILINE).group(1)
        for name, text in units.items()
        if name.endswith(".service")
    }
    assert (
        "daphne -b 127.0.0.1 -p %i webclient.asgi:application" in commands["webclient-web@.service"]
    )
    assert "--proxy-headers" not in commands["webclient-web@.service"]
    assert "-Q sync --pool threads" in commands["webclient-sync@.service"]
    assert commands["webclient-sync-host@.service"].endswith("manage.py sync_host")
    assert "-Q default" in commands["webclient-worker.service"]
    assert " beat " in commands["webclient-beat.service"]
    assert (ROOT / "rooms/management/commands/sync_host.py").exists()
    for name, text in units.items():
        if name.endswith(".service"):
            assert "EnvironmentFile=/etc/webclient/webclient.env" in text, name
            assert "User=webclient" in text, name
