"""Thin Celery doors into the archiver and retention (run by beat, see CELERY_BEAT_SCHEDULE)."""

import logging

from celery import shared_task

from records import archiver, retention

log = logging.getLogger(__name__)


@shared_task(name="records.tasks.archive_events", ignore_result=True)
def archive_events() -> None:
    stats = archiver.archive_run()
    if stats.events_archived or stats.decryptions:
        log.info(
            "archived %d event(s), %d late decryption(s), %d hole(s) open",
            stats.events_archived,
            stats.decryptions,
            stats.holes_open,
        )


@shared_task(name="records.tasks.retention_run", ignore_result=True)
def retention_run() -> None:
    # Archive first: retention never purges from the local store what is not archived yet.
    archiver.archive_run()
    for result in retention.retention_run():
        log.info("retention %s: %s", result.room_id, result)
