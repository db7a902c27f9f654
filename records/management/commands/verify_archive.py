"""Verify the archive's hash chains and name the first broken link."""

from django.core.management.base import BaseCommand, CommandError

from records.verify import archived_rooms, verify_room


class Command(BaseCommand):
    help = "Verify the archive's hash chain of every room (or one) and name the first broken link."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--room", help="Only this room (its Matrix room ID).")

    def handle(self, *args, room: str | None = None, **options) -> None:
        rooms = [room] if room else archived_rooms()
        if room and room not in archived_rooms():
            raise CommandError(f"No archive for room {room}.")
        failures = []
        for room_id in rooms:
            verdict = verify_room(room_id)
            if verdict.broken is not None:
                failures.append(verdict.broken)
                self.stderr.write(f"BROKEN {verdict.broken}")
            else:
                self.stdout.write(
                    f"ok {room_id}: {verdict.links} link(s), head {verdict.head_hash}"
                )
        if failures:
            raise CommandError(
                f"{len(failures)} of {len(rooms)} room chain(s) broken; first: {failures[0]}"
            )
        self.stdout.write(f"{len(rooms)} room chain(s) verified")
