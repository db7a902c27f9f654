"""People's Matrix devices. Django's user model stays the source of people."""

import secrets

from django.conf import settings
from django.db import models

from accounts.fields import EncryptedTextField


def new_pickle_key() -> str:
    """A random per-account key for the crypto store, never nio's default."""
    return secrets.token_urlsafe(32)


class MatrixAccount(models.Model):
    """The one Matrix device the server holds for a person."""

    user = models.OneToOneField(
        settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="matrix_account"
    )
    homeserver_url = models.URLField()
    mxid = models.CharField("Matrix ID", max_length=255, unique=True)
    device_id = models.CharField(max_length=255)
    access_token = EncryptedTextField()
    pickle_key = EncryptedTextField(default=new_pickle_key)
    # The account's cross-signing private keys (JSON of seeds) when this workspace created them.
    cross_signing_keys = EncryptedTextField(blank=True, default="")
    CROSS_SIGNING_STATES = [
        ("", "not yet checked"),
        ("signed", "this device is cross-signed by its owner"),
        ("foreign", "another client holds the account's cross-signing keys"),
        ("needs_auth", "the homeserver wants a password to set up cross-signing"),
    ]
    cross_signing_state = models.CharField(
        max_length=16, blank=True, default="", choices=CROSS_SIGNING_STATES
    )
    # The private key of the account's server-side key backup, when this workspace made it.
    key_backup_key = EncryptedTextField(blank=True, default="")
    key_backup_version = models.CharField(max_length=64, blank=True, default="")
    provisioned = models.BooleanField(
        default=False, help_text="Created by this workspace through the admin console."
    )
    is_active = models.BooleanField(default=True)
    deactivated_at = models.DateTimeField(null=True, blank=True)
    # When the person last opened a page (to within LAST_SEEN_EVERY_SECONDS, page_session.py).
    last_seen_at = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["mxid"]

    def __str__(self) -> str:
        return self.mxid

    @property
    def session_ended(self) -> bool:
        """The homeserver revoked our token (see rooms/sessions.py): the person must sign in."""
        return self.is_active and not self.access_token

    @property
    def localpart(self) -> str:
        return self.mxid[1:].split(":", 1)[0]


class ServiceCredential(models.Model):
    """A token the workspace itself holds, such as the Synapse admin used for provisioning."""

    name = models.CharField(max_length=64, unique=True)
    homeserver_url = models.URLField()
    user_id = models.CharField(max_length=255)
    secret = EncryptedTextField()
    created_at = models.DateTimeField(auto_now_add=True)

    def __str__(self) -> str:
        return f"{self.name} ({self.user_id})"


class CryptoStoreRecord(models.Model):
    """One record of a device's end-to-end encryption store (accounts/matrix/crypto_store.py): its
    Olm account, an Olm or Megolm session, a device's keys or trust, an encrypted room. Kept in the
    database so any sync host can take the account over; pickles are encrypted with the account's
    pickle key (itself encrypted with the master key), so a row alone unlocks nothing."""

    account = models.ForeignKey(MatrixAccount, on_delete=models.CASCADE, related_name="+")
    device_id = models.CharField(max_length=255)  # a new device starts with an empty store
    kind = models.CharField(max_length=16)
    key = models.TextField()
    value = models.TextField(blank=True)

    class Meta:
        constraints = [
            models.UniqueConstraint(
                fields=["account", "device_id", "kind", "key"], name="crypto_store_record_unique"
            )
        ]

    def __str__(self) -> str:
        return f"{self.account_id}/{self.device_id} {self.kind} {self.key[:40]}"
