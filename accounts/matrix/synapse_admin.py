"""Synapse's admin API: create accounts (shared-secret registration), reset passwords, deactivate.

Only the admin console's provisioning needs these; people signing in with an existing account on any
homeserver never touch them.
"""

import hashlib
import hmac

from accounts.matrix.client_api import Session, _session_from
from accounts.matrix.http import matrix_request, quote


def _registration_mac(
    shared_secret: str, nonce: str, localpart: str, password: str, admin: bool
) -> str:
    mac = hmac.new(shared_secret.encode(), digestmod=hashlib.sha1)
    for part in (nonce, localpart, password):
        mac.update(part.encode())
        mac.update(b"\x00")
    mac.update(b"admin" if admin else b"notadmin")
    return mac.hexdigest()


def register_with_shared_secret(
    homeserver_url: str,
    *,
    shared_secret: str,
    localpart: str,
    password: str,
    admin: bool = False,
    displayname: str | None = None,
    timeout: float = 15.0,
) -> Session:
    """Create an account and log in its first device in one call (Synapse's /_synapse/admin/v1/register)."""
    nonce = matrix_request(homeserver_url, "GET", "/_synapse/admin/v1/register", timeout=timeout)[
        "nonce"
    ]
    body = {
        "nonce": nonce,
        "username": localpart,
        "password": password,
        "admin": admin,
        "mac": _registration_mac(shared_secret, nonce, localpart, password, admin),
    }
    if displayname:
        body["displayname"] = displayname
    reply = matrix_request(
        homeserver_url, "POST", "/_synapse/admin/v1/register", body=body, timeout=timeout
    )
    return _session_from(homeserver_url, reply)


def reset_password(
    homeserver_url: str,
    *,
    admin_token: str,
    user_id: str,
    new_password: str,
    timeout: float = 15.0,
) -> None:
    """Set a new password; our own device stays logged in (`logout_devices` false)."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/reset_password/{quote(user_id)}",
        token=admin_token,
        body={"new_password": new_password, "logout_devices": False},
        timeout=timeout,
    )


def deactivate(
    homeserver_url: str, *, admin_token: str, user_id: str, erase: bool, timeout: float = 30.0
) -> None:
    """Deactivate an account; with `erase`, Synapse also forgets its messages for new joiners (GDPR)."""
    matrix_request(
        homeserver_url,
        "POST",
        f"/_synapse/admin/v1/deactivate/{quote(user_id)}",
        token=admin_token,
        body={"erase": erase},
        timeout=timeout,
    )
