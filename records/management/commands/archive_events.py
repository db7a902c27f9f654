"""Archive what the local store received since the last run (the beat task does the same)."""

from django.core.management.base import BaseCommand

from records import archiver


class Command(BaseCommand):
    help = "Append new events (and late decryptions) to the organisation's archive."

    def add_arguments(self, parser) -> None:
        parser.add_argument(
            "--rescan",
            action="store_true",
            help="Walk every timeline row from the start instead of from the high-water mark.",
        )

    def handle(self, *args, rescan: bool = False, **options) -> None:
        stats = archiver.archive_rescan() if rescan else archiver.archive_run()
        self.stdout.write(
            f"{stats.rows_read} timeline row(s) read, {stats.events_archived} event(s) archived, "
            f"{stats.recipients_added} recipient(s) added, {stats.decryptions} late "
            f"decryption(s), {stats.holes_open} hole(s) open, {stats.holes_expired} given up"
        )
