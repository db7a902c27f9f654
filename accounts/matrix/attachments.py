"""Encrypted attachments (the spec's EncryptedFile: AES-CTR-256, key and SHA-256 in the event).

In an encrypted room the file itself is encrypted before upload, so the homeserver stores only
ciphertext; whoever can read the event holds the key to the file."""

from typing import Any

from nio.crypto.attachments import decrypt_attachment, encrypt_attachment

from accounts.matrix.errors import MatrixError


class AttachmentUnreadable(MatrixError):
    default_message = "The file could not be decrypted: it is damaged or its key does not match."


def encrypt(data: bytes) -> tuple[bytes, dict[str, Any]]:
    """(ciphertext to upload, the EncryptedFile fields but `url`)."""
    ciphertext, keys = encrypt_attachment(data)
    return ciphertext, {
        "v": "v2",
        "key": keys["key"],
        "iv": keys["iv"],
        "hashes": keys["hashes"],
    }


def is_encrypted_file(file: Any) -> bool:
    """An EncryptedFile with everything decryption needs."""
    if not isinstance(file, dict) or not isinstance(file.get("url"), str):
        return False
    key, hashes = file.get("key"), file.get("hashes")
    return (
        isinstance(key, dict)
        and isinstance(key.get("k"), str)
        and isinstance(file.get("iv"), str)
        and isinstance(hashes, dict)
        and isinstance(hashes.get("sha256"), str)
    )


def decrypt(ciphertext: bytes, file: dict[str, Any]) -> bytes:
    """The plaintext of a downloaded EncryptedFile; the hash is checked before anything is shown."""
    try:
        return decrypt_attachment(
            ciphertext, file["key"]["k"], file["hashes"]["sha256"], file["iv"]
        )
    except Exception as error:  # nio raises EncryptionError or ValueError on bad input
        raise AttachmentUnreadable() from error
