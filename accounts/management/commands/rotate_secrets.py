"""Re-encrypt every stored secret with the newest master key (the first of WEBCLIENT_SECRET_KEYS).

Reading a row decrypts with any configured key; saving it encrypts with the first one. So: put the new
key first, run this, then remove the old key from the environment.
"""

from django.core.management.base import BaseCommand
from django.db import transaction

from accounts.fields import EncryptedTextField
from accounts.models import MatrixAccount, ServiceCredential

ENCRYPTED_COLUMNS = {
    model: [f.name for f in model._meta.fields if isinstance(f, EncryptedTextField)]
    for model in (MatrixAccount, ServiceCredential)
}


class Command(BaseCommand):
    help = "Re-encrypt secrets at rest under the first key of WEBCLIENT_SECRET_KEYS."

    def handle(self, *args, **options) -> None:
        total = 0
        with transaction.atomic():
            for model, columns in ENCRYPTED_COLUMNS.items():
                for row in model.objects.select_for_update().only("pk", *columns):
                    row.save(update_fields=columns)
                    total += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted secrets in {total} row(s)."))
