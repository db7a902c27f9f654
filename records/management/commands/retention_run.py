"""Apply retention now (the beat task runs it every hour)."""

from django.core.management.base import BaseCommand

from records import archiver, retention


class Command(BaseCommand):
    help = "Archive what is new, then purge what retention no longer keeps (legal holds win)."

    def handle(self, *args, **options) -> None:
        archiver.archive_run()
        results = retention.retention_run()
        for r in results:
            self.stdout.write(
                f"{r.room_id}: keep {r.keep_days} days; {r.purged} purged from the archive, "
                f"{r.local_events} from the local store, {r.kept_by_hold} kept by a legal hold"
            )
        self.stdout.write(f"{len(results)} room(s) touched")
