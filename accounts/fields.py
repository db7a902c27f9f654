"""A model field whose value never reaches the database in plaintext."""

from django.db import models

from accounts.secrets import decrypt_secret, encrypt_secret


class EncryptedTextField(models.TextField):
    """Text encrypted with the master keys on the way in and decrypted on the way out.

    It cannot be filtered on (each encryption is randomised); look rows up by another column.
    """

    def get_prep_value(self, value):
        value = super().get_prep_value(value)
        if value in (None, ""):
            return value
        return encrypt_secret(value)

    def from_db_value(self, value, expression, connection):
        if value in (None, ""):
            return value
        return decrypt_secret(value)
