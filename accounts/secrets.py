"""Secrets at rest: access tokens, pickle keys and service tokens are stored only encrypted.

MultiFernet over WEBCLIENT_SECRET_KEYS: the first key encrypts, every key decrypts, so a new key is put
first, `manage.py rotate_secrets` re-encrypts every row, and the old key can then be dropped.
"""

from functools import lru_cache

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured


class SecretUnreadable(Exception):
    """A stored secret was encrypted with a key that is no longer configured."""


@lru_cache(maxsize=4)
def _fernet(keys: tuple[str, ...]) -> MultiFernet:
    if not keys:
        raise ImproperlyConfigured("WEBCLIENT_SECRET_KEYS is empty: secrets cannot be stored.")
    try:
        return MultiFernet([Fernet(key.encode()) for key in keys])
    except ValueError as error:
        raise ImproperlyConfigured(
            "Each WEBCLIENT_SECRET_KEYS entry must be a Fernet key (32 url-safe base64 bytes)."
        ) from error


def _current() -> MultiFernet:
    return _fernet(tuple(settings.WEBCLIENT_SECRET_KEYS))


def encrypt_secret(plaintext: str) -> str:
    return _current().encrypt(plaintext.encode()).decode()


def decrypt_secret(ciphertext: str) -> str:
    try:
        return _current().decrypt(ciphertext.encode()).decode()
    except InvalidToken:
        raise SecretUnreadable(
            "A stored secret cannot be decrypted with the configured WEBCLIENT_SECRET_KEYS."
        ) from None
